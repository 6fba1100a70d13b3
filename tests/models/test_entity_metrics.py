"""Entity P/R/F1 and token accuracy: hand-computed values, agreement with seqeval (conlleval
rules) on the sequences where schemes differ, sum states that merge, and the same values from
two processes (gloo) as from one."""

from __future__ import annotations

import os
import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_nlp.data.tag_schemes import tag_names
from lit_nlp.models.entity_metrics import EntityMetric

LABELS = tag_names(["LOC", "PER"], "BIOES")


def values(out: dict) -> dict[str, float]:
    return {k: v.item() for k, v in out.items()}


def test_hand_computed():
    metric = EntityMetric(LABELS)
    # gold: PER(0,2) LOC(3,4); predicted: PER(0,2) right, PER(3,4) wrong type
    metric.update([["B-PER", "I-PER", "O", "B-PER"]], [["B-PER", "I-PER", "O", "B-LOC"]])
    # gold: LOC(1,3); predicted: LOC(1,2), a wrong boundary
    metric.update([["O", "B-LOC", "O"]], [["O", "B-LOC", "I-LOC"]])
    out = values(metric.compute())
    # 1 correct of 3 predicted and 3 gold -> P = R = F1 = 1/3; tokens 5 of 7 right
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx(1 / 3) and out["accuracy"] == pytest.approx(5 / 7)
    # PER: 1 of 2 predicted, 1 of 1 gold -> F1 2/3; LOC: 0 of 1 predicted, 0 of 2 gold
    assert (out["precision/PER"], out["recall/PER"], out["f1/PER"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (out["precision/LOC"], out["recall/LOC"], out["f1/LOC"]) == (0.0, 0.0, 0.0)


def test_nothing_seen_is_zero_not_nan():
    out = values(EntityMetric(LABELS).compute())
    assert set(out) == {"precision", "recall", "f1", "accuracy"} | {f"{m}/{t}" for m in ("precision", "recall", "f1")
                                                                     for t in ("LOC", "PER")}
    assert all(v == 0.0 for v in out.values())


def test_tag_ids_read_through_the_labels():
    by_name, by_id = EntityMetric(LABELS), EntityMetric(LABELS)
    pred, gold = ["B-PER", "E-PER", "S-LOC"], ["B-PER", "E-PER", "O"]
    by_name.update([pred], [gold])
    by_id.update([[LABELS.index(t) for t in pred]], [torch.tensor([LABELS.index(t) for t in gold])])
    assert values(by_name.compute()) == values(by_id.compute())


def test_entity_lists():
    metric = EntityMetric(LABELS)
    metric.update([[("PER", 0, 2), ("LOC", 3, 4)]], [[("PER", 0, 2)]], entity_lists=True)
    out = values(metric.compute())
    assert (out["precision"], out["recall"], out["accuracy"]) == (0.5, 1.0, 0.0)
    # through update(), so torchmetrics drops its cached result
    metric.update([[]], [[("LOC", 0, 1)]], entity_lists=True)
    assert values(metric.compute())["recall"] == 0.5


def test_misuse_is_an_error():
    with pytest.raises(ValueError, match="entity type 'ORG' is not among the labels' types"):
        EntityMetric(LABELS).update([["B-ORG"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 0: 2 predicted tags but 1 gold tags"):
        EntityMetric(LABELS).update([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="1 predicted sentences but 2 gold ones"):
        EntityMetric(LABELS).update([["O"]], [["O"], ["O"]])


# ---------------------------------------------------------------- against seqeval

# (predicted, gold) sentences where the reading of the tags decides the score
TRICKY = {
    # IOB1 gold against a BIO-style prediction: the same two PER entities, then one merged
    "iob1_vs_bio": [(["B-PER", "I-PER", "B-PER"], ["I-PER", "I-PER", "B-PER"]),
                    (["B-PER", "I-PER", "I-PER"], ["I-PER", "I-PER", "B-PER"])],
    "adjacent_one_type": [(["B-LOC", "B-LOC", "O"], ["B-LOC", "I-LOC", "O"]),
                          (["B-LOC", "B-LOC"], ["B-LOC", "B-LOC"])],
    "i_after_o": [(["O", "I-PER", "I-PER"], ["O", "B-PER", "I-PER"]), (["O", "I-PER"], ["B-PER", "O"])],
    "at_sentence_end": [(["O", "B-PER", "I-PER"], ["O", "B-PER", "I-PER"]),
                        (["O", "O", "B-LOC"], ["O", "B-LOC", "I-LOC"])],
    "type_change": [(["B-PER", "I-LOC"], ["B-PER", "I-PER"])],
    "bioes": [(["S-PER", "B-LOC", "E-LOC", "E-LOC"], ["S-PER", "B-LOC", "I-LOC", "E-LOC"]),
              (["B-PER", "I-PER", "O"], ["B-PER", "E-PER", "O"]), (["O", "E-LOC", "I-LOC"], ["O", "S-LOC", "S-LOC"])],
    "no_prediction": [(["O", "O"], ["B-PER", "O"])],
}


def random_pairs(seed: int, n: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    alphabet = ["O"] * 4 + LABELS[1:]
    pairs = []
    for _ in range(n):
        gold = [rng.choice(alphabet) for _ in range(rng.randint(1, 10))]
        # predictions mostly right, so that entities match often enough to test the counting
        pred = [g if rng.random() < 0.7 else rng.choice(alphabet) for g in gold]
        pairs.append((pred, gold))
    return pairs


def check_against_seqeval(pairs):
    seqeval = pytest.importorskip("seqeval.metrics")
    preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
    metric = EntityMetric(LABELS)
    metric.update(preds, golds)
    ours = values(metric.compute())
    expected = {"precision": seqeval.precision_score(golds, preds, zero_division=0),
                "recall": seqeval.recall_score(golds, preds, zero_division=0),
                "f1": seqeval.f1_score(golds, preds, zero_division=0),
                "accuracy": seqeval.accuracy_score(golds, preds)}
    report = seqeval.classification_report(golds, preds, output_dict=True, zero_division=0)
    for kind in ("LOC", "PER"):
        if kind in report:  # seqeval leaves out a type that is neither gold nor predicted
            expected.update({f"precision/{kind}": report[kind]["precision"],
                             f"recall/{kind}": report[kind]["recall"], f"f1/{kind}": report[kind]["f1-score"]})
    assert {k: ours[k] for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize("name", TRICKY)
def test_tricky_sequences_match_seqeval(name):
    check_against_seqeval(TRICKY[name])


def test_random_sequences_match_seqeval():
    check_against_seqeval(random_pairs(0, 400))


def test_two_updates_equal_one():
    pairs = random_pairs(1, 50)
    whole, split = EntityMetric(LABELS), EntityMetric(LABELS)
    whole.update([p for p, _ in pairs], [g for _, g in pairs])
    split.update([p for p, _ in pairs[:20]], [g for _, g in pairs[:20]])
    split.update([p for p, _ in pairs[20:]], [g for _, g in pairs[20:]])
    assert values(whole.compute()) == values(split.compute())
    whole.reset()
    assert values(whole.compute())["f1"] == 0.0


# ---------------------------------------------------------------- two processes


def _rank_compute(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        pairs = random_pairs(2, 60)[rank::world_size]  # each rank its half of the sentences
        metric = EntityMetric(LABELS)
        metric.update([p for p, _ in pairs], [g for _, g in pairs])
        torch.save(values(metric.compute()), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_two_processes_equal_one(tmp_path):
    # forked, not spawned: a spawned process imports torch and torchmetrics again (about 6 s
    # here on 2 cores, 15 s for the test); a fork inherits them and the test takes 0.1 s
    mp.start_processes(_rank_compute, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    pairs = random_pairs(2, 60)
    single = EntityMetric(LABELS)
    single.update([p for p, _ in pairs], [g for _, g in pairs])
    expected = values(single.compute())
    half = EntityMetric(LABELS)
    half.update([p for p, _ in pairs[::2]], [g for _, g in pairs[::2]])
    assert values(half.compute()) != expected  # else the test could not tell synced from unsynced
    for rank in range(2):
        assert torch.load(tmp_path / f"rank{rank}.pt") == pytest.approx(expected)
