"""Token classification codec: pre-split words to windows of sub-tokens with one label per
word, windows to batches, window outputs back to one tag per word, tags to entities in text.

Words and sub-words: a fast tokenizer splits each word into sub-tokens (`word_ids()` says
which word each comes from). The first sub-token of a word carries the word's tag id; the
others get IGNORE_INDEX, or with `label_all_tokens` the word's tag too, B-X turned into I-X
(as Hugging Face's run_ner does). Predictions and metrics read the first sub-token only, so
`label_all_tokens` changes the training loss, never what is scored. A word the tokenizer turns
into no sub-token at all (a zero-width space, a lone control character) is encoded as the unk
token, so that every word is predicted.

Long sentences: a sentence whose sub-tokens and special tokens exceed `max_length` is cut
into windows of whole words, consecutive windows sharing up to `stride` sub-tokens (whole
words again; a single word longer than a window is cut to its first sub-tokens). Each word is
owned by exactly one window: the one where it has the most context, min(sub-tokens before it,
sub-tokens after it), the earlier window on ties. Only the owning window labels and predicts
the word; in the others its positions are IGNORE_INDEX. So every word is predicted and scored
once, and no word is truncated away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.codecs.padding import pad_inputs
from lit_nlp.data.tag_schemes import entities, split_tag
from lit_nlp.errors import LitNlpError

NO_WORD = -1  # word id of special tokens
# per-window facts decode needs; collate keeps them as Python lists under batch["windows"]
WINDOW_KEYS = ("sentence", "n_words", "word_ids", "owned")
_WORD = re.compile(r"\S+")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """The whitespace-separated words of `text` as (word, start, end) character offsets."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def continuation_tags(tag_names: Sequence[str]) -> list[int]:
    """For each tag id, the id a word's later sub-tokens get with label_all_tokens: I-X for
    B-X (when the label list has I-X), the tag itself otherwise."""
    index = {name: i for i, name in enumerate(tag_names)}
    out = []
    for i, name in enumerate(tag_names):
        prefix, kind = split_tag(name)
        out.append(index.get(f"I-{kind}", i) if prefix == "B" else i)
    return out


def _encode_words(tokenizer, sentences: list[list[str]], **kwargs) -> list[dict]:
    enc = tokenizer(sentences, is_split_into_words=True, verbose=False, **kwargs)
    rows = []
    for i in range(len(sentences)):
        row = {key: enc[key][i] for key in tokenizer.model_input_names if key in enc}
        row["word_ids"] = [NO_WORD if w is None else w for w in enc.word_ids(i)]
        rows.append(row)
    return rows


def _unk_for_empty_words(tokenizer, sentences: list[list[str]], rows: list[dict]) -> None:
    """Re-encode, in place, the sentences holding a word that gave no sub-token, with such words
    replaced by the unk token."""
    for i, row in enumerate(rows):
        missing = set(range(len(sentences[i]))) - set(row["word_ids"])
        if not missing:
            continue
        if tokenizer.unk_token is None:
            raise LitNlpError(f"sentence {i}: words {sorted(missing)[:3]} give no sub-token and the tokenizer has "
                              "no unk token to stand in for them")
        sentences[i] = [tokenizer.unk_token if k in missing else w for k, w in enumerate(sentences[i])]
        rows[i] = _encode_words(tokenizer, [sentences[i]])[0]


