"""Predict with a trained model: python predict.py model_path=<run dir | .ckpt | export dir> text="..."
or input=<file> [text_column=...] [output=preds.jsonl]; see README.md."""

import sys

from lit_nlp.errors import exit_on_user_error
from lit_nlp.predict import run

if __name__ == "__main__":
    exit_on_user_error(run)(sys.argv[1:])
