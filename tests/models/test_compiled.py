"""The GPU fast path's code, run on the CPU: what `model.compile` stands for per device, static
shapes (bucket lengths, full batches whose filler rows count nowhere), the bounded number of
compiled graphs they give, the per-shape eager fallback, and eager generation. CUDA graphs
themselves need a GPU (`python -m lit_nlp.bench suite=gpu_check`); the compiler here is
dynamo + AOTAutograd without inductor's code generation (`aot_eager`), which takes a minute
per graph on two cores and is the same front end."""

from __future__ import annotations

import functools
import logging

import pytest
import torch

from lit_nlp.codecs.classification import pad_batch
from lit_nlp.codecs.seq2seq import pad_seq2seq
from lit_nlp.data.shapes import IGNORE_INDEX, bucket_lengths, collate_full_batch, fill_rows, padded_length
from lit_nlp.models.compiled import CompiledModel, EagerFallbacks, compile_options, uses_cuda_graphs
from models.test_classification_module import make_module
from models.test_seq2seq_module import make_module as make_seq2seq_module


def rows(lengths, label_of=lambda i: i % 2):
    return [{"input_ids": [5 + i % 7] * n, "attention_mask": [1] * n, "labels": label_of(i)}
            for i, n in enumerate(lengths)]


def test_compile_options_per_device():
    assert compile_options(False, "cuda") is None and compile_options(None, "cpu") is None
    assert compile_options(True, "cuda") == {"mode": "reduce-overhead"}
    assert compile_options(True, "cpu") == {}
    assert compile_options({"mode": "default", "dynamic": False}, "cuda") == {"mode": "default", "dynamic": False}
    assert uses_cuda_graphs(compile_options(True, "cuda"), "cuda")
    assert not uses_cuda_graphs(compile_options(True, "cpu"), "cpu")
    assert not uses_cuda_graphs({"mode": "reduce-overhead", "backend": "aot_eager"}, "cuda")
    assert not uses_cuda_graphs({}, "cuda")


def test_bucket_lengths_and_padding():
    assert bucket_lengths(128, 8) == [16, 32, 48, 64, 80, 96, 112, 128]
    assert bucket_lengths(64, 4) == [16, 32, 48, 64]
    assert bucket_lengths(30, 8) == [8, 16, 24, 30]  # multiples of 8, capped at max_length
    assert bucket_lengths(128, 1) == [128]
    assert padded_length(17, buckets=[16, 32, 64]) == 32
    assert padded_length(16, buckets=[16, 32, 64]) == 16
    assert padded_length(17, pad_to_multiple_of=8) == 24 and padded_length(17) == 17


