"""train(cfg) for seq2seq on a tiny random-init T5: it learns a synthetic extraction task;
metrics, TensorBoard samples, predict from run dir / .ckpt / export / CLI, the export in plain
transformers, exact resume, a summarization run, and every seq2seq config composing."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from conftest import (CATEGORIES, EXTRACTION_FILLER, ROOT, Started, compose_cfg, hidden_word_rows, metrics_of,
                      write_table)
from lit_nlp.predict import load_predictor
from lit_nlp.train import train

QA_TEMPLATE = "question: {question} context: {context}"
NUM_BEAMS = 2  # not the transformers default (1), so the export must really carry it


def extraction_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable extraction task: 6-10 filler words with the hidden words; T5 generates the answer."""
    return [{k: r[k] for k in ("question", "context", "answer")}
            for r in hidden_word_rows(n, seed, filler_words=(6, 10))]


def qa_overrides(train_file: Path, epochs: int) -> list[str]:
    # 48 source tokens hold the question and a 13-word context; answers are one word + </s>
    return ["model=t5_tiny", "data=seq2seq_jsonl", f"data.train_file={train_file}",
            f'data.source_template="{QA_TEMPLATE}"', "data.target_column=answer", "data.truncate_column=context",
            "data.task=qa", f"trainer.max_epochs={epochs}", "data.max_source_length=48",
            "data.max_target_length=6", "data.batch_size=32", "tokenizer.vocab_size=400",
            "model.optimizer.lr=3e-3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny T5 trained on 2,000 extraction rows (1,600 train = 50 steps per epoch x 6),
    shared by the tests of this file: (run dir, value returned by train, training rows)."""
    tmp = tmp_path_factory.mktemp("seq2seq")
    rows = extraction_rows(2000)
    data = write_table(rows, tmp / "train.jsonl")
    run = tmp / "run"
    cfg = compose_cfg(qa_overrides(data, epochs=6) + ["model.backbone.config.dropout_rate=0.0",
                                                      f"model.generation.num_beams={NUM_BEAMS}"], run)
    best = train(cfg)
    return run, best, rows


@pytest.fixture(scope="module")
def held_out(trained) -> list[dict]:
    """Rows the model never saw: a few of each asked category."""
    seen = {(r["question"], r["context"]) for r in trained[2]}
    rows = [r for r in extraction_rows(200, seed=99) if (r["question"], r["context"]) not in seen]
    by_category = {}
    for row in rows:
        by_category.setdefault(row["question"], [])
        if len(by_category[row["question"]]) < 2:
            by_category[row["question"]].append(row)
    return [r for group in by_category.values() for r in group]


EXPORT_GENERATE = (
    "import sys, json\n"
    "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
    "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
    "model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1]).eval()\n"
    "enc = tok(json.loads(sys.argv[2]), return_tensors='pt', padding=True)\n"
    "out = model.generate(**enc)\n"  # the saved generation_config: no settings passed here
    "print(json.dumps([model.generation_config.num_beams, tok.batch_decode(out, skip_special_tokens=True)]))\n"
    "assert 'lit_nlp' not in sys.modules\n"
)


@pytest.fixture(scope="module")
def fresh_interpreters(trained, held_out, tmp_path_factory):
    """The trained run read by new interpreters: predict.py from a file of the held-out rows
    (with an id) to <its folder>/out.jsonl, and the export's generate() in plain transformers
    (EXPORT_GENERATE); started together when the first test asks, so that they import on both
    cores: name -> Started."""
    run = trained[0]
    folder = tmp_path_factory.mktemp("seq2seq_processes")
    source = write_table([{"id": i, **r} for i, r in enumerate(held_out)], folder / "questions.jsonl")
    sources = [QA_TEMPLATE.format(**r) for r in held_out]
    started = {
        "predict_cli": Started([sys.executable, "predict.py", f"model_path={run}", f"input={source}",
                                f"output={folder / 'predict_cli' / 'out.jsonl'}"], folder / "predict_cli", cwd=ROOT),
        "export_generate": Started([sys.executable, "-c", EXPORT_GENERATE, str(run / "export"), json.dumps(sources)],
                                   folder / "export_generate"),
    }
    yield started
    for process in started.values():
        process.stop()


# ----------------------------------------------------------------- learning and run summary
def test_tiny_t5_learns_extraction(trained):
    run, best, _ = trained
    metrics = metrics_of(run)
    assert metrics["test/exact_match"] >= 0.9
    assert best == pytest.approx(metrics["val/f1_best"]) and best >= 0.9
    assert metrics["data/rows/train"] + metrics["data/rows/validation"] + metrics["data/rows/test"] == 2000


def test_metrics_checkpoints_and_export_files(trained):
    run = trained[0]
    metrics = metrics_of(run)
    for key in ("test/exact_match", "test/f1", "test/loss", "val/f1_best", "train/samples_per_sec", "global_step"):
        assert key in metrics, key
    assert 0.0 <= metrics["test/exact_match"] <= metrics["test/f1"] <= 1.0
    assert metrics["epochs"] == 6 and metrics["global_step"] == 6 * 50
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    settings = json.loads((run / "export" / "lit_nlp.json").read_text())
    assert settings["task"] == "seq2seq" and settings["seq2seq_task"] == "qa"
    assert settings["source_template"] == QA_TEMPLATE and settings["truncate_column"] == "context"


def test_tensorboard_holds_generation_samples(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = trained[0]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("train/loss_step", "val/loss", "val/f1", "val/exact_match", "test/exact_match", "test/f1"):
        assert tag in scalars, (tag, sorted(scalars))
    text_tags = [t for t in events.Tags()["tensors"] if t.startswith("val/examples")]
    assert text_tags, events.Tags()["tensors"]
    assert text_tags[0] in events.PluginTagToContent("text")
    tables = [e.tensor_proto.string_val[0].decode() for e in events.Tensors(text_tags[0])]
    assert len(tables) >= 6  # one per validation epoch
    last = tables[-1].splitlines()
    assert last[0] == "| input | reference | prediction |"
    assert len(last) > 3 and all(line.startswith("| question: which ") for line in last[2:])
    # the trained model's samples: prediction == reference
    cells = [line.strip("| ").split(" | ") for line in last[2:]]
    assert sum(ref == pred for _, ref, pred in cells) >= 0.9 * len(cells)


# ----------------------------------------------------------------- predict
def test_predict_from_run_dir_last_ckpt_and_export(trained, held_out):
    run = trained[0]
    answers = [r["answer"] for r in held_out]
    predictions = {}
    for name, path in {"run": run, "last.ckpt": run / "checkpoints" / "last.ckpt", "export": run / "export"}.items():
        out = load_predictor(path, device="cpu").predict_rows(held_out)
        assert [{k: v for k, v in r.items() if k != "prediction"} for r in out] == held_out  # input kept
        predictions[name] = [r["prediction"] for r in out]
    assert predictions["run"] == predictions["last.ckpt"] == predictions["export"] == answers
    # text=...: with a template of several columns the text is the whole source
    predictor = load_predictor(run / "export", device="cpu")
    sources = [QA_TEMPLATE.format(**r) for r in held_out]
    assert [r["prediction"] for r in predictor.predict(sources)] == answers


def test_predict_cli_file_in_file_out(held_out, fresh_interpreters):
    process = fresh_interpreters["predict_cli"]
    rows = [{"id": i, **r} for i, r in enumerate(held_out)]  # its input file
    output = process.folder / "out.jsonl"
    result = process.result(timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in written] == list(range(len(rows)))
    assert [r["prediction"] for r in written] == [r["answer"] for r in held_out]
    assert [r["context"] for r in written] == [r["context"] for r in held_out]


def test_export_runs_in_plain_transformers(trained, held_out, fresh_interpreters):
    export = trained[0] / "export"
    generation = json.loads((export / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 6  # ${data.max_target_length}
    assert generation["num_beams"] == NUM_BEAMS
    result = fresh_interpreters["export_generate"].result(timeout=120)  # on the held-out rows' sources
    assert result.returncode == 0, result.stderr[-3000:]
    beams, texts = json.loads(result.stdout.strip().splitlines()[-1])
    assert beams == NUM_BEAMS
    assert [t.strip() for t in texts] == [r["answer"] for r in held_out]


# ----------------------------------------------------------------- summarization
def test_summarization_fast_dev_run(tmp_path):
    rng = random.Random(7)
    rows = []
    for i in range(60):
        words = rng.choices(EXTRACTION_FILLER + CATEGORIES["city"], k=30)
        rows.append({"document": f"report {i}: " + " ".join(words), "summary": " ".join(words[:5])})
    data = write_table(rows, tmp_path / "docs.jsonl")
    run = tmp_path / "run"
    cfg = compose_cfg(["model=t5_tiny", "data=seq2seq_jsonl", f"data.train_file={data}", "data.task=summarization",
                       "data.target_column=summary", "data.max_source_length=64", "data.max_target_length=8",
                       "tokenizer.vocab_size=300", "debug=fast_dev_run"], run)
    assert cfg.data.source_template == "summarize: {document}"
    train(cfg)
    metrics = metrics_of(run)
    assert metrics["global_step"] == 1
    # one test batch scored: bigram overlap never exceeds unigram overlap, nor does the longest
    # common subsequence (ROUGE-2 and ROUGE-L F-scores are at most ROUGE-1's)
    r1, r2, rl = (metrics[f"test/{k}"] for k in ("rouge1", "rouge2", "rougeL"))
    assert 0.0 <= r2 <= r1 <= 1.0 and rl <= r1 and 0.0 <= metrics["test/rougeLsum"] <= 1.0
    assert "val/rougeLsum_best" in metrics  # the summarization task's main metric is monitored


# ----------------------------------------------------------------- configs (composed only: hub models never built)
def resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_experiment_t5_squad(tmp_path):
    with pytest.raises(MissingMandatoryValue):  # the SQuAD file has to be named
        resolved(compose_cfg(["experiment=t5_squad"], tmp_path / "run").data)
    cfg = resolved(compose_cfg(["experiment=t5_squad", "data.train_file=train-v1.1.json"], tmp_path / "run"))
    data, model = cfg["data"], cfg["model"]
    assert data["_target_"] == "lit_nlp.data.seq2seq.Seq2SeqDataModule"
    assert data["format"] == "squad" and data["task"] == "qa"
    assert data["source_template"] == QA_TEMPLATE and data["truncate_column"] == "context"
    assert (data["target_column"], data["references_column"]) == ("answer", "answers")
    assert model["_target_"] == "lit_nlp.models.seq2seq.Seq2SeqModule" and model["_recursive_"] is False
    assert model["backbone"]["pretrained"] is None and model["backbone"]["config"]["model_type"] == "t5"
    assert model["generation"]["max_new_tokens"] == data["max_target_length"]
    assert cfg["tokenizer"]["_target_"] == "lit_nlp.data.tokenizers.BPETokenizer"
    assert cfg["tokenizer"]["model_max_length"] == data["max_source_length"]
    assert cfg["trainer"]["max_epochs"] == 10
    assert cfg["monitor"] is None  # train() takes the task's main metric, val/f1


def test_experiment_t5_summarize(tmp_path):
    cfg = resolved(compose_cfg(["experiment=t5_summarize", "data.train_file=news.jsonl"], tmp_path / "run"))
    data = cfg["data"]
    assert data["_target_"] == "lit_nlp.data.seq2seq.Seq2SeqDataModule" and data["task"] == "summarization"
    assert data["source_template"] == "summarize: {article}" and data["truncate_column"] == "article"
    assert data["target_column"] == "summary" and data["format"] == "jsonl"
    assert cfg["model"]["_target_"] == "lit_nlp.models.seq2seq.Seq2SeqModule"
    assert cfg["tokenizer"]["_target_"] == "lit_nlp.data.tokenizers.BPETokenizer"
    assert cfg["trainer"]["max_epochs"] == 10


@pytest.mark.parametrize("model,pretrained", [("t5_small", "t5-small"), ("flan_t5_base", "google/flan-t5-base")])
def test_hub_seq2seq_models_compose(tmp_path, model, pretrained):
    cfg = resolved(compose_cfg([f"model={model}", "data=squad", "data.train_file=train-v1.1.json"], tmp_path / "run"))
    assert cfg["model"]["_target_"] == "lit_nlp.models.seq2seq.Seq2SeqModule"
    assert cfg["model"]["backbone"]["pretrained"] == pretrained
    assert cfg["model"]["allow_fp16"] is False
    assert cfg["model"]["generation"]["max_new_tokens"] == cfg["data"]["max_target_length"] == 32
    assert cfg["model"]["generation"]["num_beams"] == 4
    # the tokenizer saved with the model, not one trained from the data
    assert cfg["tokenizer"]["_target_"] == "lit_nlp.data.tokenizers.PretrainedTokenizer"
    assert cfg["tokenizer"]["name_or_path"] == pretrained
