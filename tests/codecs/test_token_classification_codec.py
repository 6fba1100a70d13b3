"""Token classification codec: one label per word on its first sub-token, long sentences in
overlapping windows where every word is owned and predicted exactly once, padding, decoding
back to one tag per word, and entities with character offsets. Tokenizers are trained here
on a few sentences (WordPiece with [CLS]/[SEP], and a T5-style BPE with only </s>)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest
import torch

from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.codecs.token_classification import (
    NO_WORD,
    collate,
    continuation_tags,
    decode,
    encode,
    split_words,
    window_spans,
    word_entities,
)
from lit_nlp.data.tag_schemes import tag_names
from lit_nlp.data.tokenizers import BPETokenizer, WordPieceTokenizer
from lit_nlp.errors import LitNlpError

TEXTS = ["john smith lives in washington with mary jones", "the cat sat on the mat",
         "paris london berlin are cities"] * 5
# words the tokenizer cuts into 3 to 6 pieces beside the whole words of TEXTS
LONG_WORDS = ["washingtonian", "londoner", "smithsonian", "catsat", "matmatmat"]
VOCAB = sorted({w for text in TEXTS for w in text.split()}) + LONG_WORDS
NAMES = tag_names(["LOC", "PER"])  # O B-LOC I-LOC B-PER I-PER


@pytest.fixture(scope="module")
def wordpiece():
    # 90 pieces: every word of TEXTS is one piece, LONG_WORDS are several
    return WordPieceTokenizer(vocab_size=90).build(TEXTS)


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer(vocab_size=80).build(TEXTS)


def sub_tokens(tokenizer, words):
    return [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]


# ---------------------------------------------------------------- words and sub-words


def test_first_sub_token_carries_the_tag(wordpiece):
    words, labels = ["John", "lives", "in", "Washingtonian"], [3, 0, 0, 1]
    [window] = encode(wordpiece, [words], max_length=32, stride=4, labels=[labels])
    pieces = sub_tokens(wordpiece, words)
    assert len(pieces[3]) > 1
    assert window["input_ids"] == wordpiece(words, is_split_into_words=True)["input_ids"]
    assert window["word_ids"] == [NO_WORD] + [i for i, p in enumerate(pieces) for _ in p] + [NO_WORD]
    assert window["labels"] == ([IGNORE_INDEX] + [lab if k == 0 else IGNORE_INDEX for p, lab in zip(pieces, labels)
                                                  for k in range(len(p))] + [IGNORE_INDEX])
    assert [w for w, own in zip(window["word_ids"], window["owned"]) if own] == [0, 1, 2, 3]
    assert (window["sentence"], window["n_words"]) == (0, 4)
    assert len(window["token_type_ids"]) == len(window["attention_mask"]) == len(window["input_ids"])


def test_label_all_tokens_continues_b_as_i(wordpiece):
    words, labels = ["washingtonian", "smith"], [NAMES.index("B-LOC"), NAMES.index("I-PER")]
    [window] = encode(wordpiece, [words], 32, 4, labels=[labels], label_all_tokens=True, tag_names=NAMES)
    n = len(sub_tokens(wordpiece, ["washingtonian"])[0])
    assert window["labels"] == [IGNORE_INDEX] + [1] + [2] * (n - 1) + [4] + [IGNORE_INDEX]
    assert sum(window["owned"]) == 2  # still one scored position per word
    with pytest.raises(ValueError, match="label_all_tokens needs tag_names"):
        encode(wordpiece, [words], 32, 4, labels=[labels], label_all_tokens=True)


def test_continuation_tags():
    assert continuation_tags(NAMES) == [0, 2, 2, 4, 4]
    assert continuation_tags(["O", "B-X", "I-X", "E-X", "S-X", "B-Y"]) == [0, 2, 2, 3, 4, 5]


def test_a_word_without_sub_tokens_is_encoded_as_unk(wordpiece):
    # the normalizer removes a zero-width space entirely: the word would get no prediction
    words = ["john", "\u200b", "smith"]
    assert sub_tokens(wordpiece, ["\u200b"]) == [[]]
    [window] = encode(wordpiece, [words], 32, 4, labels=[[3, 0, 4]])
    assert window["input_ids"][2] == wordpiece.unk_token_id
    assert window["word_ids"] == [NO_WORD, 0, 1, 2, NO_WORD] and window["labels"][1:4] == [3, 0, 4]


def test_sentence_ids_and_an_empty_sentence(wordpiece):
    windows = encode(wordpiece, [["cat"], []], 16, 2, labels=[[0], []], sentence_ids=[7, 9])
    assert [(w["sentence"], w["n_words"]) for w in windows] == [(7, 1), (9, 0)]
    decoded = decode(torch.zeros(2, 3, len(NAMES)), collate(windows, 0)["windows"])
    assert {s: tags for s, (tags, _) in decoded.items()} == {7: [0], 9: []}


def test_bad_lengths_are_errors(wordpiece):
    with pytest.raises(LitNlpError, match=r"stride=6: windows share 0 to 5 sub-tokens at max_length=8 "
                                          r"\(2 special tokens\); lower stride"):
        encode(wordpiece, [["cat"]], 8, 6)
    with pytest.raises(LitNlpError, match="max_length=2 leaves no room for words beside 2 special tokens"):
        encode(wordpiece, [["cat"]], 2, 0)
    with pytest.raises(ValueError, match="1 sentences have another number of labels than words"):
        encode(wordpiece, [["cat", "sat"]], 8, 1, labels=[[0]])


# ---------------------------------------------------------------- windows


def test_window_spans():
    assert window_spans([1] * 10, room=6, stride=2) == [(0, 6), (4, 10)]
    assert window_spans([1] * 5, room=2, stride=0) == [(0, 2), (2, 4), (4, 5)]
    # a word longer than a window stands alone (and is cut to its first sub-tokens)
    assert window_spans([3, 1, 1], room=2, stride=1) == [(0, 1), (1, 3)]
    # the shared words never take the next window back to where this one started
    assert window_spans([1, 5, 1], room=6, stride=5) == [(0, 2), (1, 3)]
    assert window_spans([2, 2], room=4, stride=3) == [(0, 2)]
    # nor so far back that the next word does not fit: every window holds a new word
    assert window_spans([1, 1, 1, 3, 1], room=4, stride=2) == [(0, 3), (2, 4), (4, 5)]


def test_a_shared_word_belongs_to_the_window_where_it_has_more_context(wordpiece):
    # 10 one-piece words, 6 per window, 2 shared: windows [0, 6) and [4, 10); word 4 has 4
    # words before it and 1 after in the first window, 0 before in the second -> first;
    # word 5 has 0 after it in the first, 1 before and 4 after in the second -> second
    words = ["the", "cat", "sat", "on", "the", "mat", "in", "paris", "with", "mary"]
    assert all(len(p) == 1 for p in sub_tokens(wordpiece, words))
    first, second = encode(wordpiece, [words], max_length=8, stride=2, labels=[list(range(10))])
    assert first["word_ids"] == [NO_WORD, 0, 1, 2, 3, 4, 5, NO_WORD]
    assert second["word_ids"] == [NO_WORD, 4, 5, 6, 7, 8, 9, NO_WORD]
    assert [w for w, own in zip(first["word_ids"], first["owned"]) if own] == [0, 1, 2, 3, 4]
    assert [w for w, own in zip(second["word_ids"], second["owned"]) if own] == [5, 6, 7, 8, 9]
    assert first["labels"][6] == IGNORE_INDEX and second["labels"][1] == IGNORE_INDEX


def test_a_word_longer_than_a_window_keeps_its_first_pieces(wordpiece):
    # room for 3 pieces beside [CLS] and [SEP]; "smithsonian" is 6: its window holds its first
    # 3, enough to label and predict the word by its first
    words = ["the", "smithsonian", "cat"]
    assert len(sub_tokens(wordpiece, words)[1]) == 6
    windows = encode(wordpiece, [words], max_length=5, stride=1, labels=[[0, 1, 0]])
    assert [w["word_ids"] for w in windows] == [[NO_WORD, 0, NO_WORD], [NO_WORD, 1, 1, 1, NO_WORD],
                                                [NO_WORD, 2, NO_WORD]]
    assert windows[1]["labels"] == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]


def random_sentences(seed: int, n: int, longest: int) -> tuple[list[list[str]], list[list[int]]]:
    rng = random.Random(seed)
    sentences = [[rng.choice(VOCAB) for _ in range(rng.randint(1, longest))] for _ in range(n)]
    return sentences, [[rng.randrange(len(NAMES)) for _ in words] for words in sentences]


def perfect_logits(batch: dict) -> torch.Tensor:
    """Logits that pick each labelled position's label."""
    labels = batch["labels"]
    logits = torch.zeros(*labels.shape, len(NAMES))
    scored = labels != IGNORE_INDEX
    logits[scored, labels[scored]] = 5.0
    return logits


