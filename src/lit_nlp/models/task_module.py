"""The LightningModule plumbing every task shares, and nothing else: a task's module writes its
forward, loss, `training_step`, `eval_step(batch, batch_idx, stage)` and
`eval_epoch_end(stage)` (stage "val" or "test"); this base routes Lightning's validation and
test hooks to them, compiles the model once the device is known and builds the optimizer and
schedule from the config. No task-specific behaviour lives here (see lit_nlp/tasks.py)."""

from __future__ import annotations

import lightning as L
import torch

from lit_nlp.models.backbones import json_safe_config, plain_config, task_model
from lit_nlp.models.compiled import compile_for, module_device_type
from lit_nlp.models.optim import build_optimization


def gather_all(items: list, world_size: int) -> list:
    """Every rank's `items`, on every rank: under DDP each rank evaluates a share of the
    windows, and one question's or sentence's windows may land on different ranks."""
    if world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return items
    shares: list = [None] * world_size
    torch.distributed.all_gather_object(shares, items)
    return [w for share in shares for w in share]


class TaskModule(L.LightningModule):
    """Subclasses build their Hugging Face model with `build_model`, which sets `self.model`
    and saves the hyperparameters a checkpoint rebuilds the module from."""

    def build_model(self, auto_class, *, backbone: dict, optimizer: dict, scheduler: dict, finetune: str = "full",
                    num_frozen_layers: int = 0, vocab_size: int | None = None, pad_token_id: int | None = None,
                    trust_remote_code: bool = False, gradient_checkpointing: bool = False,
                    attn_implementation: str | None = "sdpa", compile: bool | dict = False,
                    hf_config: dict | None = None, facts: dict | None = None, random_init_facts: dict | None = None,
                    encoder=None, task_hparams: dict | None = None, lora: dict | None = None) -> None:
        """The model keys every task's model config shares (conf/model/*.yaml: backbone ...
        hf_config; a task module takes them as `**model` and hands them on here) build
        `self.model` through `backbones.task_model`: `facts` are the task's (labels), and
        `random_init_facts` complete a random-init config beside the vocabulary size and pad id
        that the data module reports. The saved hyperparameters are these keys, then the task's
        own (`task_hparams`), then the model's config (a checkpoint rebuilds it offline).
        `finetune=lora` keeps the adapter as `self.lora` (models/lora.py): checkpoints then hold
        what trains, and the base is rebuilt from `backbone.pretrained` when one is loaded."""
        backbone, optimizer, scheduler = plain_config(backbone), plain_config(optimizer), plain_config(scheduler)
        lora = plain_config(lora) if finetune == "lora" else None
        self.model, hf_config, self.lora = task_model(
            auto_class, backbone, hf_config, finetune=finetune, num_frozen_layers=num_frozen_layers,
            gradient_checkpointing=gradient_checkpointing, trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation, facts=facts or {},
            random_init_facts={"vocab_size": vocab_size, "pad_token_id": pad_token_id, **(random_init_facts or {})},
            encoder=encoder, lora=lora)
        self.save_hyperparameters({
            "backbone": backbone, "optimizer": optimizer, "scheduler": scheduler, "finetune": finetune,
            "num_frozen_layers": num_frozen_layers, "vocab_size": vocab_size, "pad_token_id": pad_token_id,
            "trust_remote_code": trust_remote_code, "gradient_checkpointing": gradient_checkpointing,
            "attn_implementation": attn_implementation, "compile": plain_config(compile),
            "lora": self.lora.settings if self.lora else None, **(task_hparams or {}),
            "hf_config": json_safe_config(hf_config)})

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        raise NotImplementedError

    def eval_epoch_end(self, stage: str) -> None:
        raise NotImplementedError

    def export_settings(self) -> dict:
        """What travels with the exported model beside the data module's text settings."""
        return {}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        self.eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self.eval_epoch_end("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.lora is not None:
            self.lora.strip_checkpoint(checkpoint, self)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Also called by predict.py before it loads a checkpoint's state dict."""
        if self.lora is not None:
            self.lora.complete_checkpoint(checkpoint, self)

    def configure_model(self) -> None:
        # here rather than in __init__: Lightning calls this in fit/validate/test (once the
        # device is known), while predict.py rebuilds the module and decides itself
        if getattr(self, "_compiled", None) is None:
            self._compiled = compile_for(self.model, self.hparams.get("compile"), module_device_type(self))

    def configure_optimizers(self):
        return build_optimization(self.model, self.hparams.optimizer, self.hparams.scheduler,
                                  self.trainer.estimated_stepping_batches)
