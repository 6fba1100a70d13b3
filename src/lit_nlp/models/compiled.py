"""`model.compile`: what it stands for on each device, and the guarded call the task modules
make through it. Plain functions and one small class, shared by the task modules.

Why CUDA graphs: fine-tuning a small encoder is bound by the host, not the GPU. MiniLM at batch
32 is about 0.1 TFLOP per step, a fraction of a millisecond on an H100/H200, while eager PyTorch
launches several hundred kernels per step from Python (tens of milliseconds: the issue measured
36.5 ms per step). torch.compile fuses those kernels, and mode "reduce-overhead" records the
compiled forward and backward as CUDA graphs and replays each with one launch. A graph replays
one shape, so the data modules pad to a few bucket lengths and fill short batches
(data/shapes.py, `data.static_shapes`, on by default with `model.compile` on a GPU).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
from torch import nn

log = logging.getLogger(__name__)

# torch.compile modes that record CUDA graphs (on CUDA; elsewhere they compile without them)
GRAPH_MODES = ("reduce-overhead", "max-autotune")
# errors raised from these packages mean "this shape could not be compiled or captured"
COMPILER_PACKAGES = ("torch/_dynamo/", "torch/_inductor/", "torch/_functorch/", "torch/fx/")
# log record attribute marking CompiledModel's "runs eagerly" warning (counted by EagerFallbacks)
EAGER_FALLBACK = "lit_nlp_eager_fallback"


def compile_options(compile: bool | dict | None, device_type: str) -> dict | None:
    """Keyword arguments of `nn.Module.compile` for the `model.compile` setting, or None (eager).
    `true`: on CUDA, mode "reduce-overhead" (inductor kernels replayed as CUDA graphs); on other
    devices, inductor's default mode. A dict is used as given (mode, dynamic, backend, fullgraph).
    Either way `dynamic` stays torch's default (None): the first shape compiles static, the
    first new shape recompiles once with the changed dimension symbolic, and CUDA graphs record
    one graph per bucket length of that compiled code, so compiles stay at about 2 per loader."""
    if not compile:
        return None
    if isinstance(compile, dict):
        return dict(compile)
    return {"mode": "reduce-overhead"} if device_type == "cuda" else {}


def uses_cuda_graphs(options: dict | None, device_type: str) -> bool:
    """Will the compiled model replay CUDA graphs? (A graph mode of inductor, on CUDA.)"""
    return bool(options is not None and device_type == "cuda" and options.get("mode") in GRAPH_MODES
                and options.get("backend", "inductor") == "inductor")


def module_device_type(module: nn.Module) -> str:
    """The device a LightningModule will run on: its trainer's (when `configure_model` runs, the
    weights are still on the CPU), else its weights'."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None:
        return trainer.strategy.root_device.type
    return next(module.parameters()).device.type


def _raised_by_compiler(err: BaseException) -> bool:
    from torch._dynamo.exc import TorchDynamoException

    if isinstance(err, TorchDynamoException):
        return True
    tb = err.__traceback__
    while tb is not None:
        if any(p in tb.tb_frame.f_code.co_filename.replace("\\", "/") for p in COMPILER_PACKAGES):
            return True
        tb = tb.tb_next
    return False


def _backward_built_at_forward():
    """AOTAutograd compiles a graph's backward lazily, at its first backward call: inside
    Lightning's `loss.backward()`, where a compiler failure could only crash the run. Built at
    forward time instead, its failure lands in CompiledModel's guard and the shape runs eagerly.
    (Read only when a graph is compiled; a no-op for calls that hit compiled code.)"""
    import torch._functorch.config as aot_config

    if not hasattr(aot_config, "force_non_lazy_backward_lowering"):  # older torch: lazy, unguarded
        return nullcontext()
    return aot_config.patch(force_non_lazy_backward_lowering=True)


def _shape_key(inputs: dict) -> tuple:
    shapes = tuple((k, tuple(v.shape)) for k, v in inputs.items() if isinstance(v, torch.Tensor))
    return shapes, torch.is_grad_enabled()


class CompiledModel:
    """Calls `model` compiled in place (`nn.Module.compile`: its parameter names and checkpoints
    keep their keys). A shape whose compilation or graph capture raises runs eagerly from then
    on, with one warning per shape, so a compiler gap never stops a run; an error that eager
    PyTorch raises too (a real bug, bad input) still propagates. Out-of-memory is never masked.
    The backward of a new graph is compiled with its forward, inside this guard."""

    def __init__(self, model: nn.Module, options: dict, device_type: str):
        self.model = model
        self.options = options
        self.cuda_graphs = uses_cuda_graphs(options, device_type)
        self.eager_shapes: set = set()
        # one context, entered on every call (built once: a third of the cost of a new one per step)
        self._backward_at_forward = _backward_built_at_forward()
        model.compile(**options)

    def __call__(self, **inputs):
        key = _shape_key(inputs)
        if key in self.eager_shapes:
            return self.model._call_impl(**inputs)  # the module's eager forward, hooks included
        if self.cuda_graphs:
            # each call starts a new step: the previous step's graph outputs (already consumed by
            # the backward, the metrics and the logger) may be overwritten by this replay
            torch.compiler.cudagraph_mark_step_begin()
        try:
            with self._backward_at_forward:
                return self.model(**inputs)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 (dynamo, inductor and capture raise many types)
            if not _raised_by_compiler(err):
                raise
            self.eager_shapes.add(key)
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            log.warning("model.compile: compiling shape %s failed (%s: %s); that shape runs eagerly from now on",
                        [s for _, s in key[0]], type(err).__name__, first, extra={EAGER_FALLBACK: True})
            return self.model._call_impl(**inputs)


class EagerFallbacks(logging.Handler):
    """Counts the shapes that fell back to eager while installed (`with EagerFallbacks() as f:
    ...; f.count`), in any CompiledModel of the process: the GPU check reports it per canary, as
    a compiled path that silently ran eagerly would pass for a working one."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += bool(getattr(record, EAGER_FALLBACK, False))

    def __enter__(self) -> "EagerFallbacks":
        log.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        log.removeHandler(self)


def eager_generation():
    """A context in which a compiled model runs eagerly: `generate()` calls the forward with a
    new length at every token, which would compile (and record graphs) per length."""
    if hasattr(torch.compiler, "set_stance"):
        return torch.compiler.set_stance("force_eager")
    return nullcontext()


def compile_for(model: nn.Module, compile: bool | dict | None, device_type: str) -> CompiledModel | None:
    """`model` compiled for `device_type` as `compile` says (a task module's `model.compile`,
    predict.py's `compile=`), or None (eager)."""
    options = compile_options(compile, device_type)
    if options is None:
        return None
    log.info("model.compile: %s on %s%s", options or "inductor defaults", device_type,
             " with CUDA graphs" if uses_cuda_graphs(options, device_type) else "")
    # Dynamo keeps compiled code per code object, and Hugging Face models run through shared
    # wrapper code (their forward decorators): the graphs of a model compiled earlier in this
    # process (the previous job of a sweep, benchmark lever or canary) count against the
    # recompile limit (8) there, and past it a new model silently runs eagerly (seen: T5 after
    # two BERTs compiled nothing). A new model starts from a clean cache.
    import torch._dynamo

    torch._dynamo.reset()
    return CompiledModel(model, options, device_type)