def test_full_batch_fills_with_ignored_copies():
    features = rows([3, 5])
    filled = fill_rows(features, 4)
    assert len(filled) == 4 and filled[:2] == features
    assert filled[2]["labels"] == IGNORE_INDEX and filled[2]["input_ids"] == features[0]["input_ids"]
    seq = fill_rows([{"input_ids": [1, 2], "labels": [4, 5, 6]}], 2)
    assert seq[1]["labels"] == [IGNORE_INDEX] * 3
    batch = collate_full_batch(features, lambda f: pad_batch(f, 0, buckets=[8]), rows=4)
    assert batch["input_ids"].shape == (4, 8) and batch["real_rows"] == 2
    assert batch["labels"].tolist() == [0, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_static_batch_gives_the_dynamic_batch_loss_and_metrics():
    """The same 5 rows as a dynamically padded batch and as a static one (padded to bucket 16,
    filled to 8 rows): the same loss, and the same predictions counted by the metrics."""
    module = make_module("bert").eval()
    features = rows([3, 9, 5, 11, 7])
    dynamic = pad_batch(features, 0)
    static = collate_full_batch(features, lambda f: pad_batch(f, 0, buckets=[16]), rows=8)
    assert static["input_ids"].shape == (8, 16)
    with torch.no_grad():
        a, b = module(dynamic), module(static)
        loss_a, loss_b = module._loss(a, dynamic["labels"]), module._loss(b, static["labels"])
    assert loss_b.item() == pytest.approx(loss_a.item(), abs=1e-5)
    assert torch.allclose(a, b[:5], atol=1e-5)
    for batch in (dynamic, static):
        module.eval_step(batch, 0, "val")
    # both updates counted 5 rows each: 10, not 13
    assert int(module.val_confmat.compute().sum()) == 10


def test_seq2seq_filler_rows_count_nowhere():
    module = make_seq2seq_module(tokenizer=object()).eval()
    features = [{"input_ids": [4 + i] * (3 + i), "attention_mask": [1] * (3 + i), "labels": [6, 7, 1][: 1 + i % 3],
                 "references": ["x"], "source": "s"} for i in range(3)]
    dynamic = pad_seq2seq(features, 0)
    static = collate_full_batch(features, lambda f: pad_seq2seq(f, 0, buckets=[8], target_buckets=[4]), rows=6)
    assert static["input_ids"].shape == (6, 8) and static["labels"].shape == (6, 4)
    assert (static["labels"][3:] == IGNORE_INDEX).all() and len(static["references"]) == 6
    with torch.no_grad():
        assert module._loss(static).item() == pytest.approx(module._loss(dynamic).item(), abs=1e-5)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def test_static_shapes_bound_the_compiled_graphs():
    """Twelve training batches of lengths 3..60 with a short last batch, through fwd+bwd of a
    compiled tiny BERT: static shapes give one batch size and at most 4 lengths (buckets of 64);
    dynamo compiles the first, then one graph with the length symbolic; the eval mode adds its
    own. CUDA graphs record one graph per bucket length of that code (bounded by the buckets).
    The same module run eagerly gives the same losses and gradients."""
    import torch._dynamo

    from lit_nlp.models.classification import ClassificationModule
    from models.test_classification_module import BACKBONES

    def build(compile):
        torch.manual_seed(0)
        # no dropout: compiled code draws its masks through other random calls than eager's
        config = {**BACKBONES["bert"], "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
                  "attention_probs_dropout_prob": 0.0}
        module = ClassificationModule(backbone={"config": config}, compile=compile, label_names=["a", "b"],
                                      vocab_size=50, pad_token_id=0,
                                      optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
                                      scheduler={"name": "constant"})
        module.configure_model()
        return module

    module, eager = build({"backend": "aot_eager"}), build(None)
    assert eager._compiled is None
    torch._dynamo.reset()
    before = _graphs()
    buckets = bucket_lengths(64, 4)
    shapes, losses = set(), []
    for step, longest in enumerate([5, 17, 33, 9, 60, 26, 12, 38, 3, 21, 47, 8]):
        features = rows([max(1, longest - i % 3) for i in range(3 if step == 11 else 8)])
        batch = collate_full_batch(features, lambda f: pad_batch(f, 0, buckets=buckets), rows=8)
        shapes.add(tuple(batch["input_ids"].shape))
        pair = [m._loss(m(batch), batch["labels"]) for m in (module, eager)]
        for loss in pair:
            loss.backward()
        losses.append([loss.item() for loss in pair])
    with torch.no_grad():
        logits = [m(batch) for m in (module, eager)]
    assert {s[0] for s in shapes} == {8} and len(shapes) == 4
    assert _graphs() - before <= 3
    assert module._compiled.eager_shapes == set()
    # measured bit-equal (torch 2.13, aot_eager on CPU); 1e-6 leaves room for a reordered sum only
    for compiled_loss, eager_loss in losses:
        assert compiled_loss == pytest.approx(eager_loss, abs=1e-6)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-6, rtol=0)
    for (name, got), want in zip(module.model.named_parameters(), eager.model.parameters()):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-6, rtol=0, msg=name)
    torch._dynamo.reset()


def test_a_shape_that_fails_to_compile_runs_eagerly_with_one_warning(caplog):
    """A compiler failure on one shape (here a backend that refuses length 16) leaves that
    shape eager, warned once, with the eager result; other shapes stay compiled; an error that
    eager PyTorch raises too still propagates."""
    import torch._dynamo

    def refuses_16(gm, example_inputs):
        if any(isinstance(t, torch.Tensor) and tuple(t.shape) == (2, 16) for t in example_inputs):
            raise RuntimeError("cannot capture this shape")
        return gm.forward

    torch._dynamo.reset()
    module = make_module("bert").eval()  # no dropout: outputs comparable
    eager = make_module("bert").eval()
    compiled = CompiledModel(module.model, {"backend": refuses_16, "dynamic": False}, "cpu")
    ok = pad_batch(rows([5, 8]), 0, buckets=[8, 16])
    bad = pad_batch(rows([12, 9]), 0, buckets=[8, 16])
    with caplog.at_level(logging.WARNING, logger="lit_nlp.models.compiled"), EagerFallbacks() as fallbacks:
        for _ in range(3):
            out = compiled(**bad)
        compiled(**ok)
    warnings = [r for r in caplog.records if "runs eagerly" in r.getMessage()]
    assert len(warnings) == 1 and "16" in warnings[0].getMessage()
    assert fallbacks.count == 1  # what the GPU check's canary table reports
    assert torch.allclose(out.logits, eager.model(**bad).logits, atol=1e-6)
    assert len(compiled.eager_shapes) == 1
    with pytest.raises(Exception, match="(?i)index|size|shape|dimension"):
        compiled(input_ids=torch.full((2, 8), 10_000), attention_mask=torch.ones(2, 8, dtype=torch.long))
    torch._dynamo.reset()


