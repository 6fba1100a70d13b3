"""Speed settings of the backbones: SDPA attention is what BERT, DistilBERT and T5 get (and a
model without it falls back to eager), and `model.compile` keeps recompiles bounded while
dynamic padding changes the batch shape every step."""

from __future__ import annotations

import pytest
from transformers import AutoModelForSequenceClassification

from lit_nlp.codecs.classification import pad_batch
from lit_nlp.models.backbones import build_hf_model
from lit_nlp.models.classification import ClassificationModule
from models.test_classification_module import BACKBONES, make_module
from models.test_seq2seq_module import make_module as make_seq2seq_module


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_classifiers_use_sdpa(kind):
    assert make_module(kind).model.config._attn_implementation == "sdpa"
    assert make_module(kind, attn_implementation="eager").model.config._attn_implementation == "eager"


def test_t5_uses_sdpa():
    assert make_seq2seq_module(tokenizer=object()).model.config._attn_implementation == "sdpa"


def test_rebuilt_from_saved_config_keeps_the_choice():
    module = make_module("bert", attn_implementation="eager")
    rebuilt = ClassificationModule(**module.hparams)  # how predict.py loads a .ckpt
    assert rebuilt.model.config._attn_implementation == "eager"
    assert rebuilt.hparams.attn_implementation == "eager" and rebuilt.hparams.compile is False


def test_model_without_sdpa_falls_back_to_eager(monkeypatch):
    real = AutoModelForSequenceClassification.from_config

    def no_sdpa(config, **kwargs):
        if kwargs.get("attn_implementation") == "sdpa":
            raise ValueError("SomeModel does not support an attention implementation through sdpa yet")
        return real(config, **kwargs)

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_config", no_sdpa)
    model = build_hf_model(AutoModelForSequenceClassification, config=BACKBONES["bert"], num_labels=2,
                           vocab_size=50, pad_token_id=0)
    assert model.config._attn_implementation == "eager"


def test_compile_is_applied_by_configure_model_only(monkeypatch):
    calls = []
    module = make_module("bert", compile={"backend": "aot_eager"})
    monkeypatch.setattr(module.model, "compile", lambda **kw: calls.append(kw))
    assert calls == []  # building (predict.py's path) never compiles
    module.configure_model()
    module.configure_model()  # Lightning may call it again (fit, then test): compiled once
    assert calls == [{"backend": "aot_eager"}]


@pytest.mark.slow
def test_compile_recompiles_stay_bounded():
    """Ten batches of dynamic padding (lengths 8..40 in steps of 8 via pad_to_multiple_of, and a
    short batch as at the end of an epoch) through fwd+bwd of a compiled tiny BERT. Dynamo
    compiles the first shape, and the first change of each dimension costs one recompile that
    makes that dimension symbolic: 1 + 2 graphs at most, however many shapes follow."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    backbone = {**BACKBONES["bert"], "max_position_embeddings": 64}
    torch.manual_seed(0)
    module = ClassificationModule(backbone={"config": backbone}, compile={"backend": "aot_eager"},
                                  optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
                                  scheduler={"name": "constant"}, label_names=["a", "b"],
                                  vocab_size=50, pad_token_id=0)
    module.configure_model()
    torch._dynamo.reset()
    counters.clear()
    shapes = set()
    for step, longest in enumerate([5, 17, 33, 9, 40, 26, 12, 38, 3, 21]):
        rows = [{"input_ids": [7] * (longest - i % 3), "labels": i % 2} for i in range(3 if step == 4 else 8)]
        for row in rows:
            row["attention_mask"] = [1] * len(row["input_ids"])
        batch = pad_batch(rows, pad_token_id=0, pad_to_multiple_of=8)
        shapes.add(tuple(batch["input_ids"].shape))
        module._loss(module(batch), batch["labels"]).backward()
    assert len(shapes) >= 6  # the shape really changed
    assert counters["stats"]["unique_graphs"] <= 3
    torch._dynamo.reset()
