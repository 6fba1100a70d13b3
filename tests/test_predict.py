"""predict from a run dir, a .ckpt and an export dir; the CLI; saved cleaning applied again."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch

from conftest import ROOT, Started, write_table
from lit_nlp.errors import LitNlpError, exit_on_user_error
from lit_nlp.predict import find_checkpoint, load_predictor, parse_args, run

TEXTS = ["the film was superb and moving", "a tedious plot with clumsy actors", "the ending is dreadful"]


@pytest.fixture(scope="module")
def fresh_interpreters(trained_classifier, tmp_path_factory):
    """predict.py's command line in new interpreters, on the trained run and on a path that does
    not exist; started together with the first test that reads the run (see run_dir), so that
    they import on the other core while the tests before them run: name -> Started."""
    run = trained_classifier[0]
    folder = tmp_path_factory.mktemp("predict_processes")
    started = {
        "text_with_comma": Started([sys.executable, "predict.py", f"model_path={run}", "text=a superb, moving film"],
                                   folder / "text_with_comma", cwd=ROOT),
        "missing_model": Started([sys.executable, "predict.py", f"model_path={folder / 'nope'}", "text=x"],
                                 folder / "missing_model", cwd=ROOT),
    }
    yield started
    for process in started.values():
        process.stop()


@pytest.fixture
def run_dir(trained_classifier, fresh_interpreters):
    """The session's tiny BERT trained on the synthetic task (conftest.trained_classifier); the
    tests here only read it."""
    return trained_classifier[0]


def test_run_dir_ckpt_and_export_agree(run_dir):
    from_export = load_predictor(run_dir / "export").predict(TEXTS)
    from_run = load_predictor(run_dir).predict(TEXTS)
    from_ckpt = load_predictor(find_checkpoint(run_dir)).predict(TEXTS)
    assert [r["label"] for r in from_export] == ["positive", "negative", "negative"]
    for a, b, c in zip(from_export, from_run, from_ckpt):
        assert a["label"] == b["label"] == c["label"]
        assert a["score"] == pytest.approx(c["score"], abs=1e-5)
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_static_shapes_and_compiled_prediction_agree_with_eager(run_dir):
    """predict's fast path on the CPU: batches padded to the training run's buckets and filled
    to the batch size (the CUDA-graph shapes), eager and compiled (dynamo + AOTAutograd here):
    the same labels and probabilities as the plain path, for 7 texts in batches of 4."""
    texts = TEXTS + ["superb", "an awful, lifeless and painful script with a hollow cast", "moving", "boring"]
    plain = load_predictor(run_dir).predict(texts, batch_size=4)
    static = load_predictor(run_dir, static_shapes=True)
    assert static.shapes.buckets == [8, 16, 24, 32]  # max_length 32 in 8 buckets (multiples of 8)
    compiled = load_predictor(run_dir, compile={"backend": "aot_eager"}, static_shapes=True)
    for fast in (static.predict(texts, batch_size=4), compiled.predict(texts, batch_size=4)):
        assert len(fast) == len(texts)
        for a, b in zip(plain, fast):
            assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_saved_cleaning_is_applied(run_dir):
    predictor = load_predictor(run_dir / "export")
    # html, a url and odd spacing are cleaned away exactly as in training
    noisy = predictor.predict(["<b>the film was superb</b>   see https://example.com/x"])[0]
    clean = predictor.predict(["the film was superb see www.other.org/y"])[0]
    assert noisy["score"] == pytest.approx(clean["score"], abs=1e-6)
    assert noisy["text"].startswith("<b>")  # output keeps the user's text as given


def test_cli_text_with_comma(run_dir, fresh_interpreters):
    out = fresh_interpreters["text_with_comma"].result(timeout=120)  # text=a superb, moving film
    assert out.returncode == 0, out.stderr
    label, score, text = out.stdout.strip().splitlines()[-1].split("\t")
    assert (label, text) == ("positive", "a superb, moving film")
    want = load_predictor(run_dir).predict([text])[0]  # the one text, not split at its comma
    assert label == want["label"] and float(score) == pytest.approx(want["score"], abs=5e-5)  # printed to 4 decimals


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_cli_file_in_file_out(run_dir, tmp_path, suffix):
    reviews = write_table([{"sentence": t, "id": i} for i, t in enumerate(TEXTS)], tmp_path / "reviews.csv")
    output = tmp_path / f"preds{suffix}"
    run([f"model_path={run_dir / 'export'}", f"input={reviews}", "text_column=sentence", f"output={output}"])
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        assert set(rows[0]["probabilities"]) == {"negative", "positive"}
    else:
        rows = list(csv.DictReader(output.open()))
        assert {"text", "label", "score", "prob_negative", "prob_positive"} <= set(rows[0])
    assert [r["text"] for r in rows] == TEXTS
    assert [r["label"] for r in rows] == ["positive", "negative", "negative"]


def test_cli_headerless_input_with_column_names(run_dir, tmp_path, capsys):
    dump = tmp_path / "dump.tsv"
    dump.write_text("".join(f"{t}\t{i}\n" for i, t in enumerate(TEXTS)))
    rows = run([f"model_path={run_dir}", f"input={dump}", "column_names=text,id"])
    assert [r["label"] for r in rows] == ["positive", "negative", "negative"]
    with pytest.raises(SystemExit):  # without the names the first text is taken for a header
        exit_on_user_error(run)([f"model_path={run_dir}", f"input={dump}"])
    assert "column_names=[text,label]" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # threshold= is for multi-label models
        exit_on_user_error(run)([f"model_path={run_dir}", "text=x", "threshold=0.3"])
    assert "multi-label" in capsys.readouterr().err


def test_cli_errors_are_one_line(run_dir, tmp_path, capsys, fresh_interpreters):
    reviews = write_table([{"sentence": t} for t in TEXTS], tmp_path / "reviews.csv")
    cases = {
        "model_path not found": [f"model_path={tmp_path / 'nope'}", "text=x"],
        "column(s) not found: text_column=review": [f"model_path={run_dir}", f"input={reviews}", "text_column=review"],
        "data file not found": [f"model_path={run_dir}", f"input={tmp_path / 'missing.csv'}"],
        "unknown argument": [f"model_path={run_dir}", "txt=hello"],
        "use a .csv or .jsonl": [f"model_path={run_dir}", "text=x", f"output={tmp_path / 'p.xlsx'}"],
        "is not a device": [f"model_path={run_dir}", "text=x", "device=gpu0"],
    }
    if not torch.cuda.is_available():  # this CPU machine: a CUDA device it lacks
        cases["device=cuda but torch"] = [f"model_path={run_dir}", "text=x", "device=cuda"]
    for expected, args in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            exit_on_user_error(run)(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error:") and expected in err, err
    # and the real command line says the same, without a traceback
    process = fresh_interpreters["missing_model"]  # model_path=<its folder's parent>/nope text=x
    out = process.result(timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == \
        [f"error: model_path not found: {process.folder.parent / 'nope'}"]


def test_parse_args():
    args = parse_args(["model_path=x", "text=a, b", 'text=["c", "d"]'])
    assert args["text"] == ["a, b", "c", "d"]
    with pytest.raises(LitNlpError, match="either text"):
        parse_args(["model_path=x"])
    with pytest.raises(LitNlpError, match="model_path"):
        parse_args(["text=x"])


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LitNlpError, match="cannot read checkpoint"):
        load_predictor(bad)
    with pytest.raises(LitNlpError, match="holds no export"):
        load_predictor(tmp_path)
