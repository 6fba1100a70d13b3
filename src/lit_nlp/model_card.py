"""The export's model card: `README.md` in the Hugging Face format (YAML metadata, then prose and
tables, as the Trainer's `create_model_card` writes one), so an export folder can be published
to the hub or handed on as it is. It says what the model is, what it was trained and scored on
(files and rows read, kept and dropped), the settings that change results, the validation
metrics of every epoch and the test metrics, the framework versions, and what the model is for
and not for."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

CARD_FILE = "README.md"
# what each task is, for the card's first line and the hub's pipeline tag
TASK_TEXT = {
    "classification": ("text-classification", "classifies a text (or a pair of texts) into the labels below",
                       "classifying texts"),
    "seq2seq": ("text2text-generation", "writes a text from a text (answers, summaries or label words)",
                "generating answers, summaries or label words"),
    "extractive_qa": ("question-answering", "answers a question with a span of the context it is given",
                      "answering questions from a given context"),
    "token_classification": ("token-classification", "tags every word of a text (named entities or other tags)",
                             "tagging the words of texts"),
}
# the hyperparameters that change results, by their path in the saved module or data settings
MODEL_KEYS = ("finetune", "num_frozen_layers", "lora", "optimizer", "scheduler", "class_weights", "threshold",
              "generation")
FRAMEWORKS = ("lit_nlp", "torch", "lightning", "transformers", "tokenizers", "peft")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _table(rows: list[list], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join("" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row)
              + " |" for row in rows]
    return "\n".join(lines)


def base_model(backbone: dict) -> str:
    """The pretrained model's name or path, or what a random-init model was built as."""
    if backbone.get("pretrained"):
        return str(backbone["pretrained"])
    config = backbone.get("config") or {}
    return f"random init ({config.get('model_type', 'unknown')}, trained from scratch)"


def model_card(*, task: str, backbone: dict, hparams: dict, data: dict, files: dict, labels: list[str] | None,
               settings: dict, validation: list[dict], test: dict, trainer: dict) -> str:
    """The card's text. `data`: the data module's report (rows read, kept, dropped);
    `validation`: one dict of validation metrics per epoch; `test`: the test metrics;
    `trainer`: epochs, steps, precision, devices."""
    pipeline_tag, what, use = TASK_TEXT.get(task, ("", task, task))
    base = base_model(backbone)
    meta = {"library_name": "transformers", "pipeline_tag": pipeline_tag, "tags": ["lit_nlp", task]}
    if backbone.get("pretrained") and not Path(str(backbone["pretrained"])).is_absolute():
        meta["base_model"] = str(backbone["pretrained"])
    front = "---\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items()) + "\n---\n"
    parts = [front, f"# {task.replace('_', ' ')} model trained with lit_nlp",
             f"This model {what}. Base model: {base}. It loads with `transformers` alone "
             f"(`pipeline(\"{pipeline_tag}\", model=<this folder>)`), and with lit_nlp's `predict.py "
             "model_path=<this folder>`, which prepares text exactly as training did (`lit_nlp.json`)."]

    parts.append("## Data")
    split_rows = []
    for split in ("train", "validation", "test"):
        dropped = sum(v for k, v in data.items() if k.startswith(f"data/dropped/{split}/"))
        source = files.get(split) or (f"carved from {files.get('train')}" if files.get("train") else "")
        split_rows.append([split, source, data.get(f"data/rows_read/{split}"), data.get(f"data/rows/{split}"),
                           dropped or 0])
    parts.append(_table(split_rows, ["split", "file", "rows read", "rows kept", "rows dropped"]))
    if labels:
        parts.append(f"Labels ({len(labels)}): " + ", ".join(f"`{label}`" for label in labels) + ".")

    parts.append("## Training")
    settings_rows = [[f"model.{key}", json.dumps(hparams[key])] for key in MODEL_KEYS if hparams.get(key) is not None]
    settings_rows += [[f"data.{key}", json.dumps(value)] for key, value in settings.items()
                      if key not in ("task", "label_names") and not isinstance(value, (dict, list))]
    settings_rows += [[f"trainer.{key}", json.dumps(value)] for key, value in trainer.items()]
    parts.append(_table(settings_rows, ["setting", "value"]))

    parts.append("## Results")
    if validation:
        keys = sorted({k for row in validation for k in row if k.count("/") == 1})
        parts.append("Validation, per epoch:\n\n" + _table([[i + 1] + [row.get(k) for k in keys]
                                                           for i, row in enumerate(validation)], ["epoch", *keys]))
    if test:
        parts.append("Test (the best checkpoint):\n\n" + _table([[k, v] for k, v in sorted(test.items())],
                                                                 ["metric", "value"]))

    parts.append("## Intended use and limits")
    parts.append(f"For {use} like the training data above. It "
                 "knows only the labels above and has seen only this data: expect lower scores on text from "
                 "other sources, domains or languages, and check it on your own data before relying on it. "
                 "Its errors and biases are those of its base model and training data; it is not meant for "
                 "decisions about people without human review.")
    parts.append("## Framework versions")
    parts.append("\n".join(f"- {name} {_version(name)}" for name in FRAMEWORKS if _version(name)))
    return "\n\n".join(parts).replace("\n\n\n", "\n\n") + "\n"


def write_model_card(directory: str | Path, **facts) -> Path:
    path = Path(directory) / CARD_FILE
    path.write_text(model_card(**facts), encoding="utf-8")
    return path
