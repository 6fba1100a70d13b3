"""train(cfg) for token classification: a tiny random-init BERT learns a synthetic tagging task
(given in BIOES with -DOCSTART- lines, a middle column and sentences longer than a window) to
entity F1 1.0 on held-out sentences; the counts add up; predict from run dir / .ckpt / export
agree, write CoNLL back in the input's scheme and agree with transformers' token-classification
pipeline; 2 DDP processes score every sentence once, as seqeval recounts it; bad input stops
with one line naming file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose_cfg, metrics_of, one_line, tagged_sentences, write_conll
from lit_nlp.data.tag_schemes import convert
from lit_nlp.predict import load_predictor, run
from lit_nlp.train import train

MAX_LENGTH, STRIDE = 24, 6
def ner_overrides(train_file: Path, test_file: Path) -> list[str]:
    return ["model=bert_tiny_ner", "data=conll", f"data.train_file={train_file}", f"data.test_file={test_file}",
            f"data.max_length={MAX_LENGTH}", f"data.stride={STRIDE}", "data.batch_size=32",
            "tokenizer.vocab_size=200", "model.optimizer.lr=3e-3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner_data")
    return (write_conll(tagged_sentences(600, seed=0), tmp / "train.conll"),
            write_conll(tagged_sentences(80, seed=1), tmp / "test.conll"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, files):
    """One tiny BERT trained 8 epochs on 600 BIOES sentences (60 carved for validation, every
    fifth sentence 20-30 words long), shared by the read-only tests here: (run dir, best value)."""
    run_dir = tmp_path_factory.mktemp("ner") / "run"
    cfg = compose_cfg([*ner_overrides(*files), "trainer.max_epochs=8"], run_dir)
    return run_dir, train(cfg)


def seqeval_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    """Entity F1 by seqeval (conlleval's rules), the independent reference."""
    from seqeval.metrics import f1_score

    return f1_score(gold, predicted)


def gold_of(path: Path) -> list[tuple[list[str], list[str]]]:
    from lit_nlp.data.conll import read_conll

    return [(s.tokens, s.tags) for s in read_conll(path).sentences]


# ----------------------------------------------------------------- learning and what the run writes
def test_tiny_bert_learns_the_tags_and_every_word_is_scored_once(trained, files):
    run_dir, best = trained
    m = metrics_of(run_dir)
    assert m["test/f1"] == 1.0 and best == m["val/f1_best"] == 1.0, m
    assert m["test/accuracy"] == 1.0 and {"test/f1/PER", "test/f1/LOC", "test/f1/ORG"} <= set(m)
    # nothing dropped: sentences and tokens read add up to those kept, and every one is scored
    assert m["data/rows_read/train"] == 600 == m["data/rows/train"] + m["data/rows/validation"]
    assert m["data/rows_read/test"] == m["data/rows/test"] == m["test/sentences"] == 80
    assert m["data/tokens_read/train"] == m["data/tokens/train"] + m["data/tokens/validation"]
    assert m["data/docstart_lines"] == 8
    assert m["data/windows/test"] > m["data/rows/test"]  # long sentences span several windows
    settings = json.loads((run_dir / "export" / "lit_nlp.json").read_text())
    assert (settings["task"], settings["scheme"], settings["max_length"]) == ("token_classification", "BIOES",
                                                                              MAX_LENGTH)
    card = (run_dir / "export" / "README.md").read_text()  # the model card, in the Hugging Face format
    assert card.startswith("---\npipeline_tag: \"token-classification\"") or "pipeline_tag: \"token-classification\"" in card
    assert "| train | " in card and "| 600 |" in card and "| test/f1 | 1.0000 |" in card
    assert card.count("\n| 8 |") == 1 and "Validation, per epoch" in card  # 8 epochs, one row each
    config = json.loads((run_dir / "export" / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and set(config["id2label"].values()) == {
        "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"}


def test_predict_writes_conll_back_in_the_input_scheme(trained, files, tmp_path):
    """The test file with its gold column, tagged: every line as it was plus the predicted tag
    (BIOES, as the input), blank and -DOCSTART- lines kept; the tags equal the gold ones."""
    run_dir, _ = trained
    out = tmp_path / "tagged.conll"
    run([f"model_path={run_dir}", f"input={files[1]}", f"output={out}"])
    source, tagged = files[1].read_text().splitlines(), out.read_text().splitlines()
    assert len(source) == len(tagged)
    for before, after in zip(source, tagged):
        if not before.strip() or before.startswith("-DOCSTART-"):
            assert after == before
        else:
            assert after.startswith(before + "\t") and after.split("\t")[-1] == before.split("\t")[-1], (before, after)
    assert any(line.endswith(("\tS-PER", "\tE-LOC")) for line in tagged)


def test_predict_from_run_dir_ckpt_and_export_agree(trained, tmp_path):
    """Held-out texts: the run dir (its export), the best .ckpt and the export give the same
    entities and scores to the bit, last.ckpt the same entities; each entity's text lies at its
    offsets; csv carries them as JSON."""
    from lit_nlp.predict import find_checkpoint

    run_dir, _ = trained
    texts = ["  " + " ".join(words) + " " for words, _ in tagged_sentences(12, seed=7)]  # offsets count the spaces
    rows = [{"text": t} for t in texts]
    results = [load_predictor(path, device="cpu").predict_rows(rows, batch_size=4)
               for path in (run_dir, find_checkpoint(run_dir), run_dir / "export", run_dir / "checkpoints" / "last.ckpt")]
    assert results[0] == results[1] == results[2]
    assert [[(e["type"], e["start"], e["end"]) for e in row["entities"]] for row in results[3]] == [
        [(e["type"], e["start"], e["end"]) for e in row["entities"]] for row in results[0]]
    for (words, spans), row in zip(tagged_sentences(12, seed=7), results[0]):
        assert [(e["type"], row["text"][e["start"]:e["end"]]) for e in row["entities"]] == [
            (kind, " ".join(words[a:b])) for kind, a, b in spans]
        assert all(e["text"] == row["text"][e["start"]:e["end"]] and 0.2 < e["score"] <= 1 for e in row["entities"])
    source = tmp_path / "texts.csv"
    source.write_text("id,text\n" + "".join(f"{i},{t.strip()}\n" for i, t in enumerate(texts)))
    run([f"model_path={run_dir}", f"input={source}", f"output={tmp_path / 'out.csv'}"])
    import pandas as pd

    written = pd.read_csv(tmp_path / "out.csv")
    stripped = load_predictor(run_dir, device="cpu").predict_rows([{"text": t.strip()} for t in texts])
    assert [json.loads(cell) for cell in written["entities"]] == [row["entities"] for row in stripped]
    assert [[e["type"] for e in row["entities"]] for row in stripped] == [
        [e["type"] for e in row["entities"]] for row in results[0]]


def test_pipeline_agrees_with_predict(trained):
    """transformers' token-classification pipeline with aggregation_strategy=first, on the
    export, with stride= for sentences longer than a window (a fifth of these): the same
    entities (type, offsets) as predict.py; the same scores where no window overlap decides."""
    from transformers import pipeline

    run_dir, _ = trained
    texts = [" ".join(words) for words, _ in tagged_sentences(20, seed=11)]
    ours = load_predictor(run_dir / "export", device="cpu").predict_rows([{"text": t} for t in texts])
    tagger = pipeline("token-classification", model=str(run_dir / "export"), aggregation_strategy="first",
                      stride=STRIDE, device="cpu")
    for i, (text, row) in enumerate(zip(texts, ours)):
        theirs = tagger(text)
        assert [(e["entity_group"], e["start"], e["end"]) for e in theirs] == [
            (e["type"], e["start"], e["end"]) for e in row["entities"]], text
        if i % 5:  # one window: the very same computation
            assert [float(e["score"]) for e in theirs] == pytest.approx([e["score"] for e in row["entities"]],
                                                                       abs=1e-5)


# ----------------------------------------------------------------- DDP: every sentence once, scored as seqeval does
@pytest.mark.slow
def test_two_ddp_processes_score_every_sentence_as_seqeval_does(tmp_path, files):
    """An undertrained model (1 epoch, F1 well below 1) over 2 gloo processes: the test metrics
    count all 80 sentences (each rank evaluates half of the windows, and a sentence's windows may
    sit on both), and equal seqeval's entity F1 and token accuracy over the export's predictions."""
    cwd = tmp_path / "ddp"
    cwd.mkdir()
    overrides = [*ner_overrides(*files), "trainer.max_epochs=1", "model.optimizer.lr=2e-3", "trainer=ddp_cpu",
                 "trainer.devices=2", "data.batch_size=16", f"paths.cache_dir={tmp_path / 'cache'}",
                 "trainer.enable_progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = sorted((cwd / "outputs" / "runs").iterdir())
    m = metrics_of(run_dir)
    assert m["test/sentences"] == 80
    gold = gold_of(files[1])
    predicted = load_predictor(run_dir / "export", device="cpu").predict_rows([{"tokens": w} for w, _ in gold])
    gold_tags = [tags for _, tags in gold]
    predicted_tags = [row["tags"] for row in predicted]
    assert 0.05 < m["test/f1"] < 0.95, m["test/f1"]  # a mistake in the counting would show
    assert m["test/f1"] == pytest.approx(seqeval_f1(gold_tags, predicted_tags), abs=1e-6)
    # token accuracy is over the model's own tags (BIO, as trained and before any scheme conversion)
    raw = [tags for tags, _ in load_predictor(run_dir / "export", device="cpu").tag([w for w, _ in gold])]
    right = sum(p == g for ps, (_, gs) in zip(raw, gold) for p, g in zip(ps, convert(gs, "BIO")))
    assert m["test/accuracy"] == pytest.approx(right / sum(map(len, gold_tags)), abs=1e-6)


# ----------------------------------------------------------------- bad input: one line, file and line
def _prepare(tmp_path: Path, train_text: str, test_text: str | None = None, **settings):
    from lit_nlp.data.token_classification import TokenClassificationDataModule
    from lit_nlp.data.tokenizers import WordPieceTokenizer

    tmp_path.mkdir(parents=True, exist_ok=True)
    train_file = tmp_path / "train.conll"
    train_file.write_text(train_text)
    test_file = None
    if test_text is not None:
        test_file = tmp_path / "test.conll"
        test_file.write_text(test_text)
    dm = TokenClassificationDataModule(train_file=str(train_file), test_file=str(test_file) if test_file else None,
                                       cache_dir=str(tmp_path / "cache"), tokenizer=WordPieceTokenizer(vocab_size=60),
                                       max_length=16, stride=4, **settings)
    dm.prepare_data()
    dm.setup()
    return dm


GOOD = "".join(f"john\tB-PER\nsmith\tI-PER\nsaw\tO\nparis\tB-LOC\n{w}\tO\n\n" for w in ["today", "again", "there"] * 4)


@pytest.mark.parametrize("text, expected", [
    (GOOD + "mary\tB-PER\tX\nsaw\tO\n\n", "line 73 has 3"),
    (GOOD.replace("saw\tO", "saw\tB_PER", 1), "line 3: tag 'B_PER' is not O or B-/I-/E-/S-<type>"),
    (GOOD.replace("saw\tO", "saw\tU-PER", 1), "BILOU; rename U- to S- and L- to E-"),
    ("", "data file is empty"),
    ("john\nsmith\n\n", "line 1: 1 column; a CoNLL file needs the token first and its tag"),
    ("-DOCSTART- -X- O\n\n-DOCSTART- -X- O\n", "holds only -DOCSTART- lines (2), no tokens"),
    (GOOD.replace("B-PER", "O").replace("I-PER", "O").replace("B-LOC", "O"), "no entity in 12 sentences"),
])
def test_bad_training_files_stop_with_file_and_line(tmp_path, text, expected):
    from lit_nlp.errors import LitNlpError

    with pytest.raises(LitNlpError) as err:
        _prepare(tmp_path, text)
    message = one_line(err)
    assert expected in message and "train.conll" in message, message


def test_evaluation_file_in_another_scheme_stops(tmp_path):
    from lit_nlp.errors import LitNlpError

    with pytest.raises(LitNlpError) as err:
        _prepare(tmp_path, GOOD, test_text=GOOD + "x\tB-PER\ny\tE-PER\n\n")
    message = one_line(err)
    assert "test.conll, line 74: tag 'E-PER' is not a BIO tag (the scheme was told from the training tags)" in message


def test_unknown_type_in_an_evaluation_file_stops_or_is_counted_as_o(tmp_path):
    from lit_nlp.errors import LitNlpError

    test = GOOD + "acme\tB-ORG\ncorp\tI-ORG\n\n"
    with pytest.raises(LitNlpError) as err:
        _prepare(tmp_path / "a", test_text=test, train_text=GOOD)
    message = one_line(err)
    assert "test.conll, line 73: 2 tags of types ['ORG']" in message and "data.unknown_tags=O" in message
    dm = _prepare(tmp_path / "b", test_text=test, train_text=GOOD, unknown_tags="O")
    report = dm.report()
    assert report["data/unknown_tags/test"] == 2 and report["data/rows/test"] == 13
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_iob1_is_read_as_its_entities_and_label_names_fix_the_order(tmp_path):
    """IOB1 (I- opens an entity; B- only between two of one type) is told apart and trained as
    BIO, entity for entity; label_names (types) order the labels."""
    iob1 = GOOD.replace("B-PER", "I-PER").replace("B-LOC", "I-LOC") + "rome\tI-LOC\nlima\tB-LOC\n\n"
    dm = _prepare(tmp_path, iob1, label_names=["PER", "LOC"])
    assert dm.meta["scheme"] == "IOB1" and dm.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [json.loads(line) for line in (dm.cache_path / "train.jsonl").read_text().splitlines()]
    assert {tuple(r["tags"]) for r in rows} >= {("B-LOC", "B-LOC"), ("B-PER", "I-PER", "O", "B-LOC", "O")}
    assert all(convert(r["tags"], "BIO") == r["tags"] for r in rows)


def test_token_lists_in_jsonl_with_tag_ids(tmp_path):
    """jsonl rows with a list of tokens and a list of tag ids (as Hugging Face datasets export
    them), label_names naming the BIO tags in id order: read, labelled in that order."""
    from lit_nlp.data.token_classification import TokenClassificationDataModule
    from lit_nlp.data.tokenizers import WordPieceTokenizer

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [{"words": ["john", "smith", "saw", "paris", w], "ner": [1, 2, 0, 3, 0]} for w in ["today", "again"] * 10]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = TokenClassificationDataModule(train_file=str(path), tokens_column="words", tags_column="ner",
                                       label_names=names, cache_dir=str(tmp_path / "cache"),
                                       tokenizer=WordPieceTokenizer(vocab_size=60), max_length=16, stride=4)
    dm.prepare_data()
    dm.setup()
    assert dm.labels == names and dm.meta["scheme"] == "BIO"
    report = dm.report()
    assert sum(report[f"data/rows/{s}"] for s in ("train", "validation", "test")) == report["data/rows_read/train"] == 20
    batch = dm.collate([dm.datasets["train"][0]])
    assert batch["labels"][0].tolist()[1:6] == [1, 2, 0, 3, 0]  # [CLS] then one whole-word piece per word


def test_static_shapes_and_bf16_score_every_sentence_once(tmp_path, files):
    """Static shapes fill short batches with copies of a real window (data/shapes.py): they must
    not be scored; bf16-mixed trains on the CPU. One epoch, every test sentence counted once."""
    run_dir = tmp_path / "run"
    train(compose_cfg([*ner_overrides(*files), "trainer.max_epochs=1", "data.static_shapes=true",
                       "data.eval_batch_size=48", "trainer.precision=bf16-mixed"], run_dir))
    m = metrics_of(run_dir)
    assert m["test/sentences"] == m["data/rows/test"] == 80
    assert 0.0 < m["test/f1"] <= 1.0
