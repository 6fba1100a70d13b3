"""suite=data: data preparation as corpora grow. For each size in `sizes`, a corpus of SST-2's
training sentences (copy k of the 67,349 sentences ends in " k", so the copies stay distinct
and de-duplication keeps them; SST-2's own repeats and conflicts are dropped in every copy) is
written as a tsv and prepared as `python train.py data=tsv` would prepare it (default cleaning,
splits 0.1/0.1, MiniLM's tokenizer, max_length 128, a cold cache): by the streamed preparation
(lit_nlp.data.prepare, `num_proc` processes), and, up to `baseline_max_rows`, by the whole-file
path it replaced (lit_nlp.bench.data_baseline, with the cleaning steps as they ran then). Each run is a process of its own (`isolate`)
whose tree's resident memory (RSS) and proportional set size (PSS: pages shared by forked
workers counted once) are sampled every SAMPLE_S; rows/s is corpus rows over the seconds from
the files to the finished cache, imports left out; CPU s is user + system time of the process
and its workers during the preparation, which says how much of the machine a run had when
others use it too; "of which main process" is the reading and writing process's CPU seconds
(imports included), the part that more cores do not spread.

`python -m lit_nlp.bench.data_prep '<json>'` is the run in its own process (used by run_data)."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_S = 0.2
STEPS = ["unicode", "html", "urls", "emails", "mentions", "contractions", "whitespace"]  # conf/data/cleaning/default
LABEL_NAMES = ["negative", "positive"]
# issue 18's targets on 2 cores
TARGET_PEAK_GB, TARGET_FLATNESS, TARGET_SPEEDUP, TARGET_ROWS_PER_S = 3.0, 1.5, 4.0, 19_000


def write_corpus(rows: int, sst2_train: str, path: Path) -> Path:
    """`rows` rows of SST-2's training sentences, copy k (k >= 1) with " k" appended."""
    with open(sst2_train, encoding="utf-8") as fh:
        header, *lines = fh.read().splitlines()
    sentences = [line.rsplit("\t", 1) for line in lines if line]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        for start in range(0, rows, len(sentences)):
            copy = start // len(sentences)
            suffix = f" {copy}" if copy else ""
            out.write("".join(f"{text}{suffix}\t{label}\n" for text, label in sentences[:rows - start]))
    return path


# ----------------------------------------------------------------------------- one run
def prepare_once(side: str, corpus: str, cache_dir: str, num_proc: int | None) -> dict:
    """Prepare `corpus` into `cache_dir` by `side` (streamed | whole); {seconds, cpu_s, rows}.
    The modules are imported before the clock starts (a run's imports do not grow with its rows)."""
    import datasets  # noqa: F401  (both sides write datasets folders)
    import transformers  # noqa: F401

    from lit_nlp.bench.data_baseline import WholeFileCleaner, prepare_whole
    from lit_nlp.data.classification import ClassificationDataModule
    from lit_nlp.data.tokenizers import PretrainedTokenizer, tokenizer_before_data
    from lit_nlp.resolvers import minilm_dir

    source = PretrainedTokenizer(minilm_dir())
    settings = dict(text_column="sentence", label_column="label", label_names=LABEL_NAMES, val_ratio=0.1,
                    test_ratio=0.1, seed=42, max_length=128)
    before = _cpu_seconds()
    start = time.perf_counter()
    if side == "streamed":
        dm = ClassificationDataModule(train_file=corpus, format="tsv", cleaning={"steps": STEPS}, cache_dir=cache_dir,
                                      tokenizer=source, num_proc=num_proc, **settings)
        dm.prepare_data()
        meta = json.loads((dm.cache_path / "meta.json").read_text())
    else:
        cleaner = WholeFileCleaner(STEPS)
        tokenizer = tokenizer_before_data(source, cleaner)
        folder = Path(cache_dir) / "whole"
        folder.mkdir(parents=True, exist_ok=True)
        meta = prepare_whole(folder, {"train": corpus}, tokenizer, cleaner, fmt="tsv", **settings)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_s": _cpu_seconds() - before, "rows_kept": sum(meta["rows"].values()),
            "rows_read": sum(meta["rows_read"].values())}


def _cpu_seconds() -> float:
    """User + system seconds of this process and of the children it has waited for (workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class TreeMemory:
    """Peak RSS and PSS summed over a process and its descendants, sampled in a thread, and the
    CPU seconds each of them had used when last seen (the preparing process apart from its
    workers: what more cores cannot spread)."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.peak_rss = self.peak_pss = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                info = proc.memory_full_info()
                times = proc.cpu_times()
            except psutil.Error:  # a worker that ended between the listing and the reading
                continue
            rss, pss = rss + info.rss, pss + info.pss
            self.cpu[proc.pid] = times.user + times.system
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_S)


def measure(side: str, corpus: Path, cache_dir: Path, opts: dict) -> dict:
    """One preparation, in its own process when `isolate` (the benchmark) or in this one (the
    test's quick run), with its peak memory."""
    args = {"side": side, "corpus": str(corpus), "cache_dir": str(cache_dir), "num_proc": opts["num_proc"]}
    load = os.getloadavg()[0]
    if opts["isolate"]:
        result_file = cache_dir.parent / f"{cache_dir.name}.json"
        args["result_file"] = str(result_file)
        proc = subprocess.Popen([sys.executable, "-m", "lit_nlp.bench.data_prep", json.dumps(args)])
        with TreeMemory(proc.pid) as memory:
            proc.wait()
        if proc.returncode:
            raise RuntimeError(f"the {side} preparation of {corpus} failed (exit {proc.returncode}); see its output")
        result = json.loads(result_file.read_text())
    else:
        with TreeMemory(os.getpid()) as memory:
            result = prepare_once(side, str(corpus), str(cache_dir), opts["num_proc"])
    rows = result["rows_read"]
    main_cpu = memory.cpu.get(memory.root.pid, 0.0)
    return {"side": side, "rows": rows, **result, "rows_per_s": rows / result["seconds"],
            "peak_rss_gb": memory.peak_rss / 2**30, "peak_pss_gb": memory.peak_pss / 2**30,
            # CPU of the preparing process (imports included) and of its workers, as last sampled
            "main_cpu_s": main_cpu, "workers_cpu_s": sum(memory.cpu.values()) - main_cpu,
            "load_average_1min": [load, os.getloadavg()[0]], "isolated": opts["isolate"]}