def window_spans(counts: Sequence[int], room: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) of the windows of a sentence whose words have `counts`
    sub-tokens: as many whole words as fit in `room` sub-tokens (at least one), each next window
    starting with the last words of the previous one that fit in `stride` sub-tokens and still
    leave room for the first word the previous window did not hold."""
    spans, start = [], 0
    while True:
        end, used = start, 0
        while end < len(counts) and (end == start or used + counts[end] <= room):
            used += counts[end]
            end += 1
        spans.append((start, end))
        if end == len(counts):
            return spans
        # step back over the words that the next window shares, but always move forward, and
        # never so far that word `end` does not fit (a window that adds no word helps no one)
        next_start, shared, budget = end, 0, min(stride, room - counts[end])
        while next_start - 1 > start and shared + counts[next_start - 1] <= budget:
            next_start -= 1
            shared += counts[next_start]
        start = next_start


def _owners(windows: list[list[int]], n_words: int) -> list[int]:
    """For each word, the window (index into `windows`, their word ids) where it has most context."""
    best = [(-1, -1)] * n_words  # (context, window)
    for k, word_ids in enumerate(windows):
        positions = [p for p, w in enumerate(word_ids) if w != NO_WORD]
        if not positions:  # a sentence of no words
            continue
        first, last = positions[0], positions[-1]
        spans = {}
        for p in positions:
            a, _ = spans.get(word_ids[p], (p, p))
            spans[word_ids[p]] = (a, p)
        for w, (a, b) in spans.items():
            context = min(a - first, last - b)
            if context > best[w][0]:
                best[w] = (context, k)
    return [k for _, k in best]


def _window_labels(tags: Sequence[int], word_ids: list[int], owned: list[bool], mine: list[bool],
                   follow: list[int] | None) -> list[int]:
    """Per sub-token: the word's tag on the first sub-token of a word the window owns; on its
    later sub-tokens the continuation tag (`follow`, label_all_tokens) or IGNORE_INDEX; and
    IGNORE_INDEX on special tokens and on words another window owns (`mine` false)."""
    out = []
    for w, own, is_mine in zip(word_ids, owned, mine):
        if own:
            out.append(tags[w])
        elif follow is not None and is_mine:
            out.append(follow[tags[w]])
        else:
            out.append(IGNORE_INDEX)
    return out


def encode(tokenizer, sentences: Sequence[Sequence[str]], max_length: int, stride: int,
           labels: Sequence[Sequence[int]] | None = None, label_all_tokens: bool = False,
           tag_names: Sequence[str] | None = None, sentence_ids: Sequence[int] | None = None) -> list[dict]:
    """Windows of pre-split sentences (module docstring), each a dict: the tokenizer's model
    inputs (input_ids, attention_mask, token_type_ids if it makes them), `labels` when word
    tag ids are given, and what decode needs: `sentence` (its entry of `sentence_ids`, default
    its index), `n_words`, `word_ids` (per sub-token, NO_WORD on special tokens) and `owned`
    (per sub-token: the first sub-token of a word this window predicts).
    `label_all_tokens` needs `tag_names` (the label list, for B-X -> I-X)."""
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    room = max_length - specials
    if room < 1:
        raise LitNlpError(f"max_length={max_length} leaves no room for words beside {specials} special tokens")
    if not 0 <= stride < room:
        raise LitNlpError(f"stride={stride}: windows share 0 to {room - 1} sub-tokens at max_length={max_length} "
                          f"({specials} special tokens); lower stride")
    sentences = [list(words) for words in sentences]
    ids = list(range(len(sentences))) if sentence_ids is None else list(sentence_ids)
    if len(ids) != len(sentences) or (labels is not None and len(labels) != len(sentences)):
        raise ValueError(f"{len(sentences)} sentences but {len(ids)} sentence ids"
                         + ("" if labels is None else f" and {len(labels)} label lists"))
    if labels is not None:
        short = [i for i, (words, tags) in enumerate(zip(sentences, labels)) if len(words) != len(tags)]
        if short:
            raise ValueError(f"{len(short)} sentences have another number of labels than words (first: {short[0]})")
    if label_all_tokens and tag_names is None:
        raise ValueError("label_all_tokens needs tag_names (the label list) to turn B-X into I-X")
    follow = continuation_tags(tag_names) if label_all_tokens else None

    rows = _encode_words(tokenizer, sentences)
    _unk_for_empty_words(tokenizer, sentences, rows)
    windows = []
    for i, (words, row) in enumerate(zip(sentences, rows)):
        if len(row["input_ids"]) <= max_length:
            parts, starts = [row], [0]
        else:
            counts = [0] * len(words)
            for w in row["word_ids"]:
                if w != NO_WORD:
                    counts[w] += 1
            spans = window_spans(counts, room, stride)
            parts = _encode_words(tokenizer, [words[a:b] for a, b in spans], truncation=True, max_length=max_length)
            starts = [a for a, _ in spans]
        word_ids = [[w + a if w != NO_WORD else NO_WORD for w in part["word_ids"]] for part, a in zip(parts, starts)]
        owners = _owners(word_ids, len(words))
        if -1 in owners:  # only a tokenizer that splits a word differently inside a window gets here
            raise RuntimeError(f"sentence {i}: word {owners.index(-1)} lies in no window")
        for k, (part, wids) in enumerate(zip(parts, word_ids)):
            owned = [w != NO_WORD and owners[w] == k and (p == 0 or wids[p - 1] != w) for p, w in enumerate(wids)]
            window = {key: value for key, value in part.items() if key != "word_ids"}
            window.update(sentence=ids[i], n_words=len(words), word_ids=wids, owned=owned)
            if labels is not None:
                mine = [w != NO_WORD and owners[w] == k for w in wids]
                window["labels"] = _window_labels(labels[i], wids, owned, mine, follow)
            windows.append(window)
    return windows


def collate(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
            buckets: list[int] | None = None) -> dict:
    """Windows padded to the batch's longest, rounded up to `pad_to_multiple_of` or to one of
    `buckets`: input ids with `pad_token_id`, labels with IGNORE_INDEX, the rest with 0.
    `batch["windows"]` keeps each window's WINDOW_KEYS as Python lists, for decode."""
    batch, longest = pad_inputs(features, pad_token_id, pad_to_multiple_of, buckets)
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] + [IGNORE_INDEX] * (longest - len(f["labels"]))
                                        for f in features])
    batch["windows"] = [{key: f[key] for key in WINDOW_KEYS} for f in features]
    return batch


