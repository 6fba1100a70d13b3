"""Text-to-text: any AutoModelForSeq2SeqLM (T5, Flan-T5, BART) trained on its own labels
loss; validation and test generate with the configured settings and score the text
(SQuAD exact match / F1, ROUGE, or label-word accuracy)."""

from __future__ import annotations

import torch
from transformers import AutoModelForSeq2SeqLM

from lit_nlp.errors import LitNlpError
from lit_nlp.data.shapes import real_rows
from lit_nlp.models.backbones import (
    plain_config,
)
from lit_nlp.models.compiled import eager_generation
from lit_nlp.models.task_module import TaskModule
from lit_nlp.models.text_metrics import RougeMetric, SquadMetric, TextAccuracy

# T5's feed-forward activations exceed fp16's range (65,504): loss turns inf/NaN in fp16
FP16_UNSAFE = ("t5", "mt5", "umt5", "longt5")
METRICS = {"qa": SquadMetric, "summarization": RougeMetric, "classification": TextAccuracy}
# forward() arguments of a seq2seq model; the batch also carries `references` and `source` text
MODEL_KEYS = ("input_ids", "attention_mask", "labels")


class Seq2SeqModule(TaskModule):
    """Wraps a Hugging Face seq2seq LM.

    backbone / optimizer / scheduler / finetune: as in ClassificationModule (freezing acts on
    the encoder). generation: `generate()` settings (num_beams, max_new_tokens, ...), used in
    validation, test, predict and saved in the export. task: qa | summarization |
    classification (from the data module) picks the metrics. val_generate_batches: how many
    validation batches to generate for (null: all); the loss always covers all of them.
    gradient_checkpointing: trade compute for activation memory (`enable_gradient_checkpointing`).
    attn_implementation / compile: as in ClassificationModule.
    tokenizer: handed in by `train()` to decode generations; not a hyperparameter.
    """

    def __init__(
        self,
        generation: dict,
        task: str = "qa",
        val_generate_batches: int | None = None,
        eos_token_id: int | None = None,
        allow_fp16: bool = False,
        tokenizer=None,
        **model,
    ):
        super().__init__()
        generation = plain_config(generation)
        if task not in METRICS:
            raise LitNlpError(f"task must be one of {', '.join(METRICS)}, got {task!r}")
        # random init: vocabulary and special ids from the tokenizer trained on the data; T5
        # starts decoding from the pad token. The freezing strategies see the encoder.
        self.build_model(AutoModelForSeq2SeqLM, **model,
                         random_init_facts={"eos_token_id": eos_token_id,
                                            "decoder_start_token_id": model.get("pad_token_id")},
                         encoder=lambda m: m.get_encoder(),
                         task_hparams={"generation": generation, "task": task,
                                       "val_generate_batches": val_generate_batches, "eos_token_id": eos_token_id,
                                       "allow_fp16": allow_fp16})
        for key, value in generation.items():
            setattr(self.model.generation_config, key, value)
        self.tokenizer = tokenizer
        self.val_metric = METRICS[task]()
        self.test_metric = METRICS[task]()
        # the first batch's (source, reference, prediction) per stage, for the samples callback
        self.examples: dict[str, list[tuple[str, str, str]]] = {}

    def setup(self, stage: str) -> None:
        precision = str(self.trainer.precision)
        model_type = self.model.config.model_type
        if precision.startswith("16") and model_type in FP16_UNSAFE and not self.hparams.allow_fp16:
            raise LitNlpError(f"trainer.precision={precision} with {model_type}: T5 overflows in fp16 (NaN loss); "
                              "use trainer.precision=bf16-mixed (or 32-true), or force it with model.allow_fp16=true")
        if self.tokenizer is None and stage != "predict":
            raise LitNlpError("Seq2SeqModule needs the tokenizer to decode generations; train() passes it")

    def _inputs(self, batch: dict) -> dict:
        # the loss is one teacher-forced pass over all target positions: a key/value cache only
        # helps generate(), and gradient checkpointing refuses one while training
        return {**{k: batch[k] for k in MODEL_KEYS if k in batch}, "use_cache": False}

    def _loss(self, batch: dict) -> torch.Tensor:
        model = getattr(self, "_compiled", None) or self.model
        return model(**self._inputs(batch)).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        # not prog_bar: Lightning turns progress-bar values into Python numbers (.item(), a
        # host-device sync) after every step; callbacks/progress.py reads the loss every
        # log_every_n_steps instead, as the loggers do
        self.log("train/loss", loss, on_step=True, on_epoch=True,
                 batch_size=real_rows(batch, batch["input_ids"].shape[0]))
        return loss

    @torch.no_grad()
    def generate_text(self, batch: dict) -> list[str]:
        # rows past real_rows fill a static-shape batch (data/shapes.py); generation is eager
        # anyway (a new length per token), so only the real rows are generated for
        n = real_rows(batch, batch["input_ids"].shape[0])
        with eager_generation():
            out = self.model.generate(input_ids=batch["input_ids"][:n], attention_mask=batch["attention_mask"][:n],
                                      generation_config=self.model.generation_config)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        loss = self._loss(batch)
        n = real_rows(batch, batch["input_ids"].shape[0])
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=(stage == "val"), batch_size=n, sync_dist=True)
        limit = self.hparams.val_generate_batches if stage == "val" else None
        if limit is not None and batch_idx >= limit:
            return
        predictions = self.generate_text(batch)
        references = batch["references"][:n]
        if self.hparams.task != "qa":  # only QA scores against several gold answers
            references = [refs[0] for refs in references]
        getattr(self, f"{stage}_metric").update(predictions, references)
        if batch_idx == 0:
            self.examples[stage] = list(zip(batch["source"], (r[0] for r in batch["references"]), predictions))[:8]

    def eval_epoch_end(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_metric")
        if metric.update_called:
            values = metric.compute()
            values = values if isinstance(values, dict) else {"acc": values}
            self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=(stage == "val"))
        metric.reset()

