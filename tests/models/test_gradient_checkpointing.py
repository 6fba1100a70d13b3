"""Gradient checkpointing in both task modules: on when asked, the same gradients as without it
(it only recomputes activations), a training step of tiny BERT and T5; and weight-decay groups
that survive FSDP's flattened parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_nlp.models.classification import ClassificationModule
from lit_nlp.models.optim import param_groups
from lit_nlp.models.seq2seq import Seq2SeqModule

VOCAB, PAD, EOS = 60, 0, 1
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01}
SCHEDULER = {"name": "linear", "warmup_ratio": 0.1}


def classifier(checkpointing: bool) -> ClassificationModule:
    torch.manual_seed(0)
    config = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 16, "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.0}
    return ClassificationModule(backbone={"config": config}, optimizer=OPTIMIZER, scheduler=SCHEDULER,
                                label_names=["a", "b"], vocab_size=VOCAB, pad_token_id=PAD,
                                gradient_checkpointing=checkpointing)


def seq2seq(checkpointing: bool) -> Seq2SeqModule:
    torch.manual_seed(0)
    config = {"model_type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 2, "num_layers": 2,
              "num_decoder_layers": 2, "dropout_rate": 0.0}
    return Seq2SeqModule(backbone={"config": config}, optimizer=OPTIMIZER, scheduler=SCHEDULER,
                         generation={"max_new_tokens": 4}, task="qa", vocab_size=VOCAB, pad_token_id=PAD,
                         eos_token_id=EOS, gradient_checkpointing=checkpointing)


def batch_for(kind: str) -> dict:
    gen = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(2, VOCAB, (4, 10), generator=gen),
             "attention_mask": torch.ones(4, 10, dtype=torch.long)}
    batch["labels"] = (torch.tensor([0, 1, 1, 0]) if kind == "classification"
                       else torch.randint(2, VOCAB, (4, 5), generator=gen))
    return batch


def grads_of(module, batch) -> dict[str, torch.Tensor]:
    module.train()
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind,build", [("classification", classifier), ("seq2seq", seq2seq)])
def test_gradient_checkpointing_trains_with_the_same_gradients(kind, build, monkeypatch):
    on, off = build(True), build(False)
    flag = "is_activation_checkpointing" if hasattr(on.model, "is_activation_checkpointing") else \
        "is_gradient_checkpointing"  # renamed in transformers 5
    assert getattr(on.model, flag) and not getattr(off.model, flag)
    assert on.hparams.gradient_checkpointing is True
    monkeypatch.setattr(type(on), "log", lambda *a, **k: None)  # no trainer attached to log to
    batch = batch_for(kind)
    with_checkpoints, without = grads_of(on, batch), grads_of(off, batch)
    assert with_checkpoints.keys() == without.keys() and len(without) > 10
    for name, grad in without.items():
        torch.testing.assert_close(with_checkpoints[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_weight_decay_groups_by_name_under_fsdp():
    """FSDP (use_orig_params) leaves every parameter a 1-D view of its shard, so shape no longer
    tells a weight matrix from a bias; the parameter names still do."""

    class Flattened(nn.Module):
        def __init__(self):
            super().__init__()
            inner = nn.Module()
            inner.dense = nn.Module()
            inner.dense.weight = nn.Parameter(torch.zeros(12))  # a flattened 3 x 4 matrix
            inner.dense.bias = nn.Parameter(torch.zeros(3))
            inner.LayerNorm = nn.Module()
            inner.LayerNorm.weight = nn.Parameter(torch.ones(3))
            self._fsdp_wrapped_module = inner

    decay, no_decay = param_groups(Flattened(), 0.01)
    assert [p.numel() for p in decay["params"]] == [12]
    assert sorted(p.numel() for p in no_decay["params"]) == [3, 3]
