"""ClassificationModule on tiny random-init BERT and DistilBERT: the loss is the plain
transformers loss, the fine-tuning strategies freeze what they say, optimizer groups and
schedules, validation metrics against hand-computed values, labels in the HF config."""

from __future__ import annotations

import math
import sys

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification

from lit_nlp.errors import LitNlpError
from lit_nlp.models.classification import ClassificationModule
from lit_nlp.models.optim import param_groups, warmup_schedule

VOCAB, PAD = 50, 0
BACKBONES = {
    "bert": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 16},
    "distilbert": {"model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64,
                   "max_position_embeddings": 16},
}
# parameter-name prefixes of the parts each strategy freezes
EMBEDDINGS = {"bert": "bert.embeddings.", "distilbert": "distilbert.embeddings."}
LAYER = {"bert": "bert.encoder.layer.{}.", "distilbert": "distilbert.transformer.layer.{}."}
HEAD = {"bert": ("classifier.",), "distilbert": ("pre_classifier.", "classifier.")}


def make_module(kind: str = "bert", labels=("negative", "positive"), **kwargs) -> ClassificationModule:
    torch.manual_seed(0)
    return ClassificationModule(
        backbone={"config": BACKBONES[kind]},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01},
        scheduler={"name": "linear", "warmup_ratio": 0.1},
        label_names=list(labels), vocab_size=VOCAB, pad_token_id=PAD, **kwargs,
    )


def padded_batch(n: int = 6, seed: int = 1, num_labels: int = 2) -> dict:
    """Rows of different lengths padded with PAD, as the data module's collator makes them
    (token_type_ids included: the WordPiece tokenizer emits them, DistilBERT takes none)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [3 + (i * 5) % 10 for i in range(n)]
    longest = max(lengths)
    input_ids = torch.full((n, longest), PAD)
    attention_mask = torch.zeros((n, longest), dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    for i, length in enumerate(lengths):
        input_ids[i, :length] = torch.randint(5, VOCAB, (length,), generator=gen)
        attention_mask[i, :length] = 1
        token_type_ids[i, length // 2:length] = 1  # a second segment, as for text pairs
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "labels": torch.randint(0, num_labels, (n,), generator=gen)}


def trainable(module: ClassificationModule) -> dict[str, bool]:
    return {name: p.requires_grad for name, p in module.model.named_parameters()}


# ----------------------------------------------------------------- loss parity
@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_training_step_loss_is_plain_cross_entropy(kind):
    module = make_module(kind).eval()  # eval: no dropout, so both forwards are deterministic
    plain = AutoModelForSequenceClassification.from_config(module.model.config)
    plain.load_state_dict(module.model.state_dict())
    plain.eval()
    batch = padded_batch()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if kind == "distilbert":
        inputs.pop("token_type_ids")  # DistilBERT's forward takes none; the module must drop them
    seen = {}
    module.model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    with torch.no_grad():
        expected = F.cross_entropy(plain(**inputs).logits, batch["labels"])
        loss = module.training_step(batch, 0)
    # transformers 5's DistilBERT swallows unknown keywords, so check what the module hands over
    assert ("token_type_ids" in seen) == (kind == "bert")
    assert loss.ndim == 0
    torch.testing.assert_close(loss, expected)
    # the padding is really masked: changing the padded positions does not change the loss
    scrambled = dict(batch, input_ids=torch.where(batch["attention_mask"].bool(), batch["input_ids"], 7))
    with torch.no_grad():
        torch.testing.assert_close(module.training_step(scrambled, 0), expected)


# ----------------------------------------------------------------- fine-tuning strategies
def _expected_frozen(kind: str, name: str, strategy: str) -> bool:
    if strategy == "full":
        return False
    if strategy == "head_only":
        return not name.startswith(HEAD[kind])
    frozen = name.startswith(EMBEDDINGS[kind])
    if strategy == "freeze_lower":
        frozen = frozen or name.startswith(LAYER[kind].format(0))
    return frozen


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
@pytest.mark.parametrize("strategy", ["full", "freeze_embeddings", "freeze_lower", "head_only"])
def test_finetune_strategies(kind, strategy):
    module = make_module(kind, finetune=strategy, num_frozen_layers=1 if strategy == "freeze_lower" else 0)
    flags = trainable(module)
    wrong = [n for n, grad in flags.items() if grad == _expected_frozen(kind, n, strategy)]
    assert wrong == [], f"{strategy}: requires_grad is wrong for {wrong}"
    # the parts named in the test exist, so the check above cannot pass vacuously
    assert any(n.startswith(EMBEDDINGS[kind]) for n in flags)
    assert any(n.startswith(LAYER[kind].format(1)) for n in flags)
    assert any(n.startswith(HEAD[kind][-1]) for n in flags)
    if strategy == "freeze_lower":
        assert not any(g for n, g in flags.items() if n.startswith(LAYER[kind].format(0)))
        assert all(g for n, g in flags.items() if n.startswith(LAYER[kind].format(1)))


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_finetune_bad_settings_raise(kind):
    with pytest.raises(LitNlpError, match="finetune"):
        make_module(kind, finetune="freeze_everything")
    for n in (0, 3, -1):  # the tiny models have 2 layers
        with pytest.raises(LitNlpError, match="num_frozen_layers"):
            make_module(kind, finetune="freeze_lower", num_frozen_layers=n)


# ----------------------------------------------------------------- optimizer groups and schedules
def test_param_groups_split_decay_and_skip_frozen():
    module = make_module("bert", finetune="freeze_embeddings")
    named = dict(module.model.named_parameters())
    decay, no_decay = param_groups(module.model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    decay_ids, no_decay_ids = {id(p) for p in decay["params"]}, {id(p) for p in no_decay["params"]}
    assert not decay_ids & no_decay_ids
    for name in ("classifier.bias", "bert.encoder.layer.0.attention.output.LayerNorm.weight",
                 "bert.encoder.layer.1.output.LayerNorm.bias", "bert.encoder.layer.0.attention.self.query.bias"):
        assert id(named[name]) in no_decay_ids, name
    for name in ("classifier.weight", "bert.encoder.layer.0.attention.self.query.weight", "bert.pooler.dense.weight"):
        assert id(named[name]) in decay_ids, name
    # frozen embeddings are in neither group; every trainable parameter is in one
    trainable_ids = {id(p) for p in named.values() if p.requires_grad}
    assert decay_ids | no_decay_ids == trainable_ids
    assert not any(id(p) in trainable_ids for n, p in named.items() if n.startswith("bert.embeddings."))
    assert len(trainable_ids) < len(named)


def lr_curve(name: str, steps: int = 10, **kwargs) -> list[float]:
    """The learning-rate factor before each of `steps` optimizer steps, and after the last."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_schedule(optimizer, steps, name=name, **kwargs)
    curve = []
    for _ in range(steps + 1):
        curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return curve


