"""Entity tag schemes: IOB1, BIO (IOB2) and BIOES; reading entities out of tags by the CoNLL
rules, telling a data set's scheme, and converting between schemes.

A tag is `O` or `<prefix>-<type>` with prefix B, I, E or S; the type may hold hyphens
(`B-creative-work`). BILOU's U-/L- prefixes are not read: the error says to rename them to
S-/E- (the same scheme, BIOES).

Entities are read the way conlleval (and seqeval's default mode) reads them, which needs no
scheme: B- and S- always start an entity; I- and E- start one after O, after an entity of
another type, and after E- or S-; E- and S- end one. So `I-X I-X B-X` (IOB1) holds two
entities, `O I-X` (a slip in BIO data) holds one, and any scheme's tags convert to any other
through their entities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lit_nlp.errors import LitNlpError

SCHEMES = ("IOB1", "BIO", "BIOES")
PREFIXES = {"IOB1": "BI", "BIO": "BI", "BIOES": "BIES"}
OUTSIDE = "O"
Entity = tuple[str, int, int]  # (type, first token, one past the last token)


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not `O` or `B-/I-/E-/S-<type>`, or None when it is one."""
    if tag == OUTSIDE:
        return None
    prefix, dash, kind = tag.partition("-")
    if dash and kind and prefix in "BIES" and len(prefix) == 1:
        return None
    if dash and kind and prefix in ("U", "L"):
        return f"tag {tag!r} is BILOU; rename U- to S- and L- to E- (BIOES)"
    return f"tag {tag!r} is not O or B-/I-/E-/S-<type>"


def split_tag(tag: str) -> tuple[str, str]:
    """'B-creative-work' -> ('B', 'creative-work'); 'O' -> ('O', '')."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    problem = tag_problem(tag)
    if problem:
        raise ValueError(problem)
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def validate_tags(sequences: Iterable[Sequence[str]]) -> None:
    """Raise one LitNlpError naming the count and the first bad tags (sentence index, position)."""
    bad = [(s, i, tag) for s, tags in enumerate(sequences) for i, tag in enumerate(tags) if tag_problem(tag)]
    if bad:
        s, i, tag = bad[0]
        shown = ", ".join(sorted({repr(t) for _, _, t in bad})[:3])
        raise LitNlpError(f"{len(bad)} tags are not O or B-/I-/E-/S-<type> ({shown}); first in sentence {s} "
                          f"at token {i}: {tag_problem(tag)}")


def entity_types(sequences: Iterable[Sequence[str]]) -> list[str]:
    """The sorted entity types that the tags name (a label list counts as one sequence)."""
    return sorted({split_tag(tag)[1] for tags in sequences for tag in tags} - {""})


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """'BIOES', 'BIO' or 'IOB1', from how the tags start entities.

    Any E- or S- -> BIOES. Otherwise a B- where IOB1 never puts one (at a sentence start,
    after O, or after another type: IOB1 writes B- only between two adjacent entities of one
    type) -> BIO, even when some I- tags also start entities (slips that real BIO data holds).
    Otherwise an I- that starts an entity -> IOB1. Tags with no entity, which both read the
    same, -> BIO."""
    seen = set()  # "ES", "B" (a B- that begins an entity), "I" (an I- that does)
    for tags in sequences:
        prev_prefix, prev_kind = OUTSIDE, ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            begins = prev_prefix == OUTSIDE or prev_kind != kind
            if prefix in "ES":
                seen.add("ES")
            elif prefix != OUTSIDE and begins:
                seen.add(prefix)
            prev_prefix, prev_kind = prefix, kind
    if "ES" in seen:
        return "BIOES"
    return "IOB1" if seen == {"I"} else "BIO"


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise LitNlpError(f"unknown tag scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


def entities(tags: Sequence[str], scheme: str | None = None) -> list[Entity]:
    """The (type, start, end exclusive) entities of one sentence by the conlleval rules (module
    docstring). `scheme`, when given, also checks that no tag uses a prefix the scheme lacks
    (E-/S- in BIO or IOB1)."""
    allowed = "BIES"
    if scheme is not None:
        _check_scheme(scheme)
        allowed = PREFIXES[scheme]
    found, start, kind = [], None, ""
    prev_prefix = OUTSIDE
    for i, tag in enumerate(tags):
        prefix, this_kind = split_tag(tag)
        if prefix != OUTSIDE and prefix not in allowed:
            raise ValueError(f"tag {tag!r} at token {i} is not a {scheme} tag")
        ends = start is not None and (
            prefix in (OUTSIDE, "B", "S") or prev_prefix in ("E", "S") or this_kind != kind)
        if ends:
            found.append((kind, start, i))
            start = None
        if prefix != OUTSIDE and start is None:
            start, kind = i, this_kind
        prev_prefix = prefix
    if start is not None:
        found.append((kind, start, len(tags)))
    return found


def tags_from_entities(spans: Iterable[Entity], length: int, scheme: str = "BIO") -> list[str]:
    """The tags of a sentence of `length` tokens that hold `spans` (not overlapping), written in
    `scheme`'s canonical form (IOB1: B- only on an entity that directly follows one of its type)."""
    _check_scheme(scheme)
    tags = [OUTSIDE] * length
    prev_end, prev_kind = -1, ""
    for kind, start, end in sorted(spans, key=lambda span: span[1]):
        if not 0 <= start < end <= length or start < prev_end:
            raise ValueError(f"entity {(kind, start, end)} overlaps another or lies outside {length} tokens")
        tags[start:end] = [f"I-{kind}"] * (end - start)
        if scheme != "IOB1" or (prev_end == start and prev_kind == kind):
            tags[start] = f"B-{kind}"
        if scheme == "BIOES":
            tags[end - 1] = f"E-{kind}"
            tags[start] = f"S-{kind}" if end - start == 1 else tags[start]
        prev_end, prev_kind = end, kind
    return tags


def convert(tags: Sequence[str], to: str) -> list[str]:
    """`tags` (any scheme) rewritten in scheme `to`, entity for entity: to BIO for training,
    and predictions back to the input's scheme when they are written out."""
    return tags_from_entities(entities(tags), len(tags), to)


def tag_names(types: Iterable[str], scheme: str = "BIO") -> list[str]:
    """The label list of a tagger: 'O' first, then each type's tags (B, I[, E, S]) in type order."""
    _check_scheme(scheme)
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in PREFIXES[scheme]]
