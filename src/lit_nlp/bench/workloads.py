"""What the harness trains: architectures built from their default configs (no weights are
needed to time them), fixed-length synthetic batches, and real text through our data module."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import torch

from lit_nlp.data.classification import ClassificationDataModule
from lit_nlp.data.tokenizers import PretrainedTokenizer, WordPieceTokenizer
from lit_nlp.models.classification import ClassificationModule
from lit_nlp.models.seq2seq import Seq2SeqModule

# model_type + sizes, as `model.backbone.config` takes them. The base sizes are the defaults
# of BertConfig(), DistilBertConfig() and T5Config() (= t5-small), written out so the table
# says what was run; "mini" (BERT's 4-layer/256 miniature) and "tiny" are for CPUs and tests.
def _sizes(model_type: str, width: int, layers: int, heads: int, ffn: int, vocab: int) -> dict:
    """One architecture's config in its model type's own key names."""
    keys = {"bert": ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
            "distilbert": ("dim", "n_layers", "n_heads", "hidden_dim"),
            "t5": ("d_model", "num_layers", "num_heads", "d_ff")}[model_type]
    config = {"model_type": model_type, **dict(zip(keys, (width, layers, heads, ffn))), "vocab_size": vocab}
    if model_type == "t5":  # as many decoder layers; T5's head width is its own key
        config.update(num_decoder_layers=layers, d_kv=width // heads)
    return config


ARCHITECTURES = {
    "bert-base": _sizes("bert", 768, 12, 12, 3072, 30522),
    "distilbert-base": _sizes("distilbert", 768, 6, 12, 3072, 30522),
    "t5-small": _sizes("t5", 512, 6, 8, 2048, 32128),
    "bert-mini": _sizes("bert", 256, 4, 4, 1024, 30522),
    "distilbert-mini": _sizes("distilbert", 256, 4, 4, 1024, 30522),
    "t5-mini": _sizes("t5", 256, 4, 8, 1024, 32128),
    "bert-tiny": _sizes("bert", 64, 2, 2, 128, 1000),
    "distilbert-tiny": _sizes("distilbert", 64, 2, 2, 128, 1000),
    "t5-tiny": _sizes("t5", 64, 2, 4, 256, 1000),
}
# T5 targets: a fixed 32 tokens (a short answer or label), whatever the source length
TARGET_LENGTH = 32
PAD, EOS = 0, 1
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 5e-5, "weight_decay": 0.01}
SCHEDULER = {"name": "linear", "warmup_ratio": 0.1}
# Our side's configurations, one row each (the lever table of docs/speed.md), from the plain path to the
# fast path: `eager_foreach`, eager PyTorch with the multi-tensor AdamW (what the issue timed once
# the fused-AdamW crash was patched); `eager`, with the fused AdamW (the default optimizer);
# `compiled`, torch.compile in inductor's default mode (fused kernels, no graphs); `graphs`,
# what model.compile=true runs on a GPU: mode reduce-overhead (the compiled step replayed as CUDA
# graphs) with static shapes (bucket lengths, full batches). Off CUDA `graphs` compiles without
# graphs (there is nothing to replay), so its row measures compile + static shapes only.
LEVERS = {
    "eager_foreach": {"compile": None, "foreach": True, "static_shapes": False},
    "eager": {"compile": None, "foreach": False, "static_shapes": False},
    "compiled": {"compile": {"mode": "default"}, "foreach": False, "static_shapes": False},
    "graphs": {"compile": {"mode": "reduce-overhead"}, "foreach": False, "static_shapes": True},
}


def lever_compile(lever: str, backend: str = "inductor") -> dict | None:
    """The `compile` setting of a lever; another backend (aot_eager: the tests) has no modes."""
    options = LEVERS[lever]["compile"]
    if options is None or backend == "inductor":
        return options
    return {"backend": backend}


def lever_optimizer(lever: str) -> dict:
    return {**OPTIMIZER, "foreach": True} if LEVERS[lever]["foreach"] else dict(OPTIMIZER)


def is_seq2seq(arch: str) -> bool:
    return ARCHITECTURES[arch]["model_type"] == "t5"


def build_module(arch: str, compile: dict | bool | None = None, seed: int = 0, optimizer: dict | None = None):
    """Our LightningModule for `arch`, random init (seeded: both sides get the same weights)."""
    config = dict(ARCHITECTURES[arch])
    vocab_size = config.pop("vocab_size")
    torch.manual_seed(seed)
    common = dict(backbone={"config": config}, optimizer=optimizer or OPTIMIZER, scheduler=SCHEDULER,
                  vocab_size=vocab_size, pad_token_id=PAD, compile=compile)
    if is_seq2seq(arch):
        # nothing is decoded (no validation runs), but the module insists on a tokenizer
        return Seq2SeqModule(generation={}, task="qa", eos_token_id=EOS, tokenizer=SimpleNamespace(), **common)
    return ClassificationModule(label_names=["negative", "positive"], **common)


def synthetic_rows(arch: str, seq_len: int, n: int, seed: int = 0) -> datasets.Dataset:
    """`n` rows of exactly `seq_len` random tokens (no padding: every position is real), with a
    random label, or a TARGET_LENGTH-token target for T5; `length` feeds our sampler."""
    gen = torch.Generator().manual_seed(seed)
    vocab = ARCHITECTURES[arch]["vocab_size"]
    ids = torch.randint(5, vocab, (n, seq_len), generator=gen)
    rows = {"input_ids": ids.tolist(), "attention_mask": [[1] * seq_len] * n, "length": [seq_len] * n}
    if is_seq2seq(arch):
        rows["labels"] = torch.randint(5, vocab, (n, TARGET_LENGTH), generator=gen).tolist()
    else:
        rows["labels"] = torch.randint(0, 2, (n,), generator=gen).tolist()
    return datasets.Dataset.from_dict(rows)


def real_data_module(opts: dict, cache_dir: str, static_shapes: bool = False) -> ClassificationDataModule:
    """Our classification data module on the real file (SST-2 by default), as train.py builds
    it: cleaning, splits, tokenizing, cache, length-grouped dynamic padding (or static shapes;
    they only change collation, so both read the same cache)."""
    if opts["real_model"] == "minilm":
        from lit_nlp.resolvers import minilm_dir

        tokenizer = PretrainedTokenizer(minilm_dir())
    else:
        tokenizer = WordPieceTokenizer(vocab_size=1000, model_max_length=opts["max_length"])
    return ClassificationDataModule(
        train_file=opts["data_file"], format=opts["data_format"], text_column=opts["text_column"],
        label_column=opts["label_column"], max_length=opts["max_length"], batch_size=opts["batch_size"],
        val_ratio=0.01, test_ratio=0.01, num_workers=opts["num_workers"], pin_memory=opts["pin_memory"],
        pad_to_multiple_of=opts["pad_to_multiple_of"], static_shapes=static_shapes, cache_dir=cache_dir,
        tokenizer=tokenizer)


def real_module(opts: dict, datamodule: ClassificationDataModule, seed: int = 0, compile: dict | None = None,
                optimizer: dict | None = None) -> ClassificationModule:
    if opts["real_model"] == "minilm":
        from lit_nlp.resolvers import minilm_dir

        backbone = {"pretrained": minilm_dir()}
    else:
        config = dict(ARCHITECTURES["bert-tiny"])
        config.pop("vocab_size")
        backbone = {"config": {**config, "max_position_embeddings": opts["max_length"]}}
    torch.manual_seed(seed)
    return ClassificationModule(backbone=backbone, optimizer=optimizer or OPTIMIZER, scheduler=SCHEDULER,
                                compile=compile, **datamodule.model_facts())