def decode(outputs, windows: Sequence[dict], scores=None) -> dict[int, tuple[list[int], list[float] | None]]:
    """One tag id per word for each sentence the windows cover: {sentence: (tag ids, scores)}
    in sentence order. `outputs`: logits (windows x positions x tags; scores are the softmax
    probability of the chosen tag at the word's first sub-token) or tag ids (windows x
    positions; scores from `scores`, of the same shape, else None). All windows of a sentence
    must be decoded together."""
    outputs = torch.as_tensor(outputs).detach()
    longest = max((len(window["word_ids"]) for window in windows), default=0)
    if outputs.dim() not in (2, 3) or outputs.shape[0] != len(windows) or outputs.shape[1] < longest:
        raise ValueError(f"outputs of shape {tuple(outputs.shape)} for {len(windows)} windows of up to {longest} "
                         "positions; expected windows x positions (x tags)")
    if outputs.dim() == 3:
        probs, ids = outputs.float().softmax(-1).max(-1)
        probs = probs.cpu().tolist()
    else:
        ids, probs = outputs, (torch.as_tensor(scores).cpu().tolist() if scores is not None else None)
    ids = ids.cpu().tolist()
    out: dict[int, tuple[list, list]] = {}
    for k, window in enumerate(windows):
        tags, scores = out.setdefault(window["sentence"], ([None] * window["n_words"], [None] * window["n_words"]))
        for p, (w, own) in enumerate(zip(window["word_ids"], window["owned"])):
            if not own:
                continue
            if tags[w] is not None:
                raise ValueError(f"sentence {window['sentence']}: word {w} is predicted by two windows; decode each "
                                 "window once (only the real rows of a batch topped up with filler rows)")
            tags[w] = ids[k][p]
            scores[w] = probs[k][p] if probs is not None else None
    for sentence, (tags, _) in out.items():
        if None in tags:
            raise ValueError(f"sentence {sentence}: word {tags.index(None)} of {len(tags)} has no window here; "
                             "decode all windows of a sentence together")
    return {s: (out[s][0], out[s][1] if probs is not None else None) for s in sorted(out)}


def word_entities(words: Sequence[str], tags: Sequence[str], scores: Sequence[float] | None = None,
                  text: str | None = None, scheme: str | None = None) -> list[dict]:
    """The entities of one tagged sentence, each {type, text, start, end, words, score}:
    `start`/`end` are character offsets into `text` (the text the words came from, in
    order, e.g. split by `split_words`; default the words joined by single spaces), `words`
    the [first, one past the last] word, `score` the mean of its words' scores (None without
    scores). Entities are read by the CoNLL rules (`tag_schemes.entities`)."""
    if len(tags) != len(words) or (scores is not None and len(scores) != len(words)):
        raise ValueError(f"{len(words)} words but {len(tags)} tags"
                         + ("" if scores is None else f", {len(scores)} scores"))
    text = " ".join(words) if text is None else text
    offsets, position = [], 0
    for i, word in enumerate(words):
        start = text.find(word, position)
        if start < 0:
            raise ValueError(f"word {i} {word!r} is not in the text after character {position}")
        offsets.append((start, start + len(word)))
        position = start + len(word)
    found = []
    for kind, a, b in entities(tags, scheme):
        start, end = offsets[a][0], offsets[b - 1][1]
        score = sum(scores[a:b]) / (b - a) if scores is not None else None
        found.append({"type": kind, "text": text[start:end], "start": start, "end": end, "words": [a, b],
                      "score": score})
    return found