def test_linear_schedule_warms_up_then_decays_to_zero():
    curve = lr_curve("linear", steps=10, warmup_steps=2)
    assert curve[0] < curve[1] < curve[2] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(curve[2:], curve[3:]))
    assert curve[-1] == pytest.approx(0.0, abs=1e-9)
    # warmup_ratio 0.2 of 10 steps = the same 2 warm-up steps
    assert lr_curve("linear", steps=10, warmup_ratio=0.2) == pytest.approx(curve)


def test_cosine_and_constant_schedules():
    cosine = lr_curve("cosine", steps=10, warmup_steps=2)
    linear = lr_curve("linear", steps=10, warmup_steps=2)
    assert cosine[:3] == pytest.approx(linear[:3])  # the same warm-up
    assert all(a > b for a, b in zip(cosine[2:], cosine[3:]))
    assert cosine[6] == pytest.approx(0.5)  # half-way through the 8 decay steps: cos(pi/2)
    assert cosine[4] > linear[4] and cosine[8] < linear[8]  # above linear early, below late
    assert cosine[-1] == pytest.approx(0.0, abs=1e-9)
    assert cosine[3] == pytest.approx(0.5 * (1 + math.cos(math.pi / 8)))
    constant = lr_curve("constant", steps=10, warmup_steps=2)
    assert constant[0] < constant[1] < 1.0
    assert constant[2:] == pytest.approx([1.0] * 9)
    assert lr_curve("constant", steps=10) == pytest.approx([1.0] * 11)


def test_unknown_schedule_raises():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(LitNlpError, match="scheduler"):
        warmup_schedule(optimizer, 10, name="exponential")