@pytest.mark.parametrize("tokenizer, max_length, stride", [
    ("wordpiece", 5, 0), ("wordpiece", 5, 2), ("wordpiece", 8, 3), ("wordpiece", 16, 10), ("wordpiece", 64, 16),
    ("bpe", 6, 2), ("bpe", 12, 4),
])
def test_every_word_is_owned_and_predicted_once(request, tokenizer, max_length, stride):
    tokenizer = request.getfixturevalue(tokenizer)
    sentences, labels = random_sentences(max_length * 100 + stride, 40, 30)
    windows = encode(tokenizer, sentences, max_length, stride, labels=labels)
    assert len(windows) > len(sentences) or max_length == 64
    owned = Counter()
    for window in windows:
        assert len(window["input_ids"]) <= max_length
        for p, (w, own) in enumerate(zip(window["word_ids"], window["owned"])):
            first_piece = w != NO_WORD and (p == 0 or window["word_ids"][p - 1] != w)
            assert own <= first_piece
            assert window["labels"][p] == (labels[window["sentence"]][w] if own else IGNORE_INDEX)
            owned[window["sentence"], w] += own
    assert owned == Counter({(s, w): 1 for s, words in enumerate(sentences) for w in range(len(words))})
    # the windows of one sentence are in order, each adds words, and they share up to `stride`
    # pieces of whole words (some share, unless stride is 0)
    any_shared = False
    for a, b in pairwise(windows):
        if a["sentence"] == b["sentence"]:
            a_words, b_words = set(a["word_ids"]) - {NO_WORD}, set(b["word_ids"]) - {NO_WORD}
            assert min(b_words) <= max(a_words) + 1 and max(b_words) > max(a_words)
            shared = a_words & b_words
            assert sum(w in shared for w in b["word_ids"]) <= stride
            any_shared |= bool(shared)
    assert any_shared == (stride > 0 and len(windows) > len(sentences))
    batch = collate(windows, tokenizer.pad_token_id)
    decoded = decode(perfect_logits(batch), batch["windows"])
    assert [decoded[s][0] for s in range(len(sentences))] == labels
    # label_all_tokens: every piece of a word the window owns is labelled, the first with the
    # word's tag, the others with its continuation; the rest stays ignored
    follow = continuation_tags(NAMES)
    for window in encode(tokenizer, sentences, max_length, stride, labels, label_all_tokens=True, tag_names=NAMES):
        owners = {w for w, own in zip(window["word_ids"], window["owned"]) if own}
        for p, w in enumerate(window["word_ids"]):
            tag = labels[window["sentence"]][w] if w in owners else IGNORE_INDEX
            assert window["labels"][p] == (tag if window["owned"][p] or tag == IGNORE_INDEX else follow[tag])


