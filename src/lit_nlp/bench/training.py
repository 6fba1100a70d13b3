"""Timed training runs, one per side: our LightningModule + our loader + a Lightning Trainer
(the path `train.py` takes), and the Hugging Face Trainer on the same model, rows, batch size
and precision. Neither side validates, checkpoints, logs to files or draws a progress bar."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lit_nlp.bench.flops import model_shape, peak_tflops, training_flops
from lit_nlp.bench.meter import LightningMeter, StepMeter, TrainerMeter
from lit_nlp.callbacks import MatmulPrecision, NaNGuard, Throughput
from lit_nlp.mixed_precision import precision_plugin

log = logging.getLogger(__name__)


def _finish(meter: StepMeter, model: torch.nn.Module, opts: dict) -> dict:
    """The meter's figures plus model TFLOP/s and MFU (formula in lit_nlp.bench.flops)."""
    out = meter.result()
    flops = training_flops(model_shape(model), out.pop("counts"))
    out["model_tflops"] = flops / out["seconds"] / 1e12
    peak = opts["peak_tflops"] or (peak_tflops(torch.cuda.get_device_name(), opts["precision"])
                                   if opts["device"] == "cuda" else None)
    out["peak_tflops"] = peak
    out["mfu"] = out["model_tflops"] / peak if peak else None
    return out


def run_ours(module: L.LightningModule, opts: dict, meter: StepMeter, loader: DataLoader | None = None,
             datamodule: L.LightningDataModule | None = None, profiler: L.Callback | None = None,
             side: str = "lit_nlp") -> dict:
    """Fit `module` for warmup + steps steps on our loader (or the data module's) with the
    Lightning Trainer set as conf/trainer/default.yaml sets it where speed is concerned
    (precision, gradient clipping at 1.0) and the per-step callbacks of conf/callbacks/default.yaml
    (throughput + lr logging, NaN guard, matmul precision). A `profiler` callback gets
    `opts["profile_steps"]` more steps after the timed ones, so it never slows them."""
    callbacks = [Throughput(), NaNGuard(), MatmulPrecision(opts["matmul_precision"]), LightningMeter(meter),
                 *([profiler] if profiler else [])]
    accelerator = "gpu" if opts["device"] == "cuda" else "cpu"
    # the precision plugin train() uses (lit_nlp.mixed_precision): fused AdamW + clipping in AMP
    plugin = precision_plugin(opts["precision"], accelerator)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=None if plugin else opts["precision"],
        plugins=[plugin] if plugin else None,
        max_steps=opts["warmup"] + opts["steps"] + (opts["profile_steps"] if profiler else 0), gradient_clip_val=1.0, log_every_n_steps=10,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
        default_root_dir=str(Path(opts["out"]) / "lightning"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no val dataloader", "few workers": chosen here
        trainer.fit(module, train_dataloaders=loader, datamodule=datamodule)
    compiled = getattr(module, "_compiled", None)
    return {"side": side, "compile": compiled.options if compiled else None,
            "cuda_graphs": bool(compiled and compiled.cuda_graphs),
            "eager_shapes": len(compiled.eager_shapes) if compiled else 0, **_finish(meter, module.model, opts)}


def run_hf_trainer(model: torch.nn.Module, dataset, collator, opts: dict, meter: StepMeter, side: str,
                   group_by_length: bool = False) -> dict:
    """The Hugging Face Trainer on `dataset` (tokenized rows, `labels` included) with
    `collator`: run_glue's defaults are rows padded to max_length + `default_data_collator`;
    its best data path is `DataCollatorWithPadding` + group_by_length (transformers 5 spells
    it `train_sampling_strategy="group_by_length"`)."""
    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    total = opts["warmup"] + opts["steps"]
    args = TrainingArguments(
        output_dir=str(Path(opts["out"]) / "hf_trainer"), per_device_train_batch_size=opts["batch_size"],
        max_steps=total, learning_rate=5e-5, weight_decay=0.01, lr_scheduler_type="linear",
        warmup_steps=max(1, total // 10), max_grad_norm=1.0, seed=0,
        bf16=opts["precision"].startswith("bf16"), fp16=opts["precision"].startswith("16"),
        use_cpu=opts["device"] == "cpu", train_sampling_strategy="group_by_length" if group_by_length else "random",
        torch_compile=bool(opts["hf_compile"]),
        dataloader_num_workers=opts["num_workers"], dataloader_pin_memory=opts["pin_memory"],
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    for printer in (PrinterCallback, ProgressCallback):  # the end-of-training dict on stdout
        trainer.remove_callback(printer)
    TrainerMeter(meter).attach(trainer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return {"side": side, "optim": str(args.optim), **_finish(meter, model, opts)}
