"""Span decoding against a brute-force search, answers over several windows (best window, same
text merged, n-best, the no-answer score of SQuAD v2), the loss ignoring filler rows, gathered
windows in any order, and the module on a tiny random-init BERT and on the offline MiniLM."""

from __future__ import annotations

import random

import pytest
import torch

from conftest import compose_cfg
from lit_nlp.models.extractive_qa import ExtractiveQAModule, answer_questions, span_loss
from lit_nlp.models.span_decoding import QuestionAnswers, decode_batch, window_answers, window_spans

NEG = -1e4


def brute_force(start, end, context, max_len):
    """Every valid span's p(start) x p(end), softmax over the context tokens and position 0."""
    allowed = [c or i == 0 for i, c in enumerate(context)]
    def softmax(x):
        m = max(v for v, a in zip(x, allowed) if a)
        e = [torch.tensor(v - m).exp().item() if a else 0.0 for v, a in zip(x, allowed)]
        return [v / sum(e) for v in e]
    ps, pe = softmax(start), softmax(end)
    spans = {(s, e): ps[s] * pe[e] for s in range(len(start)) for e in range(s, min(s + max_len, len(start)))
             if context[s] and context[e]}
    return spans, ps[0] * pe[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_spans_match_a_brute_force_search(seed):
    gen = torch.Generator().manual_seed(seed)
    start, end = torch.randn(3, 20, generator=gen) * 3, torch.randn(3, 20, generator=gen) * 3
    context = torch.zeros(3, 20, dtype=torch.bool)
    context[0, 5:18] = True
    context[1, 3:9] = True  # few tokens: fewer valid spans than asked for
    context[2, 7:20] = True
    scores, starts, ends, no_answer = window_spans(start, end, context, max_answer_length=4, top=30)
    for w in range(3):
        spans, null = brute_force(start[w].tolist(), end[w].tolist(), context[w].tolist(), 4)
        best = sorted(spans.items(), key=lambda kv: -kv[1])[:30]
        got = [((s, e), v) for s, e, v in zip(starts[w].tolist(), ends[w].tolist(), scores[w].tolist()) if v > 0]
        assert [k for k, _ in got] == [k for k, _ in best]
        assert [v for _, v in got] == pytest.approx([v for _, v in best], rel=1e-4)
        assert no_answer[w].item() == pytest.approx(null, rel=1e-4)
    assert (scores[1] > 0).sum() == len(brute_force(start[1].tolist(), end[1].tolist(), context[1].tolist(), 4)[0])


def window(context_text, words, start_at, end_at, length=12, cls=0.0, other=-3.0):
    """A window whose context tokens are `words` of `context_text` (tokens 2.. after CLS, q, SEP),
    with start/end logits peaked at tokens start_at/end_at."""
    offsets = [[-1, -1]] * 2
    pos = 0
    for w in words:
        pos = context_text.index(w, pos)
        offsets.append([pos, pos + len(w)])
        pos += len(w)
    offsets += [[-1, -1]] * (length - len(offsets))
    context = [o[0] >= 0 for o in offsets]
    start = torch.full((length,), other)
    end = torch.full((length,), other)
    start[0] = end[0] = cls
    if start_at is not None:
        start[start_at] = 5.0
        end[end_at] = 5.0
    return start, end, offsets, context


def decode(windows, context_text, n_best=3, max_answer_length=30):
    start = torch.stack([w[0] for w in windows])
    end = torch.stack([w[1] for w in windows])
    batch = {"context_mask": torch.tensor([w[3] for w in windows]), "offsets": [w[2] for w in windows],
             "context": [context_text] * len(windows)}
    return decode_batch(start, end, batch, max_answer_length, n_best, align_to_words=False)


def test_best_span_over_windows_and_same_text_merged():
    text = "red fox runs past the blue fox and the red fox"
    # window 1 holds "red fox runs past", window 2 "the blue fox and the red fox"
    w1 = window(text, ["red", "fox", "runs", "past"], 2, 3, other=-2.0)
    w2 = window(text, ["the", "blue", "fox", "and", "the", "red", "fox"], 3, 4, other=-2.0)  # "blue fox"
    decoded = decode([w1, w2], text)
    q = QuestionAnswers()
    for answers, no_answer in decoded:
        q.add_window(answers, no_answer)
    best = q.best(n_best=3)
    assert (best["answer"], best["start"], best["end"]) == ("red fox", 0, 7)  # first occurrence kept
    assert text[best["start"]:best["end"]] == best["answer"]
    # "red fox" scores in window 1 only (window 2's "red fox" is a low-scoring span): sums are per text
    per_window = {a[0]: a[1] for a in decoded[0][0]}
    assert best["score"] >= per_window["red fox"]
    assert [a["answer"] for a in best["n_best"]][:2] == ["red fox", "blue fox"]
    assert best["n_best"] == sorted(best["n_best"], key=lambda a: -a["score"]) and len(best["n_best"]) == 3


def test_max_answer_length_and_start_before_end():
    text = "one two three four five six"
    words = text.split()
    # end peaked before start: no valid span there; too long a span is never taken
    w = window(text, words, 6, 3)
    answers, _ = decode([w], text, n_best=5, max_answer_length=2)[0]
    for answer, score, start, end in answers:
        assert len(text[start:end].split()) <= 2 and score > 0
        assert text[start:end] == answer
    w = window(text, words, 2, 7)  # "one" .. "six": 6 tokens
    best_long = decode([w], text, max_answer_length=6)[0][0][0]
    best_short = decode([w], text, max_answer_length=3)[0][0][0]
    assert best_long[0] == text and best_short[0] != text


def test_no_answer_competes_only_when_asked():
    text = "nothing here answers it"
    confident_null = window(text, text.split(), 2, 2, cls=12.0)
    q = QuestionAnswers()
    for answers, no_answer in decode([confident_null], text):
        q.add_window(answers, no_answer)
    assert q.best(3, unanswerable=True)["answer"] == ""
    assert q.best(3, unanswerable=False)["answer"] == "nothing"
    # the no-answer score is the lowest over the windows: one confident window is enough
    sure = window(text, text.split(), 3, 3, cls=-5.0)
    q.add_window(*decode([sure], text)[0])
    assert q.best(3, unanswerable=True)["answer"] == "here"
    assert QuestionAnswers().best(3) == {"answer": "", "score": 0.0, "start": 0, "end": 0, "n_best": []}


def test_words_are_aligned():
    text = "in the 1990s rivers rose"
    # tokens: "in" "the" "1990" "##s" "rivers" "rose" with word ids 0 1 2 2 3 4
    offsets = [[-1, -1], [0, 2], [3, 6], [7, 11], [11, 12], [13, 19], [20, 24], [-1, -1]]
    word_ids = [-1, 0, 1, 2, 2, 3, 4, -1]
    answers = window_answers(text, offsets, word_ids, [0.9], [3], [3], align_to_words=True)
    assert answers == [("1990s", 0.9, 7, 12)]
    assert window_answers(text, offsets, word_ids, [0.9], [3], [3], align_to_words=False)[0][0] == "1990"


def test_answers_do_not_depend_on_window_order_or_rank():
    """Under DDP one question's windows are scored on several ranks and gathered in rank order."""
    rng = random.Random(0)
    windows = []
    for q in range(20):
        for w in range(rng.randint(1, 4)):
            answers = [(f"ans{q}-{k}", rng.random(), k, k + 3) for k in range(rng.randint(0, 3))]
            windows.append((f"q{q}", answers, rng.random()))
    one = answer_questions(windows, 3, unanswerable=True)
    shuffled = list(windows)
    rng.shuffle(shuffled)
    two_ranks = shuffled[::2] + shuffled[1::2]
    other = answer_questions(two_ranks, 3, unanswerable=True)
    assert other.keys() == one.keys() and len(one) == 20
    for qid in one:
        assert other[qid]["answer"] == one[qid]["answer"]
        assert other[qid]["score"] == pytest.approx(one[qid]["score"])


def test_filler_rows_are_not_decoded():
    text = "one two three"
    real = window(text, text.split(), 3, 3)
    filler = (torch.zeros(12), torch.zeros(12), [[-1, -1]] * 12, [False] * 12)
    start, end = torch.stack([real[0], filler[0]]), torch.stack([real[1], filler[1]])
    batch = {"context_mask": torch.tensor([real[3], filler[3]]), "offsets": [real[2]], "context": [text]}
    decoded = decode_batch(start, end, batch, 30, 3, align_to_words=False)
    assert len(decoded) == 1 and decoded[0][0][0][0] == "two"


def test_span_loss_ignores_filler_rows():
    gen = torch.Generator().manual_seed(0)
    start, end = torch.randn(3, 10, generator=gen), torch.randn(3, 10, generator=gen)
    s, e = torch.tensor([2, 0, 5]), torch.tensor([4, 0, 5])
    real = span_loss(start, end, s, e)
    padded = span_loss(torch.cat([start, torch.randn(2, 10)]), torch.cat([end, torch.randn(2, 10)]),
                       torch.cat([s, torch.tensor([-100, -100])]), torch.cat([e, torch.tensor([-100, -100])]))
    assert padded.item() == pytest.approx(real.item())
    expected = (torch.nn.functional.cross_entropy(start, s) + torch.nn.functional.cross_entropy(end, e)) / 2
    assert real.item() == pytest.approx(expected.item())


def test_span_loss_does_not_depend_on_padding():
    """The same windows padded to 10 or to 16 positions (a bucket length): padding positions
    take no share of the softmax, whatever logits the model gives them."""
    gen = torch.Generator().manual_seed(1)
    start, end = torch.randn(3, 10, generator=gen), torch.randn(3, 10, generator=gen)
    s, e = torch.tensor([2, 0, 5]), torch.tensor([4, 0, 5])
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[2, 8:] = 0
    wider = torch.cat([mask, torch.zeros(3, 6, dtype=torch.long)], dim=1)
    extra = torch.randn(3, 6, generator=gen) * 5
    short = span_loss(start, end, s, e, mask)
    padded = span_loss(torch.cat([start, extra], 1), torch.cat([end, extra], 1), s, e, wider)
    assert padded.item() == pytest.approx(short.item(), abs=1e-6)
    assert span_loss(start, end, s, e).item() != pytest.approx(short.item())  # row 2's padding counted


def tiny_batch():
    return {"input_ids": torch.tensor([[2, 5, 6, 3, 7, 8, 9, 3], [2, 5, 3, 7, 8, 3, 0, 0]]),
            "attention_mask": torch.tensor([[1] * 8, [1] * 6 + [0, 0]]),
            "token_type_ids": torch.tensor([[0] * 4 + [1] * 4, [0] * 3 + [1] * 3 + [0, 0]]),
            "start_positions": torch.tensor([5, 0]), "end_positions": torch.tensor([6, 0])}


def test_tiny_module_trains_and_keeps_decoding_facts(tmp_path):
    cfg = compose_cfg(["model=bert_tiny_qa", "data=extractive_qa", "data.train_file=x.json", "data.max_length=16"],
                      tmp_path / "run")
    from hydra.utils import instantiate

    module = instantiate(cfg.model, vocab_size=40, pad_token_id=0, max_answer_length=7, n_best=2,
                         unanswerable=True, align_to_words=False)
    assert isinstance(module, ExtractiveQAModule)
    hf = module.model.config
    assert type(module.model).__name__ == "BertForQuestionAnswering"
    assert hf.vocab_size == 40 and hf.max_position_embeddings == 16 and hf.initializer_range == 0.1
    assert (module.hparams.max_answer_length, module.hparams.n_best, module.hparams.unanswerable) == (7, 2, True)
    loss = module.training_step(tiny_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss) and module.model.qa_outputs.weight.grad.abs().sum() > 0
    rebuilt = ExtractiveQAModule(**module.hparams)  # how predict.py rebuilds a checkpoint's module
    assert rebuilt.model.config.to_dict() == hf.to_dict()


def test_minilm_span_model_builds_offline(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_cfg(["experiment=squad_extractive", "data.train_file=x.json"], tmp_path / "run")
    tokenizer = instantiate(cfg.tokenizer).build()
    module = instantiate(cfg.model, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         max_answer_length=30, n_best=5, unanswerable=False, align_to_words=True)
    hf = module.model.config
    assert hf.model_type == "bert" and hf.num_hidden_layers == 6 and hf.hidden_size == 384
    assert type(module.model).__name__ == "BertForQuestionAnswering" and module.model.training
    enc = tokenizer(["who?"], ["Ann did."], return_tensors="pt")
    out = module(dict(enc))
    assert out.start_logits.shape == out.end_logits.shape == enc["input_ids"].shape


@pytest.mark.parametrize("config", [
    {"model_type": "distilbert", "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64},
    {"model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
     "intermediate_size": 64, "max_position_embeddings": 40},
], ids=["distilbert", "roberta"])
def test_other_encoders_take_a_span_head(config):
    """Any AutoModelForQuestionAnswering. DistilBERT's forward takes no token_type_ids (the
    module leaves them out); RoBERTa's tokenizer makes none (a single token type)."""
    module = ExtractiveQAModule(backbone={"config": config}, optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
                                scheduler={"name": "linear"}, vocab_size=40, pad_token_id=1,
                                finetune="freeze_embeddings")
    batch = tiny_batch()
    if config["model_type"] == "distilbert":
        assert "token_type_ids" not in module._forward_keys
    else:
        del batch["token_type_ids"]
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
