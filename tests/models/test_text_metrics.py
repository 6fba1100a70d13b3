"""Generation metrics: SQuAD EM/F1, ROUGE-1/2/L/Lsum and label-word accuracy against
hand-computed values, sum states that accumulate, merge and reset, and ROUGE against Google's
rouge-score package when it is installed."""

from __future__ import annotations

import random

import pytest

from lit_nlp.models.text_metrics import (
    ROUGE_KEYS,
    RougeMetric,
    SquadMetric,
    TextAccuracy,
    exact_match,
    normalize_answer,
    rouge_scores,
    split_sentences,
    token_f1,
)


def values(out) -> dict[str, float]:
    return {k: v.item() for k, v in out.items()}


# ---------------------------------------------------------------- SQuAD


@pytest.mark.parametrize("text, expected", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("An apple a day", "apple day"),
    ("theater anthem", "theater anthem"),  # articles only as whole words
    ("a-b 'c'", "ab c"),  # punctuation is dropped, not turned into a space
    ("  \tThe\n", ""),
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_takes_the_best_gold():
    assert exact_match("the Eiffel Tower.", ["Paris", "Eiffel tower"]) == 1.0
    assert exact_match("Paris, France", ["Paris", "France"]) == 0.0


def test_token_f1_takes_the_best_gold():
    # gold 1: 1 of 2 pred tokens, 1 of 1 gold token -> P=1/2 R=1 -> 2/3
    # gold 2: 1 of 2 pred tokens, 1 of 3 gold tokens -> P=1/2 R=1/3 -> 0.4
    assert token_f1("Paris France", ["Paris", "in France city"]) == pytest.approx(2 / 3)
    assert token_f1("Paris France", ["in France city"]) == pytest.approx(0.4)


def test_token_f1_counts_a_repeated_token_once_per_gold_occurrence():
    # pred: to x2, be x2, or, not; gold: to x3, be x3 -> overlap 4 -> P=R=4/6
    assert token_f1("to be or not to be", ["to be to be to be"]) == pytest.approx(2 / 3)


def test_empty_answers():
    assert exact_match("", [""]) == 1.0 and token_f1("", [""]) == 1.0
    assert token_f1("The.", ["a"]) == 1.0  # both normalise to nothing
    assert exact_match("", ["x"]) == 0.0 and token_f1("", ["x"]) == 0.0
    assert token_f1("x", [""]) == 0.0
    assert token_f1("", []) == 1.0  # no gold answer = unanswerable, as in SQuAD 2.0


def test_squad_metric():
    metric = SquadMetric()
    # EM: 1, 0; F1: 1, "cat sat" vs "cat sat down" -> P=1 R=2/3 -> 0.8
    metric.update(["Paris", "the cat sat"], [["paris", "Lyon"], ["a cat sat down"]])
    assert values(metric.compute()) == pytest.approx({"exact_match": 0.5, "f1": 0.9})


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="1 predictions but 2 targets"):
        SquadMetric().update(["a"], [["a"], ["b"]])


# ---------------------------------------------------------------- ROUGE


def test_rouge_clips_repeated_ngrams():
    # pred: the the the cat (4 tokens); ref: the cat sat on the mat (6 tokens)
    # rouge1: the min(3, 2) + cat 1 = 3 -> P=3/4 R=3/6 -> 0.6
    # rouge2: pred (the the) x2, (the cat); ref 5 bigrams; overlap 1 -> P=1/3 R=1/5 -> 0.25
    # rougeL: LCS "the cat" = 2 -> P=2/4 R=2/6 -> 0.4
    scores = rouge_scores("The the THE cat", "the cat sat on the mat.")
    assert scores == pytest.approx({"rouge1": 0.6, "rouge2": 0.25, "rougeL": 0.4, "rougeLsum": 0.4})


def test_rouge_lsum_matches_each_sentence_on_its_own():
    # the same two sentences in swapped order: one LCS over the whole text finds 3 of 6
    # tokens, but each reference sentence finds all its tokens in one prediction sentence
    scores = rouge_scores("D e f! a b c.", "A b c. D e f.")
    assert scores["rougeL"] == pytest.approx(0.5)
    assert scores["rougeLsum"] == pytest.approx(1.0)


def test_rouge_lsum_clips_hits_by_prediction_token_counts():
    # both reference sentences match all of "a b": 4 union hits, but the prediction holds one
    # a and one b -> 2 hits, P=2/2 R=2/4 -> 2/3 (4 hits would give P=2)
    assert rouge_scores("a b", "a b.\na b.")["rougeLsum"] == pytest.approx(2 / 3)


def test_rouge_of_empty_text_is_zero():
    for pred, ref in [("", "a b"), ("a b", ""), ("", ""), ("?!", "...")]:
        assert rouge_scores(pred, ref) == dict.fromkeys(ROUGE_KEYS, 0.0)


def test_split_sentences():
    text = "One. Two!  Three?\n\nFour\nU.S. 3.5 pct"
    assert split_sentences(text) == ["One.", "Two!", "Three?", "Four", "U.S.", "3.5 pct"]


