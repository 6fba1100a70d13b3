"""Sequence classification: any AutoModelForSequenceClassification (BERT, DistilBERT,
RoBERTa, ...) with torchmetrics, AdamW and a warm-up schedule."""

from __future__ import annotations

import inspect

import lightning as L
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from transformers import AutoModelForSequenceClassification

from lit_nlp.data.shapes import real_rows
from lit_nlp.models.backbones import (
    apply_finetune_strategy,
    build_hf_model,
    enable_gradient_checkpointing,
    json_safe_config,
    model_from_config_dict,
    plain_config,
)
from lit_nlp.models.compiled import compile_for
from lit_nlp.models.optim import build_optimization


class ClassificationModule(L.LightningModule):
    """Wraps a Hugging Face sequence classifier.

    backbone: `{pretrained: <hub name | folder>}` or `{config: {model_type: bert, hidden_size: 64, ...}}`
    optimizer: a config with `_target_` (e.g. torch.optim.AdamW), completed with parameter
        groups in `configure_optimizers`; `weight_decay` applies to weights only.
    scheduler: kwargs of `lit_nlp.models.optim.warmup_schedule` (name, warmup_ratio, ...).
    finetune / num_frozen_layers: see `apply_finetune_strategy`.
    gradient_checkpointing: trade compute for activation memory (`enable_gradient_checkpointing`).
    label_names, vocab_size, pad_token_id: run-time facts from the data module.
    attn_implementation: "sdpa" (default), "eager", or null (the library's choice); see
        `build_hf_model`. compile: true (or `nn.Module.compile` kwargs) compiles the HF model when
        the trainer sets the module up; see `lit_nlp.models.compiled`.
    hf_config: a saved model config; when given, the architecture is rebuilt from it and the
        weights come from the checkpoint (how predict loads a `.ckpt` without the hub).
    """

    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        scheduler: dict,
        label_names: list[str],
        finetune: str = "full",
        num_frozen_layers: int = 0,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        attn_implementation: str | None = "sdpa",
        compile: bool | dict = False,
        hf_config: dict | None = None,
    ):
        super().__init__()
        backbone, optimizer, scheduler = plain_config(backbone), plain_config(optimizer), plain_config(scheduler)
        label_names = list(plain_config(label_names))
        if hf_config is None:
            facts = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                     "label2id": {n: i for i, n in enumerate(label_names)}}
            if backbone.get("config"):
                # a random-init model takes its vocabulary from the tokenizer trained on the data
                facts.update(vocab_size=vocab_size, pad_token_id=pad_token_id)
            self.model = build_hf_model(AutoModelForSequenceClassification, backbone.get("pretrained"),
                                        backbone.get("config"), trust_remote_code, attn_implementation, **facts)
            hf_config = self.model.config.to_dict()
        else:
            self.model = model_from_config_dict(AutoModelForSequenceClassification, hf_config, attn_implementation)
        apply_finetune_strategy(self.model, finetune, num_frozen_layers)
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        # from_pretrained returns a model in eval mode, and Lightning keeps submodules' modes:
        # without this, dropout would be off for the whole fine-tuning run
        self.model.train()
        self.save_hyperparameters({
            "backbone": backbone, "optimizer": optimizer, "scheduler": scheduler,
            "label_names": label_names, "finetune": finetune, "num_frozen_layers": num_frozen_layers,
            "vocab_size": vocab_size, "pad_token_id": pad_token_id,
            "trust_remote_code": trust_remote_code,
            "gradient_checkpointing": gradient_checkpointing,
            "attn_implementation": attn_implementation, "compile": plain_config(compile),
            "hf_config": json_safe_config(hf_config),
        })
        # DistilBERT takes no token_type_ids; drop batch keys the model's forward does not take
        self._forward_keys = set(inspect.signature(self.model.forward).parameters)
        n = len(label_names)
        metrics = MetricCollection({
            "acc": MulticlassAccuracy(n, average="micro"),
            "f1_macro": MulticlassF1Score(n, average="macro"),
            "precision_macro": MulticlassPrecision(n, average="macro"),
            "recall_macro": MulticlassRecall(n, average="macro"),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_f1_per_class = MulticlassF1Score(n, average="none")
        self.test_f1_per_class = MulticlassF1Score(n, average="none")
        self.val_confmat = MulticlassConfusionMatrix(n)
        self.test_confmat = MulticlassConfusionMatrix(n)
        # last computed confusion matrices (CPU), read by the ConfusionMatrixLogger callback
        self.confusion_matrix: dict[str, torch.Tensor] = {}

    @property
    def label_names(self) -> list[str]:
        return self.hparams.label_names

    def _run(self, batch: dict):
        model = getattr(self, "_compiled", None) or self.model
        return model(**{k: v for k, v in batch.items() if k in self._forward_keys})

    def forward(self, batch: dict) -> torch.Tensor:
        return self._run(batch).logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._run(batch)
        # not prog_bar: Lightning turns progress-bar values into Python numbers (.item(), a
        # host-device sync) after every step; callbacks/progress.py reads the loss every
        # log_every_n_steps instead, as the loggers do
        self.log("train/loss", out.loss, on_step=True, on_epoch=True,
                 batch_size=real_rows(batch, batch["labels"].shape[0]))
        return out.loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        out = self._run(batch)
        # rows past real_rows fill a static-shape batch (data/shapes.py): the loss ignores them
        # (label -100) and the metrics never see them; slicing by a host int costs no sync
        n = real_rows(batch, batch["labels"].shape[0])
        preds, labels = out.logits[:n].argmax(-1), batch["labels"][:n]
        getattr(self, f"{stage}_metrics").update(preds, labels)
        getattr(self, f"{stage}_f1_per_class").update(preds, labels)
        getattr(self, f"{stage}_confmat").update(preds, labels)
        self.log(f"{stage}/loss", out.loss, on_epoch=True, prog_bar=(stage == "val"), batch_size=n,
                 sync_dist=True)

    def _eval_epoch_end(self, stage: str) -> None:
        collection = getattr(self, f"{stage}_metrics")
        self.log_dict(collection.compute(), prog_bar=(stage == "val"))
        collection.reset()
        per_class = getattr(self, f"{stage}_f1_per_class")
        for name, value in zip(self.label_names, per_class.compute()):
            self.log(f"{stage}/f1/{name}", value)
        per_class.reset()
        confmat = getattr(self, f"{stage}_confmat")
        self.confusion_matrix[stage] = confmat.compute().cpu()
        confmat.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch)[:real_rows(batch, batch["input_ids"].shape[0])].float().softmax(-1)

    def configure_model(self) -> None:
        # here rather than in __init__: Lightning calls this in fit/validate/test (once the
        # device is known), while predict.py rebuilds the module and decides itself
        if getattr(self, "_compiled", None) is None:
            self._compiled = compile_for(self, self.hparams.get("compile"))

    def configure_optimizers(self):
        return build_optimization(self.model, self.hparams.optimizer, self.hparams.scheduler,
                                  self.trainer.estimated_stepping_batches)