# ----------------------------------------------------------------- metrics
def test_validation_metrics_match_hand_computed(tmp_path):
    labels = ["negative", "neutral", "positive"]
    module = make_module("bert", labels=labels).eval()
    batches = [padded_batch(10, seed=2, num_labels=3), padded_batch(6, seed=3, num_labels=3)]
    with torch.no_grad():
        preds = [module(b).argmax(-1) for b in batches]
    # labels chosen against the model's own predictions: right on 9 of 10 rows of the first
    # batch, on 2 of 6 of the second, so the epoch accuracy (11/16) is not the mean of the
    # batch accuracies (0.9 and 1/3); the wrong labels are pred+1 or pred+2, so all 3 classes occur
    batches[0]["labels"] = preds[0].clone()
    batches[0]["labels"][0] = (preds[0][0] + 1) % 3
    batches[1]["labels"] = (preds[1] + torch.tensor([0, 0, 1, 2, 1, 2])) % 3
    y_pred, y_true = torch.cat(preds), torch.cat([b["labels"] for b in batches])
    assert set(y_true.tolist()) == {0, 1, 2}
    acc = (y_pred == y_true).float().mean().item()
    assert acc == pytest.approx(11 / 16)
    f1 = []
    for c in range(3):
        tp = ((y_pred == c) & (y_true == c)).sum().item()
        fp = ((y_pred == c) & (y_true != c)).sum().item()
        fn = ((y_pred != c) & (y_true == c)).sum().item()
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    confusion = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        confusion[t, p] += 1
    with torch.no_grad():
        loss = sum(F.cross_entropy(module(b), b["labels"], reduction="sum") for b in batches) / 16

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    loader = DataLoader(batches, batch_size=None)  # the two prepared batches, as they are
    results = trainer.validate(module, dataloaders=loader, verbose=False)[0]
    assert results["val/acc"] == pytest.approx(acc, abs=1e-6)
    assert results["val/f1_macro"] == pytest.approx(sum(f1) / 3, abs=1e-6)
    for name, value in zip(labels, f1):
        assert results[f"val/f1/{name}"] == pytest.approx(value, abs=1e-6)
    assert results["val/loss"] == pytest.approx(loss.item(), rel=1e-5)  # weighted by batch size
    assert torch.equal(module.confusion_matrix["val"], confusion)
    # a second epoch starts from reset metrics, not from the counts of the first
    again = trainer.validate(module, dataloaders=loader, verbose=False)[0]
    assert again["val/acc"] == pytest.approx(acc, abs=1e-6)
    assert torch.equal(module.confusion_matrix["val"], confusion)


# ----------------------------------------------------------------- labels in the HF config
@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_labels_land_in_hf_config(kind):
    labels = ["negative", "neutral", "positive"]
    module = make_module(kind, labels=labels)
    config = module.model.config
    assert config.num_labels == 3
    assert config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    assert module.model.classifier.out_features == 3
    assert config.vocab_size == VOCAB and config.pad_token_id == PAD
    assert module.label_names == labels
    # the config saved in hparams rebuilds the same labelled architecture (predict's path)
    rebuilt = ClassificationModule(backbone={}, optimizer={}, scheduler={}, label_names=labels,
                                   hf_config=module.hparams.hf_config)
    assert rebuilt.model.config.id2label == config.id2label
    assert rebuilt.model.config.label2id == config.label2id
    assert {k: v.shape for k, v in rebuilt.model.state_dict().items()} == \
           {k: v.shape for k, v in module.model.state_dict().items()}



# every way a tensor becomes a Python value (or host memory): on a GPU each waits for the queued
# kernels. float(t), int(t), bool(t) (an `if t:`) and t[...] indexing with a tensor go through the
# dunders, not through .item(); np.asarray(t) goes through .numpy()
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def test_no_host_sync_between_logging_steps(monkeypatch, tmp_path):
    """On a GPU, reading a tensor on the host (`.item()`, `float()`, `int()`, `if t:`,
    `.tolist()`, `.cpu()`, `.numpy()`) blocks until the queued kernels finish. Counted here on
    the CPU, with the progress bar and the per-step callbacks of conf/callbacks/default.yaml: 20
    steps at log_every_n_steps=10 read tensors only at set-up, after the first step (the bar's
    first draw), around the 2 logging steps (Lightning's logger flush and the bar's metric read)
    and at the end (NaNGuard's last check, the model moved back to the CPU), never in the steps
    between."""
    from lightning.pytorch.loggers import CSVLogger

    from lit_nlp.callbacks import NaNGuard, ProgressBar, Throughput

    module = make_module("bert")
    reads, transformers_masks = [], []

    def counted(name, real):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if module._trainer is None or "torch/optim/" in caller:
                pass  # before fit; AdamW's step counters are CPU tensors even for CUDA parameters
            elif caller.endswith("transformers/masking_utils.py") and name == "__bool__":
                # transformers' eager attention: `padding_mask.all()` decides whether SDPA may skip
                # the mask, one sync per forward on a GPU; traced away under model.compile
                transformers_masks.append(module.trainer.global_step)
            else:
                reads.append((module.trainer.global_step, name, caller.rsplit("/", 2)[-2:]))
            return real(self, *args, **kwargs)
        return read

    trainer = L.Trainer(max_steps=20, log_every_n_steps=10, logger=CSVLogger(tmp_path), accelerator="cpu",
                        callbacks=[Throughput(), NaNGuard(check_every_n_steps=50),
                                   ProgressBar(monitor="val/acc", metrics_every_n_steps=10)],
                        enable_checkpointing=False, enable_model_summary=False)
    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    trainer.fit(module, train_dataloaders=DataLoader([padded_batch(seed=i) for i in range(20)], batch_size=None))
    monkeypatch.undo()
    assert {step for step, _, _ in reads} <= {0, 1, 9, 10, 19, 20}, sorted(reads)
    assert {step for step, name, _ in reads if name in ("item", "__float__")} >= {10, 20}  # the counting works
    assert len(transformers_masks) <= 20  # that exemption covers one call per forward, no more


