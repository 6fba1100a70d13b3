"""The data and inference side: preparing the data (cold cache) and loading it again (cache
hit), raw tokenization speed, and CPU prediction through the ClassificationPredictor."""

from __future__ import annotations

import statistics
import time

import torch

from lit_nlp.bench.workloads import real_data_module
from lit_nlp.codecs.classification import tokenize
from lit_nlp.data.classification import ClassificationDataModule
from lit_nlp.data.io import read_table
from lit_nlp.predictors.classification import ClassificationPredictor


def timed_setup(opts: dict, cache_dir: str, static_shapes: bool = False) -> tuple[ClassificationDataModule, float]:
    """A fresh data module's prepare_data + setup, timed: the first call in an empty cache dir
    reads, cleans, splits, tokenizes and writes; a second one with the same settings loads."""
    start = time.perf_counter()
    datamodule = real_data_module(opts, cache_dir, static_shapes)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule, time.perf_counter() - start


def tokenization_speed(datamodule: ClassificationDataModule, opts: dict) -> dict:
    """The data module's tokenize() (fast tokenizer, truncation, no padding) over the cleaned
    training texts, as the cache build runs it, without the reading and cleaning around it."""
    frame = read_table(datamodule.cache_path / "train.jsonl", "jsonl")
    texts = frame["text"].astype(str).tolist()
    start = time.perf_counter()
    encoded = tokenize(datamodule.tokenizer, texts, None, opts["max_length"])
    seconds = time.perf_counter() - start
    tokens = sum(len(ids) for ids in encoded["input_ids"])
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / seconds,
            "tokens_per_s": tokens / seconds}


def prediction_speed(model: torch.nn.Module, datamodule: ClassificationDataModule, opts: dict) -> dict:
    """ClassificationPredictor (cleaning, tokenizing, batching in length order, softmax) on the CPU:
    samples/s over `predict_rows` texts in batches of 32, and the median latency of one
    sentence over `latency_runs` calls (after one warm-up call)."""
    if opts["predict_file"]:
        frame = read_table(opts["predict_file"], opts["data_format"])
        texts = frame[opts["text_column"]].astype(str).tolist()
    else:
        texts = read_table(datamodule.cache_path / "train.jsonl", "jsonl")["text"].astype(str).tolist()
    texts = texts[:opts["predict_rows"]]
    predictor = ClassificationPredictor(model, datamodule.tokenizer, datamodule.text_settings(), device="cpu")
    predictor.predict(texts[:32])
    start = time.perf_counter()
    predictor.predict(texts, batch_size=32)
    seconds = time.perf_counter() - start
    latencies = []
    for text in (texts * opts["latency_runs"])[:opts["latency_runs"]]:
        one = time.perf_counter()
        predictor.predict([text])
        latencies.append(time.perf_counter() - one)
    return {"texts": len(texts), "samples_per_s": len(texts) / seconds,
            "latency_ms_median": 1000 * statistics.median(latencies),
            "latency_ms_p90": 1000 * sorted(latencies)[int(0.9 * (len(latencies) - 1))],
            "threads": torch.get_num_threads()}
