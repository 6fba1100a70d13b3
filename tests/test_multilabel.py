"""Multi-label classification end to end on a tiny BERT: train from a `|`-separated label
column with balanced weights and a tuned threshold, metrics.json, predict from the run dir, the
checkpoint and the export, the CLI's label sets, and the export in transformers.pipeline."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from conftest import compose_cfg, multilabel_rows, tiny_overrides, write_table
from lit_nlp.predict import find_checkpoint, load_predictor, run
from lit_nlp.train import train

TEXTS = ["the bank report about the new phone", "a big match today", "the news today about a report"]
EXPECTED = [["money", "tech"], ["sport"], []]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multilabel")
    data = write_table(multilabel_rows(600, seed=2), tmp / "topics.csv")
    run_dir = tmp / "run"
    train(compose_cfg(tiny_overrides(data, epochs=8) + [
        "model.optimizer.lr=3e-3", "data.label_column=labels", "data.label_separator=|",
        "model.class_weights=balanced", "model.tune_threshold=true"], run_dir))
    return run_dir


def test_metrics_of_a_learned_multilabel_task(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/f1_micro"] >= 0.95, metrics
    assert metrics["test/exact_match"] >= 0.9
    for key in ("val/f1_micro_best", "test/f1_macro", "test/precision_micro", "test/recall_micro",
                "test/f1/money", "test/f1/sport", "test/f1/tech", "test/threshold"):
        assert key in metrics, key
    read = sum(v for k, v in metrics.items() if k.startswith("data/rows_read/"))
    kept = sum(v for k, v in metrics.items() if k.startswith("data/rows/"))
    assert read == kept + sum(v for k, v in metrics.items() if k.startswith("data/dropped/")) == 600


def test_the_export_says_multi_label_and_carries_weights_and_threshold(run_dir):
    config = json.loads((run_dir / "export" / "config.json").read_text())
    settings = json.loads((run_dir / "export" / "lit_nlp.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert settings["multi_label"] is True
    assert len(settings["class_weights"]) == 3 and all(w > 0 for w in settings["class_weights"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert settings["threshold"] == pytest.approx(metrics["test/threshold"])  # the best checkpoint's


def test_predict_returns_label_sets_alike_from_run_dir_checkpoint_and_export(run_dir):
    results = [load_predictor(path).predict(TEXTS)
               for path in (run_dir, run_dir / "export", find_checkpoint(run_dir))]
    for rows in results:
        assert [r["labels"] for r in rows] == EXPECTED
    threshold = load_predictor(run_dir).threshold
    for a, c in zip(results[0], results[2]):
        assert a["labels"] == [n for n, p in a["probabilities"].items() if p >= threshold]
        for name in a["probabilities"]:
            assert a["probabilities"][name] == pytest.approx(c["probabilities"][name], abs=1e-5)


def test_predict_cli_writes_label_sets(run_dir, tmp_path):
    out = tmp_path / "preds.csv"
    run([f"model_path={run_dir}", *[f"text={t}" for t in TEXTS], f"output={out}", "threshold=0.999999"])
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["labels"] for r in rows] == ["", "", ""]  # nothing is that sure
    assert {"prob_money", "prob_sport", "prob_tech"} <= set(rows[0])
    run([f"model_path={run_dir}", *[f"text={t}" for t in TEXTS], f"output={out}"])
    with open(out, newline="") as fh:
        assert [r["labels"] for r in csv.DictReader(fh)] == ["money|tech", "sport", ""]


def test_export_in_transformers_pipeline_agrees_with_predict(run_dir):
    code = (
        "import sys, json; from transformers import pipeline; "
        "clf = pipeline('text-classification', model=sys.argv[1], top_k=None); "
        "out = clf(json.loads(sys.argv[2])); "
        "print(json.dumps([{o['label']: o['score'] for o in row} for row in out])); "
        "assert 'lit_nlp' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run_dir / "export"), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    ours = load_predictor(run_dir / "export").predict(TEXTS)  # the texts are clean already: same input
    for pipe, mine in zip(scores, ours):
        assert set(pipe) == set(mine["probabilities"])
        for name, value in pipe.items():  # a sigmoid per label, not a softmax over them
            assert value == pytest.approx(mine["probabilities"][name], abs=1e-5)
