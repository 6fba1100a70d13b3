"""Shared test helpers: the real conf/ composed with Hydra's compose API, shrunk to tiny
random-init models, CPU, and a tmp run dir and cache; synthetic data written per test."""

from __future__ import annotations

import json
import logging
import os
import random
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

# nothing in the tests may reach a model hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# one intra-op thread, here and in every train.py / predict.py the tests start (they inherit
# this environment): width-64 models gain nothing from a second thread (a tiny-BERT step of 32 x
# 32 tokens: 16.5 ms on one, 17.5 ms on two, idle machine), while on the shared 2-core machine two
# threads spin on each other (0.3-0.7 s a step while another job held a core); and the second
# core runs pytest's other worker (pyproject.toml's addopts: -n 2). Set before
# anything imports torch: tests compare runs in this process with runs in subprocesses bit for
# bit, and another thread count sums in another order
os.environ.setdefault("OMP_NUM_THREADS", "1")

# absl's log handler (absl comes with tensorboard and rouge-score) writes to the sys.stderr of the
# moment absl is imported, and when logging's handlers are closed (Hydra's job logging does it
# in every run_cli) it closes that stream unless it is sys.stderr at that moment. Imported
# during a test, that stream is pytest's capture file; closed later under capsys, every
# following test of the worker errors with "I/O operation on closed file" in pytest's capture.
# Its handler writes to the process's own stderr instead, which it never closes
import absl.logging  # noqa: E402