def test_a_backward_that_fails_to_compile_falls_back_at_the_forward(caplog):
    """AOTAutograd compiles the backward lazily, at the first backward call, which is outside
    the guarded forward; CompiledModel asks for it at forward time instead, so a backward the
    compiler cannot build (here a backend whose backward compiler raises) makes that shape
    eager with one warning, and the step gives eager's gradients instead of crashing in
    loss.backward()."""
    import torch._dynamo
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def refuses_backward(gm, example_inputs):
        raise RuntimeError("cannot compile this backward")

    backend = aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm.forward), bw_compiler=refuses_backward)
    torch._dynamo.reset()
    module = make_module("bert").eval()  # no dropout: gradients comparable
    eager = make_module("bert").eval()
    compiled = CompiledModel(module.model, {"backend": backend, "dynamic": False}, "cpu")
    batch = pad_batch(rows([5, 8]), 0, buckets=[8])
    with caplog.at_level(logging.WARNING, logger="lit_nlp.models.compiled"):
        for _ in range(2):
            module.model.zero_grad()
            compiled(**batch).loss.backward()
    assert len([r for r in caplog.records if "runs eagerly" in r.getMessage()]) == 1
    eager.model(**batch).loss.backward()
    for (name, got), want in zip(module.model.named_parameters(), eager.model.parameters()):
        assert torch.allclose(got.grad, want.grad, atol=1e-6), name
    with torch.no_grad():  # no backward to build: the inference graph still compiles
        compiled(**batch)
    assert len(compiled.eager_shapes) == 1
    torch._dynamo.reset()


def test_generation_runs_eagerly_under_compile():
    import torch._dynamo

    class Tok:
        def batch_decode(self, ids, skip_special_tokens=True):
            return [" ".join(map(str, row.tolist())) for row in ids]

    module = make_seq2seq_module(tokenizer=Tok(), compile={"backend": "aot_eager"}, generation={"max_new_tokens": 6})
    module.configure_model()
    torch._dynamo.reset()
    before = _graphs()
    batch = {"input_ids": torch.full((2, 5), 7), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    texts = module.generate_text(batch)
    assert len(texts) == 2 and _graphs() == before  # six decoding lengths, no graph compiled
    torch._dynamo.reset()


def shared_wrapper(forward):
    """Like transformers' decorators on every model's forward (return_dict handling and the
    like): one wrapper code object that all model classes run through."""
    @functools.wraps(forward)
    def wrapper(self, x):
        return forward(self, x)
    return wrapper


class Relu(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 4)

    @shared_wrapper
    def forward(self, x):
        return self.layer(x).relu()


class Tanh(Relu):
    @shared_wrapper
    def forward(self, x):
        return self.layer(x).tanh()


def test_each_new_model_compiles_even_after_others_in_the_process():
    """Sweep jobs, benchmark levers and the GPU check's canaries build one model after another in
    one process. Dynamo keeps compiled code per code object, and Hugging Face models share the
    wrapper code of their forward decorators: the 6 graphs of a first model plus a second model's 4
    pass the recompile limit (8) there, and the second model would run eagerly past it without a
    word (seen: T5 canaries after two BERT ones compiled nothing). compile_for starts afresh."""
    from lit_nlp.models.compiled import compile_for

    compiled = []

    def counting(gm, example_inputs):
        compiled.append(1)
        return gm.forward

    per_model = []
    for model, shapes in ((Relu(), 6), (Tanh(), 4)):
        call = compile_for(model, {"backend": counting, "dynamic": False}, "cpu")
        before = len(compiled)
        for n in range(1, shapes + 1):
            call(x=torch.randn(n, 4))
        per_model.append(len(compiled) - before)
    assert per_model == [6, 4]
