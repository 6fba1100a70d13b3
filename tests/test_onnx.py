"""ONNX Runtime for the encoder tasks: each task's tiny model exports with dynamic batch and
length and computes torch's outputs (int8 close); a run with export.onnx=true checks parity on
its test split and scores ONNX with the task's own metrics; predict.py backend=onnx|onnx-int8
answers as torch does; what ONNX does not serve is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from conftest import compose_cfg, metrics_of, one_line, tiny_overrides
from lit_nlp.errors import LitNlpError
from lit_nlp.onnx.export import export_onnx, fuse, quantize
from lit_nlp.onnx.runtime import OnnxModel
from lit_nlp.predict import load_predictor, run
from lit_nlp.train import train

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 100, "max_position_embeddings": 64}
TASK_MODELS = {"classification": (AutoModelForSequenceClassification, ("logits",)),
               "token_classification": (AutoModelForTokenClassification, ("logits",)),
               "extractive_qa": (AutoModelForQuestionAnswering, ("start_logits", "end_logits"))}


@pytest.mark.parametrize("task, model_type", [("classification", "bert"), ("token_classification", "bert"),
                                              ("extractive_qa", "distilbert")])
def test_each_task_exports_and_runs_as_torch(tmp_path, task, model_type):
    """Batch and length other than the export's example, padding inside: fp32 ONNX, its
    operators fused, equals torch to 1e-5, int8 stays close and keeps most predictions (random weights: small margins)."""
    auto, outputs = TASK_MODELS[task]
    sizes = TINY if model_type == "bert" else {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64,
                                               "vocab_size": 100, "max_position_embeddings": 64}
    torch.manual_seed(0)
    labels = 2 if task == "extractive_qa" else 5  # QA heads: start and end
    model = auto.from_config(AutoConfig.for_model(model_type, num_labels=labels, **sizes)).eval()
    path = export_onnx(model, task, tmp_path, max_length=64)
    # ONNX Runtime's fusions, checked by the comparison below: a SkipLayerNormalization per
    # residual (2 per layer) and a BiasGelu per feed-forward
    fused = fuse(path, model.config)
    assert (fused.get("SkipLayerNormalization"), fused.get("BiasGelu")) == (4, 2), fused
    ids = torch.randint(5, 100, (3, 13))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if model_type == "bert":
        inputs["token_type_ids"] = torch.zeros_like(ids)
    with torch.no_grad():
        reference = model(**inputs)
    for onnx_model, tolerance in ((OnnxModel(path, model.config), 1e-5),
                                  (OnnxModel(quantize(path), model.config), 0.5)):
        got = onnx_model(**inputs, **({} if model_type == "bert" else {"token_type_ids": None}))
        for name in outputs:
            a, b = getattr(reference, name), getattr(got, name)
            assert a.shape == b.shape
            assert (a - b).abs().max() < tolerance, (name, float((a - b).abs().max()))


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory):
    """A tiny classifier trained 3 epochs with export.onnx=true."""
    from conftest import synthetic_rows, write_table

    tmp = tmp_path_factory.mktemp("onnx")
    data = write_table(synthetic_rows(240), tmp / "train.csv")
    run_dir = tmp / "run"
    train(compose_cfg([*tiny_overrides(data, epochs=3), "model.optimizer.lr=3e-3", "export.onnx=true"], run_dir))
    return run_dir


def test_export_onnx_true_checks_parity_with_the_tasks_metrics(onnx_run):
    m = metrics_of(onnx_run)
    report = json.loads((onnx_run / "export" / "onnx" / "parity.json").read_text())
    assert report["torch"]["metrics"]["test/acc"] == pytest.approx(m["test/acc"]) and m["test/acc"] >= 0.75  # learned (chance: 0.5)
    assert m["onnx/test/acc"] == pytest.approx(m["test/acc"]) and m["onnx/agreement"] == 1.0
    assert report["onnx"]["max_abs_diff"] < 1e-4 and report["onnx"]["compared"] == m["data/rows/test"]
    assert m["onnx-int8/agreement"] >= 0.9 and abs(m["onnx-int8/test/acc"] - m["test/acc"]) <= 0.1


def test_predict_backends_answer_as_torch(onnx_run, tmp_path):
    texts = ["a gorgeous witty film", "a tedious mess", "the plot was fine and the acting great"]
    base = load_predictor(onnx_run, device="cpu").predict(texts)
    fp32 = load_predictor(onnx_run, device="cpu", backend="onnx").predict(texts)
    int8 = load_predictor(onnx_run / "export", device="cpu", backend="onnx-int8").predict(texts)
    assert [r["label"] for r in fp32] == [r["label"] for r in base]
    assert [r["score"] for r in fp32] == pytest.approx([r["score"] for r in base], abs=1e-5)
    assert len(int8) == 3 and all(0 < r["score"] <= 1 for r in int8)
    results = run([f"model_path={onnx_run}", "backend=onnx-int8", "text=a tedious mess"])
    assert results[0]["label"] in base[0]["probabilities"]


def test_what_onnx_does_not_serve_is_refused_in_one_line(onnx_run):
    with pytest.raises(LitNlpError) as err:
        load_predictor(onnx_run / "checkpoints" / "last.ckpt", backend="onnx")
    assert "a .ckpt has no ONNX file: pass its run dir" in one_line(err)
    with pytest.raises(LitNlpError) as err:
        load_predictor(onnx_run, backend="tensorrt")
    assert "backend=tensorrt is not one of torch, onnx, onnx-int8" in one_line(err)
    from lit_nlp.onnx import check_task

    with pytest.raises(LitNlpError) as err:
        check_task("seq2seq")
    assert "a seq2seq model runs on torch" in one_line(err)
