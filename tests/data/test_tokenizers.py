"""The WordPiece tokenizer trained from data (random-init models): the same vocabulary in every
process, pieces spelt as WordPiece spells them, private-use characters in the texts."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, synthetic_rows
from lit_nlp.data.tokenizers import WordPieceTokenizer

# tokenizers' hash maps are seeded per process, so determinism is checked across processes (the
# trainer as it was gave another vocabulary in each of 4 processes)
TRAIN_IN_A_PROCESS = """
import json, sys
sys.path.insert(0, "tests")
from conftest import synthetic_rows
from lit_nlp.data.tokenizers import WordPieceTokenizer
tok = WordPieceTokenizer(vocab_size=300).build(r["text"] for r in synthetic_rows(600, seed=4))
print(json.dumps(tok.get_vocab(), sort_keys=True))
"""


def test_the_same_vocabulary_in_every_process():
    vocabs = [subprocess.run([sys.executable, "-c", TRAIN_IN_A_PROCESS], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout for _ in range(2)]
    assert vocabs[0] == vocabs[1]
    here = WordPieceTokenizer(vocab_size=300).build(r["text"] for r in synthetic_rows(600, seed=4)).get_vocab()
    assert json.loads(vocabs[0]) == here


def test_pieces_are_spelt_as_wordpiece_spells_them():
    texts = ["unbelievably charming, wonderfully moving"] * 3 + ["charm and move", "a believable film"]
    tok = WordPieceTokenizer(vocab_size=60).build(texts)
    vocab = tok.get_vocab()
    assert sorted(vocab, key=vocab.get)[:5] == WordPieceTokenizer.SPECIAL
    assert all(ord(c) < 0xE000 for token in vocab for c in token)  # no stand-in character is left
    for word in ("charming", "believable", "moving"):
        pieces = tok.tokenize(word)
        assert "".join(p.removeprefix("##") for p in pieces) == word
        assert not pieces[0].startswith("##") and all(p.startswith("##") for p in pieces[1:]), pieces
    assert tok.decode(tok("charming moving")["input_ids"], skip_special_tokens=True) == "charming moving"


def test_private_use_characters_in_the_texts_are_cleaned_away_first():
    # training writes "##" pieces as private-use characters from U+10FFFD down; the texts' own
    # are removed by the normalizer before training sees them
    tok = WordPieceTokenizer(vocab_size=60).build(["some words here", "then \U0010FFFD \ue000itself"] * 2)
    assert all(ord(c) < 0xE000 for token in tok.get_vocab() for c in token)
    assert tok.tokenize("then \U0010FFFD itself") == tok.tokenize("then itself")