# ---------------------------------------------------------------- batches and decoding


def test_collate_pads(wordpiece):
    windows = encode(wordpiece, [["cat"], ["the", "cat", "sat"]], 16, 2, labels=[[0], [0, 3, 4]])
    batch = collate(windows, wordpiece.pad_token_id, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, 8)
    assert batch["input_ids"][0, 3:].tolist() == [wordpiece.pad_token_id] * 5
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 0] + [IGNORE_INDEX] * 6
    assert batch["attention_mask"][0].tolist() == [1, 1, 1] + [0] * 5
    assert batch["token_type_ids"].shape == (2, 8)
    assert batch["windows"][1] == {key: windows[1][key] for key in ("sentence", "n_words", "word_ids", "owned")}
    assert collate(windows, 0, buckets=[4, 12, 16])["input_ids"].shape == (2, 12)
    assert "labels" not in collate(encode(wordpiece, [["cat"]], 16, 2), 0)


def test_decode_scores_and_ids(wordpiece):
    windows = encode(wordpiece, [["john", "cat"]], 16, 2)
    logits = torch.zeros(1, 4, len(NAMES))
    logits[0, 1, 3] = 2.0  # john -> B-PER with probability e^2 / (e^2 + 4)
    [(tags, scores)] = decode(logits, windows).values()
    assert tags == [3, 0]
    assert scores == pytest.approx([torch.tensor(2.0).exp().item() / (torch.tensor(2.0).exp().item() + 4), 0.2])
    assert decode(logits.argmax(-1), windows) == {0: ([3, 0], None)}


