"""Extractive QA to tensors and back: question/context pairs into overlapping windows with the
answer's token span as labels, and a batch of windows padded with a mask of context tokens.
Used by the data module, predict.py and the benchmark alike (decoding spans back to answers:
lit_nlp.models.span_decoding)."""

from __future__ import annotations

import torch

from lit_nlp.codecs.padding import pad_inputs

# offsets / word id of a token outside the context (question, special tokens, padding)
OFF_CONTEXT = -1


def question_too_long(tokenizer, questions: list[str], max_length: int, doc_stride: int) -> list[int]:
    """Indices of questions that leave no room for context: each window holds the whole
    question, the special tokens and more than `doc_stride` context tokens."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    return [i for i, n in enumerate(lengths) if n >= room]


def span_labels(offsets: list, char_start: int, char_end: int, cls_index: int) -> tuple[int, int]:
    """(first token, last token) of the characters [char_start, char_end) among the context
    tokens (`offsets` (-1, -1) elsewhere), or (cls_index, cls_index) unless wholly inside."""
    context = [k for k, (a, _) in enumerate(offsets) if a != OFF_CONTEXT]
    if not context or offsets[context[0]][0] > char_start or offsets[context[-1]][1] < char_end:
        return cls_index, cls_index
    start = max(k for k in context if offsets[k][0] <= char_start)
    end = min(k for k in context if offsets[k][1] >= char_end)
    return start, end


def encode_windows(tokenizer, questions: list[str], contexts: list[str], max_length: int, doc_stride: int,
                   answer_texts: list[list[str]] | None = None, answer_starts: list[list[int]] | None = None) -> dict:
    """Tokenize question/context pairs into windows (lists, one entry per window): the model
    inputs, `example` (which pair it came from), `offsets` and `word_ids` of its context tokens
    ((-1, -1) and -1 elsewhere) and, with answers given, `start_positions`/`end_positions`
    from the first answer."""
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    examples = enc.pop("overflow_to_sample_mapping")
    out = {key: enc[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in enc}
    out.update(example=list(examples), offsets=[], word_ids=[])
    if answer_texts is not None:
        out.update(start_positions=[], end_positions=[])
    for i, example in enumerate(examples):
        in_context = [s == 1 for s in enc.sequence_ids(i)]
        offsets = [list(o) if inside else [OFF_CONTEXT, OFF_CONTEXT]
                   for o, inside in zip(enc["offset_mapping"][i], in_context)]
        out["offsets"].append(offsets)
        out["word_ids"].append([w if inside else OFF_CONTEXT for w, inside in zip(enc.word_ids(i), in_context)])
        if answer_texts is None:
            continue
        ids = enc["input_ids"][i]
        cls_index = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        texts, starts = answer_texts[example], answer_starts[example]
        if texts:
            text = texts[0]
            # a gold text with surrounding spaces: label the words, not the spaces
            char_start = starts[0] + len(text) - len(text.lstrip())
            char_end = starts[0] + len(text.rstrip())
            start, end = span_labels(offsets, char_start, char_end, cls_index)
        else:
            start = end = cls_index
        out["start_positions"].append(start)
        out["end_positions"].append(end)
    return out


def collate_qa(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
               buckets: list[int] | None = None) -> dict:
    """Padding of windows to the batch's longest, rounded up to `pad_to_multiple_of`, or up to
    one of `buckets` (static shapes); `context_mask` (true on context tokens) from the offsets.
    Offsets, word ids, question ids, contexts and gold answers stay Python lists (decoding runs
    on the CPU)."""
    batch, longest = pad_inputs(features, pad_token_id, pad_to_multiple_of, buckets)
    batch["context_mask"] = torch.tensor([[o[0] != OFF_CONTEXT for o in f["offsets"]]
                                          + [False] * (longest - len(f["offsets"])) for f in features])
    if "start_positions" in features[0]:
        batch["start_positions"] = torch.tensor([f["start_positions"] for f in features])
        batch["end_positions"] = torch.tensor([f["end_positions"] for f in features])
    for key in ("offsets", "word_ids", "id", "context", "answers"):
        if key in features[0]:
            batch[key] = [f[key] for f in features]
    return batch
