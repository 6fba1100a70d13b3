"""train() on the GPU fast path's code, on the CPU: static shapes (bucket lengths, full
batches) train the same model as dynamic padding, for both tasks, and a compiled run with
static shapes goes through fit, test and export. (`model.compile=true` on a GPU turns static
shapes on by itself; here they are asked for with data.static_shapes=true.)"""

from __future__ import annotations


import lightning as L
import pytest

from conftest import compose_cfg, metrics_of, synthetic_rows, tiny_overrides, write_table
from lit_nlp.train import train
from test_qa_train import DOC_STRIDE, MAX_LENGTH, span_rows
from test_seq2seq_train import extraction_rows, qa_overrides


class Shapes(L.Callback):
    """Records every training and validation batch's shape and real row count."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(("train", tuple(batch["input_ids"].shape), batch.get("real_rows")))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen.append(("val", tuple(batch["input_ids"].shape), batch.get("real_rows")))


@pytest.fixture
def record_shapes(monkeypatch):
    """Adds a Shapes recorder to the callbacks train() builds."""
    from lit_nlp import train as train_module

    recorder = Shapes()
    real = train_module.build_trainer

    def build_trainer(trainer_cfg, plugins, callbacks, **kwargs):
        return real(trainer_cfg, plugins, callbacks=[*callbacks, recorder], **kwargs)

    monkeypatch.setattr(train_module, "build_trainer", build_trainer)
    return recorder


def test_classification_static_shapes_train_the_same_model(tmp_path, record_shapes):
    """250 rows -> 200 train (13 batches of 16, the last of 8), 25 validation: with static
    shapes every batch has 16 rows (filler counted nowhere) and a bucket length, and the run
    ends where dynamic padding ends."""
    data = write_table(synthetic_rows(250, seed=4), tmp_path / "train.csv")
    # no dropout: its masks are drawn per tensor shape, so other shapes would draw other masks
    common = tiny_overrides(data, epochs=2) + ["trainer.deterministic=true", "+model.backbone.config.hidden_dropout_prob=0",
                                               "+model.backbone.config.attention_probs_dropout_prob=0"]
    train(compose_cfg(common, tmp_path / "dynamic", cache_dir=tmp_path / "cache"))
    record_shapes.seen.clear()
    train(compose_cfg(common + ["data.static_shapes=true", "data.length_buckets=4"], tmp_path / "static",
                      cache_dir=tmp_path / "cache"))
    a, b = metrics_of(tmp_path / "dynamic"), metrics_of(tmp_path / "static")
    for key in ("test/acc", "val/acc_best", "global_step", "data/rows/train"):
        assert b[key] == a[key], key
    assert b["test/loss"] == pytest.approx(a["test/loss"], abs=1e-4)
    assert b["train/samples"] == a["train/samples"]  # filler rows are no samples
    train_shapes = {s for stage, s, _ in record_shapes.seen if stage == "train"}
    assert {rows for rows, _ in train_shapes} == {16}
    assert {length for _, length in train_shapes} <= {8, 16, 24, 32}  # max_length 32 in 4 buckets
    assert any(real == 8 for stage, _, real in record_shapes.seen if stage == "train")  # the short batch
    assert {s[0] for stage, s, _ in record_shapes.seen if stage == "val"} == {64}  # eval_batch_size


def test_seq2seq_static_shapes_train_the_same_model(tmp_path):
    data = write_table(extraction_rows(150, seed=6), tmp_path / "train.jsonl")
    common = qa_overrides(data, epochs=1) + ["trainer.deterministic=true", "model.backbone.config.dropout_rate=0"]
    train(compose_cfg(common, tmp_path / "dynamic", cache_dir=tmp_path / "cache"))
    train(compose_cfg(common + ["data.static_shapes=true"], tmp_path / "static", cache_dir=tmp_path / "cache"))
    a, b = metrics_of(tmp_path / "dynamic"), metrics_of(tmp_path / "static")
    for key in ("test/exact_match", "test/f1", "global_step"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert b["test/loss"] == pytest.approx(a["test/loss"], abs=1e-4)


def test_extractive_qa_static_shapes_train_the_same_model(tmp_path):
    """Windows padded to buckets and batches filled with copies of a real window: the copies
    are neither trained on nor decoded, so every question is scored once, as without them."""
    data = write_table(span_rows(300, seed=3), tmp_path / "train.jsonl")
    common = ["model=bert_tiny_qa", "data=extractive_qa", "data.format=jsonl", f"data.train_file={data}",
              f"data.max_length={MAX_LENGTH}", f"data.doc_stride={DOC_STRIDE}", "data.batch_size=32",
              "tokenizer.vocab_size=300", "trainer.max_epochs=1", "trainer.deterministic=true",
              "+model.backbone.config.hidden_dropout_prob=0", "+model.backbone.config.attention_probs_dropout_prob=0"]
    train(compose_cfg(common, tmp_path / "dynamic", cache_dir=tmp_path / "cache"))
    train(compose_cfg(common + ["data.static_shapes=true", "data.length_buckets=2"], tmp_path / "static",
                      cache_dir=tmp_path / "cache"))
    a, b = metrics_of(tmp_path / "dynamic"), metrics_of(tmp_path / "static")
    assert b["test/questions"] == a["test/questions"] == a["data/rows/test"]
    for key in ("test/exact_match", "test/f1", "global_step"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert b["test/loss"] == pytest.approx(a["test/loss"], abs=1e-4)


def test_compiled_static_shape_run_trains_the_eager_model_tests_and_exports(tmp_path, record_shapes):
    """The fast path's wiring through train(): compiled (dynamo + AOTAutograd; inductor's code
    generation would add minutes here), static shapes, bf16-mixed with the fused AdamW, trains
    the weights that the same run trains eagerly, and tests and exports them."""
    import torch
    from torch._dynamo.utils import counters

    from lit_nlp.models.compiled import EagerFallbacks

    data = write_table(synthetic_rows(200, seed=5), tmp_path / "train.csv")
    # one bucket (max_length) keeps the compiles to one per mode: each costs seconds here. No
    # dropout: compiled code draws its masks through other random calls than eager's (with it the
    # weights differ by 2e-3 after the 10 steps; without, bit-equal on CPU with aot_eager)
    common = tiny_overrides(data) + ["data.static_shapes=true", "data.length_buckets=1", "trainer.precision=bf16-mixed",
                                     "+model.backbone.config.hidden_dropout_prob=0",
                                     "+model.backbone.config.attention_probs_dropout_prob=0"]
    train(compose_cfg(common, tmp_path / "eager", cache_dir=tmp_path / "cache"))
    record_shapes.seen.clear()
    graphs = counters["stats"]["unique_graphs"]
    run = tmp_path / "compiled"
    with EagerFallbacks() as fallbacks:
        train(compose_cfg(common + ["model.compile={backend: aot_eager}"], run, cache_dir=tmp_path / "cache"))
    assert fallbacks.count == 0 and counters["stats"]["unique_graphs"] > graphs  # it really ran compiled
    assert {s for _, s, _ in record_shapes.seen} == {(16, 32), (64, 32)}  # train and eval batches
    eager, compiled = metrics_of(tmp_path / "eager"), metrics_of(run)
    for key in ("global_step", "test/acc", "val/acc_best", "train/samples"):
        assert compiled[key] == eager[key], key
    assert compiled["global_step"] == 10  # 160 training rows in batches of 16
    # measured bit-equal (torch 2.13, CPU); 1e-6 leaves room for a reordered float sum only
    assert compiled["test/loss"] == pytest.approx(eager["test/loss"], abs=1e-6)
    weights = [torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
               for r in (tmp_path / "eager", run)]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, atol=1e-6, rtol=0, msg=name)
    assert (run / "export" / "model.safetensors").is_file()