# ----------------------------------------------------------------------------- the part
def run_data(opts: dict) -> dict:
    """Every size, the streamed path, then the whole-file one up to baseline_max_rows; the
    corpora and caches are removed after each size unless keep_files."""
    from lit_nlp.data.prepare import available_cores

    out = Path(opts["out"])
    rows, skipped = [], []
    for size in opts["sizes"]:
        corpus = write_corpus(size, opts["sst2_train"], out / "corpora" / f"sst2_x{size}.tsv")
        for side in ("streamed", "whole"):
            if side == "whole" and size > opts["baseline_max_rows"]:
                skipped.append(f"{size:,} rows, whole-file path: over baseline_max_rows={opts['baseline_max_rows']:,}")
                continue
            cache = out / "caches" / f"{side}_{size}"
            log.warning("bench: preparing %d rows, %s path", size, side)
            rows.append(measure(side, corpus, cache, opts))
            log.warning("bench: %s", {k: rows[-1][k] for k in ("side", "rows", "seconds", "rows_per_s", "peak_rss_gb")})
            if not opts["keep_files"]:
                shutil.rmtree(cache, ignore_errors=True)
        if not opts["keep_files"]:
            corpus.unlink()
    return {"rows": rows, "skipped": skipped, "num_proc": opts["num_proc"] or available_cores(),
            "cores": available_cores(), "targets": targets(rows)}


def targets(rows: list[dict]) -> dict:
    """Issue 18's targets, judged on the sizes that ran: peak memory of the largest streamed run,
    its growth over the run a tenth its size, and rows/s against the whole-file path at the
    largest size both ran."""
    streamed = {r["rows"]: r for r in rows if r["side"] == "streamed"}
    whole = {r["rows"]: r for r in rows if r["side"] == "whole"}
    out: dict = {}
    if streamed:
        largest = streamed[max(streamed)]
        out["peak_rss_gb"] = {"rows": largest["rows"], "value": largest["peak_rss_gb"],
                              "met": largest["peak_rss_gb"] < TARGET_PEAK_GB}
        out["rows_per_s"] = {"rows": largest["rows"], "value": largest["rows_per_s"],
                             "met": largest["rows_per_s"] >= TARGET_ROWS_PER_S}
        smaller = [n for n in streamed if n * 10 == largest["rows"]]
        if smaller:
            ratio = largest["peak_rss_gb"] / streamed[smaller[0]]["peak_rss_gb"]
            out["flatness"] = {"rows": [smaller[0], largest["rows"]], "value": ratio, "met": ratio <= TARGET_FLATNESS}
    both = sorted(set(streamed) & set(whole))
    if both:
        speedup = streamed[both[-1]]["rows_per_s"] / whole[both[-1]]["rows_per_s"]
        out["speedup"] = {"rows": both[-1], "value": speedup, "met": speedup >= TARGET_SPEEDUP}
    return out


def table(prep: dict, opts: dict) -> list[str]:
    lines = [f"Preparing SST-2-derived tsv corpora as `python train.py data=tsv` does (default cleaning, MiniLM's "
             f"tokenizer, max_length 128, cold cache); streamed path with num_proc={prep['num_proc']} on "
             f"{prep['cores']} cores.", "",
             "| rows | path | seconds | rows/s | peak RSS, process tree | peak PSS | CPU s | of which main process | "
             "rows kept | x whole-file |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    whole = {r["rows"]: r for r in prep["rows"] if r["side"] == "whole"}
    for r in prep["rows"]:
        ratio = (f"{r['rows_per_s'] / whole[r['rows']]['rows_per_s']:.1f}x"
                 if r["side"] == "streamed" and r["rows"] in whole else "")
        lines.append(f"| {r['rows']:,} | {r['side']} | {r['seconds']:,.1f} | {r['rows_per_s']:,.0f} | "
                     f"{r['peak_rss_gb']:.2f} GB | {r['peak_pss_gb']:.2f} GB | {r['cpu_s']:,.0f} | "
                     f"{r['main_cpu_s']:,.0f} | {r['rows_kept']:,} | {ratio} |")
    lines += [f"- {note}" for note in prep["skipped"]]
    names = {"peak_rss_gb": f"peak RSS < {TARGET_PEAK_GB:g} GB", "flatness": f"peak within {TARGET_FLATNESS}x of "
             "a tenth the rows", "speedup": f">= {TARGET_SPEEDUP:g}x the whole-file path's rows/s",
             "rows_per_s": f">= {TARGET_ROWS_PER_S:,} rows/s"}
    checks = [f"{names[k]}: {'met' if v['met'] else 'not met'} ({v['value']:,.2f})"
              for k, v in prep["targets"].items()]
    lines += ["", "Targets (largest sizes run): " + ("; ".join(checks) if checks else "none judged") + "."]
    return lines


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lit_nlp.data.prepare").setLevel(logging.INFO)
    run = json.loads(sys.argv[1])
    result = prepare_once(run["side"], run["corpus"], run["cache_dir"], run["num_proc"])
    Path(run["result_file"]).write_text(json.dumps(result))
