"""Seq2SeqModule on a tiny random-init T5: the loss is the plain transformers loss over the
non-padded label positions, fp16 is refused for T5, and a NaN loss stops the run before any
checkpoint saves the broken weights."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import T5ForConditionalGeneration

from conftest import compose_cfg, write_table
from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.codecs.seq2seq import pad_seq2seq
from lit_nlp.errors import LitNlpError
from lit_nlp.models.seq2seq import Seq2SeqModule

VOCAB, PAD, EOS = 60, 0, 1
TINY_T5 = {"model_type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4, "num_layers": 2,
           "num_decoder_layers": 2}
WORDS = "red blue green cat dog paris rome apple pear the a we saw".split()


def make_module(**kwargs) -> Seq2SeqModule:
    torch.manual_seed(0)
    settings = dict(backbone={"config": TINY_T5},
                    optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01},
                    scheduler={"name": "linear", "warmup_ratio": 0.1},
                    generation={"num_beams": 2, "max_new_tokens": 5},
                    vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS)
    settings.update(kwargs)
    return Seq2SeqModule(**settings)


def padded_batch(n: int = 6, seed: int = 1) -> dict:
    """Sources and targets of different lengths, each closed by EOS, padded as the data
    module's collator pads them (sources with PAD, labels with -100)."""
    gen = torch.Generator().manual_seed(seed)
    features = []
    for i in range(n):
        source = torch.randint(3, VOCAB, (4 + (i * 5) % 9,), generator=gen).tolist() + [EOS]
        target = torch.randint(3, VOCAB, (1 + (i * 3) % 5,), generator=gen).tolist() + [EOS]
        features.append({"input_ids": source, "attention_mask": [1] * len(source), "labels": target,
                         "references": [f"ref {i}"], "source": f"source {i}"})
    return pad_seq2seq(features, PAD)


def qa_rows(n: int, seed: int = 0) -> list[dict]:
    """Unique QA rows for end-to-end runs (nothing to learn: only the mechanics are tested)."""
    rng = random.Random(seed)
    return [{"question": f"which word {i}?", "context": " ".join(rng.choices(WORDS, k=6)),
             "answer": rng.choice(WORDS)} for i in range(n)]


def qa_overrides(data, epochs: int) -> list[str]:
    return ["model=t5_tiny", "data=seq2seq_jsonl", f"data.train_file={data}",
            'data.source_template="question: {question} context: {context}"', "data.target_column=answer",
            "data.truncate_column=context", "data.task=qa", f"trainer.max_epochs={epochs}",
            "data.max_source_length=32", "data.max_target_length=4", "data.batch_size=16", "tokenizer.vocab_size=200"]


# ----------------------------------------------------------------- loss parity
def test_training_step_loss_is_plain_t5_loss():
    module = make_module().eval()  # eval: no dropout, so every forward below is deterministic
    plain = T5ForConditionalGeneration(module.model.config)
    plain.load_state_dict(module.model.state_dict())
    plain.eval()
    batch = padded_batch()
    labels = batch["labels"]
    assert (labels == IGNORE_INDEX).any() and (batch["attention_mask"] == 0).any()  # really padded
    with torch.no_grad():
        loss = module.training_step(batch, 0)
        out = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    assert loss.ndim == 0
    torch.testing.assert_close(loss, out.loss)
    # by hand: mean token cross-entropy over the positions that hold a label
    keep = labels != IGNORE_INDEX
    manual = -out.logits.log_softmax(-1)[keep].gather(-1, labels[keep].unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, manual)
    flat = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, flat)
    with torch.no_grad():
        # the source padding is masked: other ids at padded positions leave the loss as it was
        scrambled = dict(batch, input_ids=torch.where(batch["attention_mask"].bool(), batch["input_ids"], 7))
        torch.testing.assert_close(module.training_step(scrambled, 0), loss)
        # labels padded with the pad id instead of -100 would be scored as targets
        pad_labelled = dict(batch, labels=torch.where(keep, labels, PAD))
        assert not torch.isclose(module.training_step(pad_labelled, 0), loss)