def test_decode_needs_every_window_of_a_sentence_once(wordpiece):
    sentences, labels = random_sentences(3, 6, 20)
    windows = encode(wordpiece, sentences, 8, 3, labels=labels)
    assert len(windows) > len(sentences)
    batch = collate(windows, 0)
    logits = perfect_logits(batch)
    order = list(range(len(windows)))
    random.Random(0).shuffle(order)
    shuffled = decode(logits[order], [batch["windows"][k] for k in order])
    assert shuffled == decode(logits, batch["windows"]) and list(shuffled) == list(range(len(sentences)))
    with pytest.raises(ValueError, match="has no window here; decode all windows of a sentence together"):
        decode(logits[1:], batch["windows"][1:])
    with pytest.raises(ValueError, match="is predicted by two windows"):
        decode(torch.cat([logits, logits[:1]]), batch["windows"] + batch["windows"][:1])
    with pytest.raises(ValueError, match="for 1 windows"):
        decode(logits, batch["windows"][:1])


# ---------------------------------------------------------------- entities in text


def test_split_words():
    assert split_words("  a  bc\td\n") == [("a", 2, 3), ("bc", 5, 7), ("d", 8, 9)]
    assert split_words(" \n") == []


def test_word_entities_point_into_the_text():
    text = "John  Smith lives in New\tYork ."
    words = [w for w, _, _ in split_words(text)]
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    scores = [0.9, 0.7, 1.0, 1.0, 0.6, 0.8, 1.0]
    found = word_entities(words, tags, scores, text=text)
    assert found == [
        {"type": "PER", "text": "John  Smith", "start": 0, "end": 11, "words": [0, 2], "score": pytest.approx(0.8)},
        {"type": "LOC", "text": "New\tYork", "start": 21, "end": 29, "words": [4, 6], "score": pytest.approx(0.7)},
    ]
    for entity in found:
        assert text[entity["start"]:entity["end"]] == entity["text"]


def test_word_entities_default_to_words_joined_by_spaces():
    found = word_entities(["in", "Paris", ",", "France"], ["O", "S-LOC", "O", "S-LOC"], scheme="BIOES")
    assert [(e["text"], e["start"], e["end"], e["score"]) for e in found] == [("Paris", 3, 8, None),
                                                                            ("France", 11, 17, None)]
    # tokens cut from running text (punctuation split off) are found in order
    found = word_entities(["Paris", ",", "France", "."], ["B-LOC", "O", "B-LOC", "O"], text="Paris, France.")
    assert [(e["text"], e["start"]) for e in found] == [("Paris", 0), ("France", 7)]
    with pytest.raises(ValueError, match=r"word 1 'Rome' is not in the text after character 5"):
        word_entities(["Paris", "Rome"], ["O", "O"], text="Paris, France")
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        word_entities(["a", "b"], ["O"])
