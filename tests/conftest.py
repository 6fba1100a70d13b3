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
# core is left to a subprocess that a test starts beside pytest (conftest.Started)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

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
