"""Token classification: a tag for every word, in the training data's tag scheme, and the
entities those tags make, with character offsets into the text they came from.

Inputs: `text=` (split into words at whitespace); a CoNLL file (the token in the first
column), written back with the predicted tag as a new last column; a jsonl/json/parquet file
with a list column of tokens (the training run's tokens_column) or a text column; a csv/tsv
with a text column."""

from __future__ import annotations

from pathlib import Path

import torch

from lit_nlp.codecs.token_classification import collate, decode, encode, split_words, word_entities
from lit_nlp.data.conll import TokenLines, read_conll_tokens, tagged_format
from lit_nlp.data.tag_schemes import convert
from lit_nlp.errors import LitNlpError
from lit_nlp.predictors.common import EncoderPredictor, read_input, refuse_qa_args, write_predictions


class TokenClassificationPredictor(EncoderPredictor):
    """A token-classification model with its windowing settings and tag scheme."""

    def __init__(self, model, tokenizer, settings: dict, **placement):
        super().__init__(model, tokenizer, settings, **placement)
        self.label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.scheme = settings["scheme"]
        self._conll_tail: list[str] | None = None  # set when the input was a CoNLL file

    @torch.inference_mode()
    def tag(self, sentences: list[list[str]], batch_size: int = 32) -> list[tuple[list[str], list[float]]]:
        """Each sentence's tags (BIO, the model's labels) and their probabilities, one per word."""
        s = self.settings
        windows = encode(self.tokenizer, sentences, s["max_length"], s["stride"])
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows[0]] if windows else []
        ids, probs = [None] * len(windows), [None] * len(windows)
        # windows in length order (less padding); decode puts each sentence back together
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate(self.shapes.rows([windows[i] for i in idx], batch_size), self.tokenizer.pad_token_id,
                            buckets=self.shapes.buckets)
            inputs = {k: batch[k].to(self.device) for k in keys if k in self._forward_keys}
            # filler copies past the real windows are not read
            best, chosen = self.shapes.call(**inputs).logits[:len(idx)].float().softmax(-1).max(-1)
            for j, i in enumerate(idx):
                length = len(windows[i]["input_ids"])
                ids[i], probs[i] = chosen[j, :length].cpu().tolist(), best[j, :length].cpu().tolist()
        if not windows:
            return []
        longest = max(len(row) for row in ids)
        decoded = decode(torch.tensor([row + [0] * (longest - len(row)) for row in ids]), windows,
                         scores=torch.tensor([row + [0.0] * (longest - len(row)) for row in probs]))
        return [([self.label_names[t] for t in decoded[i][0]], decoded[i][1]) for i in range(len(sentences))]

    def predict_rows(self, rows: list[dict], batch_size: int = 32) -> list[dict]:
        """Rows with `tokens` (a list of words) or a `text`; each comes back with `entities`
        (type, text, start, end: character offsets into the text, or into the tokens joined by
        spaces; score: the mean probability of its words' tags), and token rows with `tags` in
        the training data's scheme."""
        words, texts = [], []
        for row in rows:
            if "tokens" in row:
                words.append([str(t) for t in row["tokens"]])
                texts.append(None)
            else:
                text = "" if row.get("text") is None else str(row["text"])
                words.append([w for w, _, _ in split_words(text)])
                texts.append(text)
        tagged = self.tag([w for w in words if w], batch_size)
        results, k = [], 0
        for row, sentence, text in zip(rows, words, texts):
            tags, scores = tagged[k] if sentence else ([], [])
            k += bool(sentence)
            out = {**row, "entities": word_entities(sentence, tags, scores, text)}
            for entity in out["entities"]:
                entity.pop("words")
            if text is None:
                out["tags"] = convert(tags, self.scheme)
            results.append(out)
        return results

    def rows_from_args(self, args: dict) -> list[dict]:
        """predict.py's text=... or input=<file>: CoNLL (tokens in the first column), a
        jsonl/json/parquet file with the training run's tokens column (or tokens_column=), or
        any table with a text column (text_column=, default text)."""
        refuse_qa_args(args)
        if "input" not in args:
            return [{"text": t} for t in args["text"]]
        path = args["input"]
        if Path(path).suffix.lower() in (".csv", ".tsv") or tagged_format(path) != "conll":
            return self._table_rows(args)
        sentences, self._conll_tail = read_conll_tokens(path)
        return [{"tokens": s.tokens, "conll": s} for s in sentences]

    def _table_rows(self, args: dict) -> list[dict]:
        tokens_column = args.get("tokens_column") or self.settings["tokens_column"]
        probe = read_input(args, {}, hint="")
        if tokens_column in probe.columns and "text_column" not in args:
            values = probe[tokens_column].tolist()
            bad = next((i for i, v in enumerate(values) if not hasattr(v, "__len__") or isinstance(v, str)), None)
            if bad is not None:
                raise LitNlpError(f"{args['input']}, row {bad + 1}: column {tokens_column} holds "
                                  f"{type(values[bad]).__name__}, not a list of tokens")
            return [{**row, "tokens": list(row[tokens_column])} for row in _records(probe)]
        text_column = args.get("text_column") or "text"
        frame = read_input(args, {"text_column": text_column},
                           hint=f"set text_column=<column> (or give a {tokens_column} list column)")
        return [{**row, "text": row[text_column]} for row in _records(frame)]

    def write_output(self, results: list[dict], output: str | Path) -> Path:
        """A CoNLL input is written back as CoNLL (any output name but .jsonl/.csv), each token
        line with the predicted tag as one more column; jsonl and csv as for every task."""
        output = Path(output)
        if self._conll_tail is None or output.suffix in (".jsonl", ".csv"):
            return write_predictions([{k: v for k, v in row.items() if k != "conll"} for row in results], output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(conll_text(results, self._conll_tail), encoding="utf-8")
        return output

    def format_row(self, row: dict) -> str:
        """A CoNLL sentence as its lines with the predicted tag; otherwise each entity as
        type "text" [start:end] score, tab-separated, after the text."""
        if "conll" in row:
            return "\n".join(_conll_lines(row))
        entities = "\t".join(f"{e['type']} {e['text']!r} [{e['start']}:{e['end']}] {e['score']:.4f}"
                             for e in row["entities"]) or "(no entity)"
        text = row.get("text") if "text" in row else " ".join(row["tokens"])
        return f"{entities}\t{text}"


def _records(frame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _conll_lines(row: dict) -> list[str]:
    sentence: TokenLines = row["conll"]
    return sentence.before + [f"{line}{sentence.separator}{tag}" for line, tag in zip(sentence.lines, row["tags"])]


def conll_text(results: list[dict], tail: list[str]) -> str:
    """The CoNLL file the rows were read from, with the predicted tag as the last column."""
    lines = [line for row in results for line in _conll_lines(row)] + tail
    return "\n".join(lines) + "\n"


