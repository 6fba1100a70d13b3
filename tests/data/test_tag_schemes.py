"""Tag schemes: which tags are read, entities by the conlleval rules (checked against seqeval
where it is installed), scheme detection, and conversions that keep every entity."""

from __future__ import annotations

import random

import pytest

from lit_nlp.data.tag_schemes import (
    convert,
    detect_scheme,
    entities,
    entity_types,
    split_tag,
    tag_names,
    tag_problem,
    tags_from_entities,
    validate_tags,
)
from lit_nlp.errors import LitNlpError


@pytest.mark.parametrize("tag", ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-creative-work", "I-X-Y"])
def test_tags_that_are_read(tag):
    assert tag_problem(tag) is None


@pytest.mark.parametrize("tag, says", [
    ("PER", "is not O or B-/I-/E-/S-<type>"),
    ("B-", "is not O"),
    ("B_PER", "is not O"),
    ("b-PER", "is not O"),
    ("BI-PER", "is not O"),
    ("-PER", "is not O"),
    ("O-PER", "is not O"),
    ("", "is not O"),
    ("U-PER", "BILOU; rename U- to S- and L- to E-"),
    ("L-PER", "BILOU"),
])
def test_tags_that_are_not(tag, says):
    assert says in tag_problem(tag)
    with pytest.raises(ValueError):
        split_tag(tag)


def test_split_tag_keeps_hyphens_in_the_type():
    assert split_tag("B-creative-work") == ("B", "creative-work")
    assert split_tag("O") == ("O", "")


# (tags, entities as (type, start, end exclusive)) by the conlleval rules
CASES = {
    "bio": (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    "i_after_o_starts_one": (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),
    "i_at_sentence_start": (["I-PER", "O"], [("PER", 0, 1)]),
    "iob1_b_splits_one_type": (["I-PER", "I-PER", "B-PER", "O"], [("PER", 0, 2), ("PER", 2, 3)]),
    "bio_adjacent_one_type": (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    "type_change_without_b": (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
    "at_sentence_end": (["O", "O", "B-ORG", "I-ORG"], [("ORG", 2, 4)]),
    "bioes": (["S-X", "B-X", "I-X", "E-X", "O", "S-Y"], [("X", 0, 1), ("X", 1, 4), ("Y", 5, 6)]),
    "e_after_e_starts_one": (["B-X", "E-X", "E-X"], [("X", 0, 2), ("X", 2, 3)]),
    "i_after_e_starts_one": (["B-X", "E-X", "I-X"], [("X", 0, 2), ("X", 2, 3)]),
    "i_after_s_starts_one": (["S-X", "I-X", "E-X"], [("X", 0, 1), ("X", 1, 3)]),
    "e_after_o_is_one": (["O", "E-X"], [("X", 1, 2)]),
    "unclosed_bioes": (["B-X", "I-X"], [("X", 0, 2)]),
    "hyphenated_type": (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)]),
    "no_entity": (["O", "O"], []),
    "empty": ([], []),
}


@pytest.mark.parametrize("name", CASES)
def test_entities_by_the_conll_rules(name):
    tags, expected = CASES[name]
    assert entities(tags) == expected


def random_tags(rng: random.Random, n: int, alphabet=("O", "O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B")) -> list[str]:
    return [rng.choice(alphabet) for _ in range(n)]


def test_entities_match_seqeval():
    get_entities = pytest.importorskip("seqeval.metrics.sequence_labeling").get_entities
    rng = random.Random(0)
    sequences = [tags for tags, _ in CASES.values() if tags]
    sequences += [random_tags(rng, rng.randint(1, 12)) for _ in range(500)]
    for tags in sequences:
        # seqeval gives (type, start, end inclusive)
        assert entities(tags) == [(t, a, b + 1) for t, a, b in get_entities(tags)], tags


def test_scheme_checks_prefixes():
    assert entities(["B-X", "I-X"], "BIO") == [("X", 0, 2)]
    with pytest.raises(ValueError, match="'S-X' at token 1 is not a BIO tag"):
        entities(["O", "S-X"], "BIO")
    with pytest.raises(LitNlpError, match="unknown tag scheme 'BILOU'"):
        entities(["O"], "BILOU")


@pytest.mark.parametrize("sequences, scheme", [
    ([["B-X", "E-X", "O"], ["S-Y"]], "BIOES"),
    ([["O", "B-X", "I-X"], ["B-Y"]], "BIO"),
    ([["I-X", "I-X", "B-X"], ["O", "I-Y"]], "IOB1"),
    ([["I-X", "I-Y"], ["I-X"]], "IOB1"),  # IOB1 without any B-
    # BIO data with slips: a B- where IOB1 never writes one decides, the stray I- does not
    ([["O", "I-X"], ["O", "B-X", "I-X"]], "BIO"),
    ([["B-X", "I-X"]], "BIO"),  # B- at a sentence start
    ([["I-X", "B-Y"]], "BIO"),  # B- after another type
    ([["O", "O"], []], "BIO"),  # no entity: BIO and IOB1 read the same
])
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_detect_scheme_reads_a_generator():
    assert detect_scheme(iter([["I-X"], ["I-X", "B-X"]])) == "IOB1"


def test_convert_writes_each_scheme():
    bio = ["B-X", "I-X", "B-X", "O", "B-Y", "B-Y", "I-Y", "I-Y"]
    assert convert(bio, "IOB1") == ["I-X", "I-X", "B-X", "O", "I-Y", "B-Y", "I-Y", "I-Y"]
    assert convert(bio, "BIOES") == ["B-X", "E-X", "S-X", "O", "S-Y", "B-Y", "I-Y", "E-Y"]
    assert convert(convert(bio, "IOB1"), "BIO") == bio
    assert convert(convert(bio, "BIOES"), "BIO") == bio
    # a slip in BIO is repaired the way conlleval reads it
    assert convert(["O", "I-X", "I-X"], "BIO") == ["O", "B-X", "I-X"]


@pytest.mark.parametrize("scheme", ["IOB1", "BIO", "BIOES"])
def test_conversion_keeps_every_entity(scheme):
    rng = random.Random(scheme)
    for _ in range(300):
        tags = random_tags(rng, rng.randint(0, 10))
        written = convert(tags, scheme)
        assert entities(written) == entities(tags)
        assert entities(written, scheme) == entities(tags)  # only the scheme's prefixes
        # the canonical form comes back unchanged through BIO (predictions are written in the
        # input's scheme)
        assert convert(convert(written, "BIO"), scheme) == written
        if entities(tags):
            assert detect_scheme([written]) == scheme


def test_tags_from_entities_rejects_overlaps():
    with pytest.raises(ValueError, match="overlaps"):
        tags_from_entities([("X", 0, 2), ("Y", 1, 3)], 4)
    with pytest.raises(ValueError, match="outside 2 tokens"):
        tags_from_entities([("X", 1, 3)], 2)


def test_tag_names():
    assert tag_names(["PER", "LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert tag_names(["X"], "BIOES") == ["O", "B-X", "I-X", "E-X", "S-X"]


def test_entity_types_and_validation():
    assert entity_types([["B-PER", "O"], ["I-LOC", "S-PER"]]) == ["LOC", "PER"]
    assert entity_types([["O"]]) == []
    validate_tags([["B-PER", "O"]])
    with pytest.raises(LitNlpError, match=r"2 tags are not .*first in sentence 1 at token 0: tag 'PER'"):
        validate_tags([["O"], ["PER", "B-X", "U-X"]])