# ----------------------------------------------------------------- class weights
def test_balanced_class_weights_are_inverse_frequency_and_weight_the_loss():
    module = make_module("bert", labels=("a", "b", "c"), class_weights="balanced", label_counts=[600, 300, 100],
                         train_rows=1000).eval()
    # n / (k x n_c): 1000 / (3 x 600), 1000 / (3 x 300), 1000 / (3 x 100)
    torch.testing.assert_close(module.class_weights, torch.tensor([1000 / 1800, 1000 / 900, 1000 / 300]))
    assert module.hparams.class_weights == pytest.approx(module.class_weights.tolist())  # saved with the model
    batch = padded_batch(num_labels=3)
    with torch.no_grad():
        expected = F.cross_entropy(module(batch), batch["labels"], weight=module.class_weights)
        torch.testing.assert_close(module.training_step(batch, 0), expected)
    unweighted = F.cross_entropy(module(batch), batch["labels"])
    assert not torch.isclose(expected, unweighted)
    assert module.export_settings()["class_weights"] == module.hparams.class_weights


def test_explicit_class_weights_list_or_mapping_and_their_errors():
    module = make_module("bert", class_weights=[1.0, 4.0])
    assert module.class_weights.tolist() == [1.0, 4.0]
    module = make_module("bert", class_weights={"positive": 3})
    assert module.class_weights.tolist() == [1.0, 3.0]
    # the saved list rebuilds the same module without the data's counts (predict's path)
    rebuilt = ClassificationModule(**module.hparams)
    assert rebuilt.class_weights.tolist() == [1.0, 3.0]
    for bad, match in [([1.0], "2 labels"), ({"neutral": 2}, "neutral"), ([1, -1], "positive"),
                       ("inverse", "balanced"), ("balanced", "counts")]:
        with pytest.raises(LitNlpError, match=match):
            make_module("bert", class_weights=bad)


# ----------------------------------------------------------------- filler rows (fixed-shape batches)
def with_filler(batch: dict, rows: int, multi_label: bool = False) -> dict:
    """`batch` plus `rows` rows of random tokens whose labels are all -100, as the collator's
    filler rows for fixed-shape batches carry."""
    filler = padded_batch(rows, seed=99)
    labels = torch.full((rows, batch["labels"].shape[1]) if multi_label else (rows,), -100)
    out = {}
    for key in batch:
        extra = labels if key == "labels" else filler[key]
        width = max(batch[key].shape[-1], extra.shape[-1]) if key != "labels" else None
        if width:
            pad = lambda t: F.pad(t, (0, width - t.shape[-1]), value=PAD if key == "input_ids" else 0)  # noqa: E731
            out[key] = torch.cat([pad(batch[key]), pad(extra)])
        else:
            out[key] = torch.cat([batch[key], extra])
    return out


def run_validation(module, batches, tmp_path) -> dict:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    return trainer.validate(module, dataloaders=DataLoader(batches, batch_size=None), verbose=False)[0]