def test_rouge_metric_is_the_mean_over_examples():
    metric = RougeMetric()
    metric.update(["The the THE cat", "a b c"], ["the cat sat on the mat.", "a b c"])
    assert values(metric.compute()) == pytest.approx(
        {"rouge1": 0.8, "rouge2": 0.625, "rougeL": 0.7, "rougeLsum": 0.7})


# ---------------------------------------------------------------- label words


def test_text_accuracy():
    metric = TextAccuracy()
    metric.update([" Positive", "negative", "neutral "], ["positive", "Negative\n", "positive"])
    assert metric.compute().item() == pytest.approx(2 / 3)


# ---------------------------------------------------------------- sum states

CASES = {
    "squad": (SquadMetric, ["Paris", "the cat sat", "", "42"], [["paris"], ["a cat sat down"], [""], ["41", "42."]]),
    "rouge": (RougeMetric, ["a b c. d e", "x y", "the cat", ""], ["d e. a b c", "y x", "a cat sat", "z"]),
    "accuracy": (TextAccuracy, ["yes", "No", "maybe", "no"], ["yes", "no", "no", "no"]),
}


def as_dict(out) -> dict[str, float]:
    return values(out) if isinstance(out, dict) else {"value": out.item()}


@pytest.mark.parametrize("name", CASES)
def test_two_updates_equal_one(name):
    cls, preds, targets = CASES[name]
    whole, split = cls(), cls()
    whole.update(preds, targets)
    split.update(preds[:1], targets[:1])
    split.update(preds[1:], targets[1:])
    assert as_dict(split.compute()) == pytest.approx(as_dict(whole.compute()))


@pytest.mark.parametrize("name", CASES)
def test_merged_states_equal_one_metric(name):
    # merge_state applies the same dist_reduce_fx that DDP sync uses across ranks
    cls, preds, targets = CASES[name]
    whole, rank0, rank1 = cls(), cls(), cls()
    whole.update(preds, targets)
    rank0.update(preds[:3], targets[:3])
    rank1.update(preds[3:], targets[3:])
    rank0.merge_state(rank1)
    assert as_dict(rank0.compute()) == pytest.approx(as_dict(whole.compute()))


@pytest.mark.parametrize("name", CASES)
def test_reset_forgets_earlier_updates(name):
    cls, preds, targets = CASES[name]
    fresh, reused = cls(), cls()
    fresh.update(preds[2:], targets[2:])
    reused.update(preds[:2], targets[:2])
    reused.reset()
    reused.update(preds[2:], targets[2:])
    assert as_dict(reused.compute()) == pytest.approx(as_dict(fresh.compute()))


# ---------------------------------------------------------------- against rouge-score

WORDS = "the cat sat on mat a dog ran to park it was big red 3 2024 U.S. don't naïve".split()


def synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Prediction/reference pairs with repeated words, shared and reordered sentences,
    punctuation, case, digits, non-ASCII and empty texts: the cases where tokenising,
    clipping and LCS tie-breaking can go wrong."""
    rng = random.Random(seed)

    def sentence() -> str:
        words = rng.choices(WORDS, k=rng.randint(1, 9))
        return " ".join(words).capitalize() + rng.choice([".", "!", "?", ",", ""])

    pairs = [("", "The cat."), ("The cat.", ""), ("", ""), ("the the the", "the")]
    while len(pairs) < n:
        ref = [sentence() for _ in range(rng.randint(1, 4))]
        pred = [s if rng.random() < 0.3 else sentence() for s in rng.sample(ref, len(ref))]
        pred += [sentence() for _ in range(rng.randint(0, 2))]
        pairs.append((rng.choice([" ", "\n"]).join(pred), rng.choice([" ", "\n"]).join(ref)))
    return pairs


def test_rouge_matches_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS[:3]), use_stemmer=False, split_summaries=False)
    lsum = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False, split_summaries=False)
    pairs = synthetic_pairs(24)
    expected = []
    for pred, ref in pairs:
        ours = rouge_scores(pred, ref)
        theirs = {k: s.fmeasure for k, s in scorer.score(ref, pred).items()}
        # rouge-score splits rougeLsum sentences on newlines only: hand it ours
        theirs["rougeLsum"] = lsum.score("\n".join(split_sentences(ref)), "\n".join(split_sentences(pred)))[
            "rougeLsum"].fmeasure
        assert ours == pytest.approx(theirs, abs=1e-6), (pred, ref)
        expected.append(theirs)

    metric = RougeMetric()
    metric.update(*map(list, zip(*pairs)))
    mean = {k: sum(e[k] for e in expected) / len(expected) for k in ROUGE_KEYS}
    assert values(metric.compute()) == pytest.approx(mean, abs=1e-6)
    # the cases must exercise ROUGE-Lsum beyond plain ROUGE-L
    assert any(abs(e["rougeLsum"] - e["rougeL"]) > 1e-3 for e in expected)