def test_module_facts_generation_and_rebuild_from_hparams():
    module = make_module()
    config = module.model.config
    assert (config.vocab_size, config.pad_token_id, config.eos_token_id) == (VOCAB, PAD, EOS)
    assert config.decoder_start_token_id == PAD  # T5 starts decoding from the pad token
    assert module.model.generation_config.num_beams == 2
    assert module.model.generation_config.max_new_tokens == 5
    assert module.model.training
    # a checkpoint's hyperparameters rebuild the same network without the hub
    rebuilt = Seq2SeqModule(**module.hparams)
    rebuilt.load_state_dict(module.state_dict())
    assert rebuilt.model.config.d_model == TINY_T5["d_model"]
    assert rebuilt.model.generation_config.num_beams == 2
    batch = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval().training_step(batch, 0), module.eval().training_step(batch, 0))


def test_bad_task_raises():
    with pytest.raises(LitNlpError, match="task"):
        make_module(task="translation")


# ----------------------------------------------------------------- precision
def attach(module: Seq2SeqModule, precision: str) -> Seq2SeqModule:
    """What setup() reads of the trainer. (Lightning on CPU turns 16-mixed into bf16-mixed
    itself, so a real CPU trainer never hands the module fp16.)"""
    module.trainer = SimpleNamespace(precision=precision)
    return module


@pytest.mark.parametrize("precision", ["16-mixed", "16-true", "16"])
def test_fp16_refused_for_t5(precision):
    module = attach(make_module(tokenizer=object()), precision)
    with pytest.raises(LitNlpError) as err:
        module.setup("fit")
    msg = str(err.value)
    assert "\n" not in msg and "bf16" in msg and "model.allow_fp16" in msg and precision in msg


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_safe_precisions_pass(precision):
    attach(make_module(tokenizer=object()), precision).setup("fit")


def test_allow_fp16_forces_it():
    attach(make_module(tokenizer=object(), allow_fp16=True), "16-mixed").setup("fit")


def test_tokenizer_needed_to_decode_generations():
    with pytest.raises(LitNlpError, match="tokenizer"):
        attach(make_module(), "32-true").setup("fit")
    attach(make_module(), "32-true").setup("predict")  # predict decodes outside the module


def test_fp16_refused_by_train(tmp_path):
    """Real fp16 on the CPU too: lit_nlp's precision plugin does not turn 16-mixed into bf16 there."""
    from lit_nlp.train import train

    cfg = compose_cfg(qa_overrides(write_table(qa_rows(60), tmp_path / "d.jsonl"), epochs=1)
                      + ["trainer.precision=16-mixed"], tmp_path / "run")
    with pytest.raises(LitNlpError, match="bf16"):
        train(cfg)


# ----------------------------------------------------------------- NaN guard
def test_nan_loss_stops_before_a_checkpoint_saves_it(tmp_path, monkeypatch):
    """120 rows -> 96 train rows = 6 steps per epoch: epoch 0 ends with a good checkpoint at
    step 6, the weights break at step 8 (as a far too high learning rate would break them)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lit_nlp.train import train

    bad_step = 8
    original = Seq2SeqModule.training_step

    def break_weights(self, batch, batch_idx):
        if self.trainer.global_step == bad_step:
            with torch.no_grad():
                self.model.shared.weight.fill_(float("nan"))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(Seq2SeqModule, "training_step", break_weights)
    run = tmp_path / "run"
    cfg = compose_cfg(qa_overrides(write_table(qa_rows(120), tmp_path / "d.jsonl"), epochs=3)
                      + ["trainer.log_every_n_steps=1"], run)
    with pytest.raises(LitNlpError) as err:
        train(cfg)
    msg = str(err.value)
    last = run / "checkpoints" / "last.ckpt"
    assert "\n" not in msg and "NaN" in msg and str(last) in msg
    # what the user sees: TensorBoard's first NaN training loss is at step 8
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    losses = events.Scalars("train/loss_step")
    first_nan = next(s.step for s in losses if s.value != s.value)
    assert first_nan == bad_step
    # every checkpoint is from before the bad step, whole, and holds finite weights
    assert not (run / "metrics.json").exists()
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"))
    assert last in ckpts
    for path in ckpts:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 6 and ckpt["epoch"] == 0
        assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())
    # the step named is the first bad one: the loss TensorBoard shows as NaN first, computed
    # while trainer.global_step == 8 (not the step count after that optimizer step)
    assert f"at step {bad_step};" in msg, msg