absl.logging.get_absl_handler().python_handler.setStream(sys.__stderr__)

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# The files that take longest, longest first (seconds summed over their tests in a run with two
# workers, 2026-12-07: 101, 94, 63, 48, 40, 35, 31, 30, 29, 28, 26, 26, 26, 20, 20, 19, 19; the
# rest under 18 each): pytest hands whole files to its two workers (pyproject.toml's addopts) in
# this order, then the rest in collection order, so that no long file is left for one worker to
# run alone at the end while the other has finished. A file missing here only runs later.
LONGEST_FILES = ["test_distributed.py", "test_resume.py", "test_sweep.py", "data/test_classification_data.py",
                 "test_bench.py", "test_serve.py", "test_qa_train.py", "test_configs.py", "test_seq2seq_train.py",
                 "test_lora.py", "test_onnx.py", "test_token_classification_train.py", "test_train.py",
                 "test_fast_path.py", "data/test_prepare.py", "test_plots.py", "test_tracking.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}

    def file_rank(item) -> int:
        return rank.get(Path(item.path).relative_to(ROOT / "tests").as_posix(), len(rank))

    items.sort(key=file_rank)  # stable: tests keep their order within a file


POSITIVE = ["superb", "delightful", "brilliant", "moving", "wonderful", "charming", "gripping", "stunning"]
NEGATIVE = ["dreadful", "tedious", "awful", "clumsy", "boring", "painful", "lifeless", "hollow"]
FILLER = ("the a film plot actors story music scenes ending camera script director cast was is and "
          "with its this that quite very somewhat in of to for by").split()


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable sentiment task: each sentence has filler words and one cue word whose list
    decides the label. Texts are unique."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(["positive", "negative"])
        words = rng.choices(FILLER, k=rng.randint(4, 12))
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows


TOPICS = {"sport": ["goal", "match", "league"], "money": ["bank", "market", "price"],
          "tech": ["phone", "software", "chip"]}


def multilabel_rows(n: int, seed: int = 0) -> list[dict]:
    """Texts with the cue words of 0-2 topics: `labels` lists the topics ("money|tech"), and each
    topic has a 0/1 column too."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        topics = sorted(rng.sample(sorted(TOPICS), rng.choice([0, 1, 1, 2])))
        words = rng.choices(["the", "a", "news", "today", "report", "about", "new", "big"], k=rng.randint(3, 7))
        for topic in topics:
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[topic]))
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "labels": "|".join(topics), **{t: int(t in topics) for t in TOPICS}})
    return rows


# a learnable extraction task, shared by the generative (T5) and the span QA tests
CATEGORIES = {
    "color": "red blue green yellow purple orange black white pink brown".split(),
    "animal": "cat dog horse mouse tiger lion bear wolf fox rabbit".split(),
    "city": "paris london rome berlin madrid tokyo cairo lima oslo vienna".split(),
    "fruit": "apple banana cherry grape lemon mango peach pear plum melon".split(),
    "tool": "hammer spade drill wrench shovel rake axe chisel pliers ladder".split(),
}
EXTRACTION_FILLER = "the a we saw and then it was near by with on in very old new small big".split()


def hidden_word_rows(n: int, seed: int, filler_words: tuple[int, int]) -> list[dict]:
    """Contexts hiding one word of each of 3 categories among `filler_words` (min, max) filler
    words; the question names one of the 3 categories, the answer is its word (with the
    character where it starts in the context)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        picked = {c: rng.choice(CATEGORIES[c]) for c in rng.sample(sorted(CATEGORIES), 3)}
        words = rng.choices(EXTRACTION_FILLER, k=rng.randint(*filler_words))
        for word in picked.values():
            words.insert(rng.randrange(len(words) + 1), word)
        context = " ".join(words)
        asked = rng.choice(sorted(picked))
        answer = picked[asked]
        rows.append({"question": f"which {asked} is mentioned?", "context": context, "answer": answer,
                     "start": (" " + context + " ").index(" " + answer + " ")})
    return rows


# token classification: people, places and companies among filler words
FIRST = ["john", "mary", "alice", "bob", "carol", "dave", "emma", "frank"]
LAST = ["smith", "jones", "brown", "white", "green", "black"]
CITIES = [["paris"], ["berlin"], ["tokyo"], ["rome"], ["new", "york"], ["san", "diego"], ["hong", "kong"]]
COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli"]
NER_FILLER = ["the", "a", "met", "visited", "in", "and", "today", "with", "works", "for", "said", "went", "to",
              "from", "yesterday", "lives", "near", "big", "old", "quiet", "office", "river", "team", "city", "again"]


def tagged_sentence(rng: random.Random, long: bool) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Words and (type, start, end) entities: person (first [last]), location (one or two
    words), organisation (name [corp]) among filler words, entities of one type sometimes side by
    side; 20-30 words (several windows of 24 sub-tokens) when `long`."""
    words, spans = [], []
    target = rng.randint(20, 30) if long else rng.randint(4, 12)
    while len(words) < target:
        kind = rng.choice(["O", "O", "O", "PER", "LOC", "ORG"])
        if kind == "O":
            words.append(rng.choice(NER_FILLER))
            continue
        if kind == "PER":
            entity = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.6 else [])
        elif kind == "LOC":
            entity = list(rng.choice(CITIES))
        else:
            entity = [rng.choice(COMPANIES)] + (["corp"] if rng.random() < 0.4 else [])
        spans.append((kind, len(words), len(words) + len(entity)))
        words.extend(entity)
    return words, spans


def tagged_sentences(n: int, seed: int) -> list[tuple[list[str], list[tuple[str, int, int]]]]:
    rng = random.Random(seed)
    return [tagged_sentence(rng, long=i % 5 == 0) for i in range(n)]


def write_conll(items, path: Path, scheme: str = "BIOES", docs: int = 4) -> Path:
    """CoNLL as CoNLL-2003 writes it: token, a POS-like column, the tag (tab-separated), a
    blank line after each sentence, `docs` documents opened by -DOCSTART- lines."""
    from lit_nlp.data.tag_schemes import tags_from_entities

    lines, per_doc = [], -(-len(items) // docs)
    for i, (words, spans) in enumerate(items):
        if i % per_doc == 0:
            lines += ["-DOCSTART-\t-X-\tO", ""]
        tags = tags_from_entities(spans, len(words), scheme)
        lines += [f"{word}\tX\t{tag}" for word, tag in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_table(rows: list[dict], path: Path) -> Path:
    frame = pd.DataFrame(rows)
    path = Path(path)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        raise ValueError(path)
    return path


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    return write_table(synthetic_rows(400), tmp_path / "synthetic.csv")


def compose_cfg(overrides: list[str], run_dir: Path, cache_dir: Path | None = None, config_name: str = "train"):
    """Compose conf/ with `overrides`, on CPU, writing into `run_dir`."""
    from hydra import compose, initialize_config_dir

    import lit_nlp  # noqa: F401  (registers the ${lit_nlp.*:} resolvers)

    base = [f"paths.output_dir={run_dir}", f"paths.cache_dir={cache_dir or Path(run_dir).parent / 'cache'}",
            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=base + list(overrides))


def compose_resume(run: Path, overrides: list[str]):
    """What `python train.py resume=<run>` composes: the run's saved config plus overrides."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(run), version_base="1.3"):
        return compose("config", overrides=[f"resume={run}", *overrides])


def metrics_of(run_dir: Path) -> dict:
    """A run's metrics.json."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def one_line(err) -> str:
    """The message of a raised error (pytest's ExceptionInfo), checked to be one non-empty line."""
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


def tiny_overrides(train_file: Path, model: str = "bert_tiny", epochs: int = 1) -> list[str]:
    return [f"model={model}", "data=csv", f"data.train_file={train_file}", f"trainer.max_epochs={epochs}",
            "data.batch_size=16", "data.max_length=32", "tokenizer.vocab_size=300"]


# resume: a crash at a chosen batch, and two runs compared as a user reads them; the runs log
# every step, so the training losses after the restart can be compared one by one
COMPARABLE_RUN = ["trainer.deterministic=true", "trainer.log_every_n_steps=1"]


class Crash(Exception):
    pass


def crash_at(monkeypatch, epoch: int, batch: int) -> None:
    """Make the next run raise as it starts training batch `batch` of epoch `epoch` (a crash
    loses what the last checkpoint does not hold, as a kill does). Through the Throughput
    callback, which every run has and which does nothing at a batch's start."""

    def crashing(self, trainer, pl_module, batch_data, batch_idx):
        if (trainer.current_epoch, batch_idx) == (epoch, batch):
            raise Crash

    from lit_nlp.callbacks import Throughput

    monkeypatch.setattr(Throughput, "on_train_batch_start", crashing)


def scalars(run: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar, over every events file of the run (a resumed run
    adds its own); a step logged twice (before a crash and again after the restart) keeps the
    later value, which is what the resumed run trained with."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[int, float] = {}
    files = sorted((run / "tensorboard").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags()["scalars"]:
            out.update({e.step: e.value for e in events.Scalars(tag)})
    return out


def weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(straight: Path, resumed: Path, monitor: str, restart_step: int) -> None:
    """Everything a user reads from the two runs agrees, exactly (deterministic CPU runs)."""
    a, b = metrics_of(straight), metrics_of(resumed)
    for key in sorted(set(a) | set(b)):
        if key.startswith("train/seconds") or key == "train/samples_per_sec":
            continue  # wall time
        assert b.get(key) == a.get(key), key
    # every epoch's validation, and every training loss from the restart on
    assert scalars(resumed, monitor) == scalars(straight, monitor)
    losses_a, losses_b = scalars(straight, "train/loss_step"), scalars(resumed, "train/loss_step")
    after = {s: v for s, v in losses_a.items() if s >= restart_step}
    assert after and {s: losses_b.get(s) for s in after} == after
    import torch

    wa, wb = weights(straight / "checkpoints" / "last.ckpt"), weights(resumed / "checkpoints" / "last.ckpt")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


# LoRA: a pretrained base to adapt, built offline
def save_bert_base(folder: Path, vocab_size: int, seed: int = 0) -> Path:
    """A random-init BERT encoder saved as a hub encoder ships (no task head)."""
    # width 64, 2 layers, feed-forward 512: about 190k parameters (760 kB of float32), so that
    # the checkpoint of the 8k adapter and head parameters is far below it
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=512, max_position_embeddings=64)).save_pretrained(folder)
    return folder


def pretrained_tiny_bert(folder: Path, texts: list[str], vocab_size: int = 300) -> Path:
    """A "pretrained" base for model=minilm's config (LoRA needs one): save_bert_base's encoder
    and a WordPiece tokenizer trained on `texts`, in one folder."""
    from lit_nlp.data.tokenizers import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(vocab_size=vocab_size).build(texts)
    tokenizer.save_pretrained(folder)
    return save_bert_base(folder, len(tokenizer))


class Started:
    """A command started in the background (`subprocess.Popen`), so that it imports torch and
    Lightning (about 5 s) on one core while the test process works on the other. Its output
    goes to files in `folder`, not to pipes that could fill meanwhile; `result()` waits for it."""

    def __init__(self, cmd: list[str], folder: Path, **popen_kwargs):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cmd, self.out, self.err = cmd, self.folder / "stdout.txt", self.folder / "stderr.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **popen_kwargs)

    def result(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, self.out.read_text(), self.err.read_text())

    def stop(self) -> None:
        """Kill it if it still runs (a test that failed before waiting for it)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(args: list[str]) -> None:
    """`python train.py <args>` in this process (no interpreter start per sweep); Hydra's global
    state and the root logger's handlers are restored afterwards."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    argv, root_handlers = sys.argv, logging.getLogger().handlers[:]
    sys.argv = ["train.py", *args]
    try:
        # as __main__, so Hydra finds conf/ next to train.py as it does for the real command
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        logging.getLogger().handlers[:] = root_handlers  # Hydra's job logging replaced pytest's
        logging.captureWarnings(False)  # lit_nlp.console turned it on for train.log


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory) -> tuple[Path, float]:
    """One tiny BERT trained on the synthetic sentiment task (600 rows, 4 epochs at lr 3e-3:
    480 training rows = 30 steps of 16 an epoch; it reaches val and test acc 1.0), shared by
    every test that only reads a finished classification run (test_train, test_predict):
    (run dir, value returned by train). A test that writes into a run copies it first; the
    session's end checks that no test changed a file of it."""
    from lit_nlp.train import train

    tmp = tmp_path_factory.mktemp("trained_classifier")
    data = write_table(synthetic_rows(600, seed=4), tmp / "train.csv")
    run = tmp / "run"
    best = train(compose_cfg(tiny_overrides(data, epochs=4) + ["model.optimizer.lr=3e-3"], run))
    before = _snapshot(run)
    yield run, best
    assert _snapshot(run) == before, "a test changed the shared trained_classifier run; copy it into tmp_path first"