@pytest.mark.parametrize("multi_label", [False, True])
def test_filler_rows_change_neither_loss_nor_metrics(tmp_path, multi_label):
    module = make_module("bert", labels=("a", "b", "c"), multi_label=multi_label, class_weights=[1.0, 2.0, 0.5]).eval()
    batches = [multilabel_batch(8, seed=4) if multi_label else padded_batch(8, seed=4, num_labels=3),
               multilabel_batch(5, seed=5) if multi_label else padded_batch(5, seed=5, num_labels=3)]
    filled = [with_filler(batches[0], 3, multi_label), with_filler(batches[1], 6, multi_label)]
    assert filled[0]["labels"].shape[0] == 11 and filled[1]["input_ids"].shape[0] == 11  # same-size batches
    with torch.no_grad():
        for plain, padded in zip(batches, filled):
            torch.testing.assert_close(module.training_step(padded, 0), module.training_step(plain, 0))
    plain_metrics = run_validation(module, batches, tmp_path)
    filled_metrics = run_validation(module, filled, tmp_path)
    # val/loss is a mean over batches weighted by their row count, filler rows included in
    # that count, so it is compared through the per-batch losses above; every metric here:
    for key in (k for k in plain_metrics if k != "val/loss"):
        assert filled_metrics[key] == pytest.approx(plain_metrics[key], abs=1e-6), key
    assert ("val/f1_micro" in plain_metrics) == multi_label and ("val/acc" in plain_metrics) != multi_label


# ----------------------------------------------------------------- multi-label
def multilabel_batch(n: int = 6, seed: int = 1, num_labels: int = 3) -> dict:
    batch = padded_batch(n, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    batch["labels"] = torch.randint(0, 2, (n, num_labels), generator=gen)
    return batch


def test_multilabel_module_is_sigmoid_and_bce_and_tells_the_hf_config():
    module = make_module("bert", labels=("a", "b", "c"), multi_label=True, class_weights=[1.0, 3.0, 1.0]).eval()
    assert module.model.config.problem_type == "multi_label_classification"
    assert make_module("bert").model.config.problem_type == "single_label_classification"
    batch = multilabel_batch()
    with torch.no_grad():
        logits = module(batch)
        expected = F.binary_cross_entropy_with_logits(logits, batch["labels"].float(),
                                                      pos_weight=torch.tensor([1.0, 3.0, 1.0]))
        torch.testing.assert_close(module.training_step(batch, 0), expected)
        torch.testing.assert_close(module.predict_step(batch, 0), logits.sigmoid())


def test_multilabel_balanced_weights_are_negatives_over_positives():
    module = make_module("bert", labels=("a", "b"), multi_label=True, class_weights="balanced",
                         label_counts=[50, 200], train_rows=1000)
    assert module.class_weights.tolist() == [950 / 50, 800 / 200]


def test_multilabel_metrics_and_threshold_tuning(tmp_path):
    module = make_module("bert", labels=("a", "b", "c"), multi_label=True, tune_threshold=True).eval()
    batches = [multilabel_batch(10, seed=6), multilabel_batch(7, seed=7)]
    with torch.no_grad():
        probs = torch.cat([module(b).sigmoid() for b in batches])
    labels = torch.cat([b["labels"] for b in batches])

    def f1s(t: float) -> tuple[float, list[float]]:
        """micro F1 and per-label F1 by hand at threshold t"""
        pred = (probs >= t).long()
        tp, fp, fn = ((pred == 1) & (labels == 1)), ((pred == 1) & (labels == 0)), ((pred == 0) & (labels == 1))
        micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
        per = [(2 * tp[:, j].sum() / (2 * tp[:, j].sum() + fp[:, j].sum() + fn[:, j].sum())).item() for j in range(3)]
        return micro.item(), per

    from lit_nlp.models.classification import THRESHOLD_GRID

    best = max(THRESHOLD_GRID, key=lambda t: (f1s(t)[0], -t))
    results = run_validation(module, batches, tmp_path)
    assert results["val/threshold"] == pytest.approx(best)
    assert float(module.threshold) == pytest.approx(best)
    micro, per = f1s(best)
    assert results["val/f1_micro"] == pytest.approx(micro, abs=1e-6)
    assert results["val/f1_macro"] == pytest.approx(sum(per) / 3, abs=1e-6)
    for name, value in zip("abc", per):
        assert results[f"val/f1/{name}"] == pytest.approx(value, abs=1e-6)
    exact = ((probs >= best).long() == labels).all(dim=1).float().mean().item()
    assert results["val/exact_match"] == pytest.approx(exact, abs=1e-6)
    # the tuned threshold is in the checkpoint's state and in the export's settings
    assert module.state_dict()["threshold"] == pytest.approx(best)
    assert module.export_settings()["threshold"] == pytest.approx(best)
    # without tuning the configured threshold stays
    fixed = make_module("bert", labels=("a", "b", "c"), multi_label=True, threshold=0.3).eval()
    assert run_validation(fixed, batches, tmp_path)["val/threshold"] == pytest.approx(0.3)
    with pytest.raises(LitNlpError, match="threshold"):
        make_module("bert", multi_label=True, threshold=1.5)
