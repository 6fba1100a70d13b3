"""model.finetune=lora (lit_nlp/models/lora.py) on a tiny "pretrained" base: a random-init BERT
saved with save_pretrained beside a WordPiece tokenizer, as a hub encoder ships (no task head).
Checkpoints hold the adapters, the head and their optimizer state, not the frozen base, and
name the base by path and hash; a crashed and resumed run equals the uninterrupted one; the
merged export gives the unmerged model's outputs, and so does peft's adapter folder on the base;
predict from the run dir, a .ckpt and the export agree; 2 DDP processes train; bad settings
stop with one line; every task builds, takes a step and reloads from its adapter-only state."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    T5Config,
    T5ForConditionalGeneration,
)

from conftest import (COMPARABLE_RUN, CONF_DIR, ROOT, Crash, assert_same_run, compose_cfg, compose_resume, crash_at,
                      metrics_of, one_line, pretrained_tiny_bert, save_bert_base, scalars, synthetic_rows,
                      write_table)
from lit_nlp.config_checks import check_config
from lit_nlp.errors import LitNlpError
from lit_nlp.models.classification import ClassificationModule
from lit_nlp.models.extractive_qa import ExtractiveQAModule
from lit_nlp.models.lora import SETTINGS
from lit_nlp.models.seq2seq import Seq2SeqModule
from lit_nlp.models.token_classification import TokenClassificationModule
from lit_nlp.predict import find_checkpoint, load_predictor
from lit_nlp.tracking import hparams
from lit_nlp.train import train
from models.test_classification_module import make_module

TEXTS = ["the film was superb", "a tedious and clumsy plot with the cast", "music scenes quite moving and charming"]


def adapter_or_head(key: str) -> bool:
    """A state-dict key of what LoRA trains: an adapter matrix or the trained copy of the head."""
    return ".lora_" in key or ".modules_to_save." in key


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 240 training rows = 15 steps of 16 per epoch; 30 validation and 30 test rows
    return write_table(synthetic_rows(300, seed=2), tmp_path_factory.mktemp("lora_data") / "train.csv")


@pytest.fixture(scope="module")
def base(tmp_path_factory, data) -> Path:
    """The "pretrained" BERT encoder and its tokenizer, in one folder."""
    return pretrained_tiny_bert(tmp_path_factory.mktemp("bert_base"), [r["text"] for r in synthetic_rows(300, seed=2)])


def lora_overrides(data: Path, base: Path) -> list[str]:
    # model=minilm's config (tokenizer=pretrained) on the tiny base; lr 1e-2: the adapters and
    # head of a random base need more than a pretrained one's 1e-4..1e-3 to move in 45 steps
    return ["model=minilm", f"model.backbone.pretrained={base}", "model.finetune=lora", "data=csv",
            f"data.train_file={data}", "data.batch_size=16", "data.max_length=32", "model.optimizer.lr=1e-2"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, data, base) -> tuple[list[str], Path, Path]:
    """One 3-epoch LoRA run, shared by the tests that only read it: (overrides, run dir, cache)."""
    tmp = tmp_path_factory.mktemp("lora_run")
    common = [*lora_overrides(data, base), *COMPARABLE_RUN, "trainer.max_epochs=3"]
    train(compose_cfg(common, tmp / "straight", cache_dir=tmp / "cache"))
    return common, tmp / "straight", tmp / "cache"


# ---------------------------------------------------------------- checkpoints
def test_checkpoints_hold_the_adapters_the_head_and_the_base_name(lora_run, base):
    _, run, _ = lora_run
    for path in (run / "checkpoints" / "last.ckpt", find_checkpoint(run)):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        keys = sorted(ckpt["state_dict"])
        assert keys and all(adapter_or_head(k) for k in keys), [k for k in keys if not adapter_or_head(k)]
        assert any(".lora_B." in k for k in keys) and "model.classifier.modules_to_save.default.weight" in keys
        # Adam's two moments for exactly the tensors that train
        assert len(ckpt["optimizer_states"][0]["state"]) == len(keys)
        assert ckpt["lora"]["base"] == str(base) and not ckpt["lora"]["base_saved"]
        assert len(ckpt["lora"]["base_sha256"]) == 64


def test_last_checkpoint_weighs_a_fraction_of_the_base(lora_run, base):
    """A full run's checkpoint holds the weights and two Adam moments, at least 3x the base's
    weights file; this one (8k trained parameters with their moments, and the tokenizer files:
    about 130 kB) is under a quarter of the weights file, under 1/12 of a full checkpoint."""
    last, base_weights = lora_run[1] / "checkpoints" / "last.ckpt", base / "model.safetensors"
    assert last.stat().st_size < 0.25 * base_weights.stat().st_size, (last.stat().st_size, base_weights.stat().st_size)


def test_resume_after_a_crash_equals_the_uninterrupted_run(lora_run, tmp_path, monkeypatch):
    """As tests/test_resume.py checks full fine-tuning: crashed as epoch 2 starts, resumed from
    the end-of-epoch-1 last.ckpt (adapters only, the base rebuilt and checked by its hash)."""
    common, straight, cache = lora_run
    values = scalars(straight, "val/acc")
    assert max(values.values()) > values[min(values)], f"val/acc never improved after epoch 1: {values}"
    run = tmp_path / "crashed"
    crash_at(monkeypatch, epoch=1, batch=0)
    with pytest.raises(Crash):
        train(compose_cfg(common, run, cache_dir=cache))
    monkeypatch.undo()
    train(compose_resume(run, []))
    assert_same_run(straight, run, "val/acc", restart_step=metrics_of(straight)["global_step"] // 3)


def test_a_checkpoint_refuses_another_base(lora_run, tmp_path):
    _, run, _ = lora_run
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    other = save_bert_base(tmp_path / "other_base", ckpt["hyper_parameters"]["hf_config"]["vocab_size"], seed=1)
    ckpt["hyper_parameters"]["backbone"]["pretrained"] = str(other)
    torch.save(ckpt, tmp_path / "moved.ckpt")
    with pytest.raises(LitNlpError) as err:
        load_predictor(tmp_path / "moved.ckpt", device="cpu")
    assert f"trained on base model {ckpt['lora']['base']}" in one_line(err)


# ---------------------------------------------------------------- export and predict
def test_merged_export_and_peft_adapter_give_the_unmerged_outputs(lora_run, base):
    from peft import PeftModel

    _, run, _ = lora_run
    export = run / "export"
    ckpt = torch.load(find_checkpoint(run), map_location="cpu", weights_only=True)  # what the export holds
    module = ClassificationModule(**ckpt["hyper_parameters"])
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"])
    batch = dict(AutoTokenizer.from_pretrained(export)(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        unmerged = module.model.eval()(**batch).logits
        with module.lora.peft_model.disable_adapter():
            without_adapters = module.model(**batch).logits
        merged_model = AutoModelForSequenceClassification.from_pretrained(export).eval()
        merged = merged_model(**batch).logits
        base_model = AutoModelForSequenceClassification.from_pretrained(base, config=AutoConfig.from_pretrained(export))
        adapted = PeftModel.from_pretrained(base_model, export / "adapter").eval()(**batch).logits
    assert not any(adapter_or_head(k) or "original_module" in k for k in merged_model.state_dict())
    # the adapters changed the outputs, so agreeing below says they were merged in
    assert (unmerged - without_adapters).abs().max() > 1e-3
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)
    torch.testing.assert_close(adapted, unmerged, atol=1e-5, rtol=0)


def test_predict_from_run_dir_checkpoint_and_export_agree(lora_run):
    from transformers import pipeline

    _, run, _ = lora_run
    rows = [{"text": t} for t in TEXTS]
    by_source = {str(path): load_predictor(path, device="cpu").predict_rows(rows, batch_size=8)
                 for path in (run, find_checkpoint(run), run / "export")}
    [first, *others] = by_source.values()
    for other in others:
        assert [r["label"] for r in other] == [r["label"] for r in first]
        for a, b in zip(first, other):
            assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)
    # the plain folder in transformers' own pipeline (texts already clean: lowercase, no markup)
    piped = pipeline("text-classification", model=str(run / "export"), top_k=None, device="cpu")(TEXTS)
    for scores, row in zip(piped, first):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(row["probabilities"], abs=1e-5)


# ---------------------------------------------------------------- DDP
def test_ddp_over_two_processes_trains_the_adapters(tmp_path, data, base):
    """train.py with trainer=ddp_cpu (2 processes of batch 8 = the global batch 16) and
    bf16-mixed: one run dir, adapter-only checkpoints, an export with its adapter folder."""
    run = tmp_path / "ddp"
    args = [*lora_overrides(data, base), "data.batch_size=8", "trainer=ddp_cpu", "trainer.devices=2",
            "trainer.max_epochs=1", "trainer.precision=bf16-mixed", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert metrics_of(run)["global_step"] == 240 // 16
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(adapter_or_head(k) for k in ckpt["state_dict"])
    assert (run / "export" / "adapter" / "adapter_config.json").is_file()


# ---------------------------------------------------------------- settings
def test_every_model_and_experiment_config_has_model_lora(tmp_path):
    """conf/model/lora/default.yaml is composed as model.lora whichever model or experiment is
    chosen, and its keys are overridable (an experiment's or a sweep's `model.lora.r=4`)."""
    for group in ("model", "experiment"):
        for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
            overrides = [f"{group}={option}", "model.finetune=lora", "model.lora.r=4"]
            if group == "model" and "t5" in option:  # their configs read the seq2seq data keys
                overrides.append("data=seq2seq_jsonl")
            cfg = compose_cfg(overrides, tmp_path / "run")
            assert OmegaConf.to_container(cfg.model.lora, resolve=True) == {**SETTINGS, "r": 4}, f"{group}={option}"
    # the loggers list them as hyperparameters of a LoRA run (a sweep over model.lora.alpha shows it)
    assert {"model.lora.r": 4, "model.lora.alpha": 16}.items() <= hparams(cfg).items()


def test_bad_settings_stop_with_one_line(tmp_path, data, base):
    cfg = compose_cfg([*lora_overrides(data, base), "model.lora.r=0", "model.lora.alpha=-1"], tmp_path / "run")
    with pytest.raises(LitNlpError) as err:
        check_config(cfg)
    message = one_line(err)
    assert "model.lora.r must be a whole number >= 1" in message and "model.lora.alpha must be a number > 0" in message
    cfg = compose_cfg([*lora_overrides(data, base), "trainer=fsdp"], tmp_path / "run")
    with pytest.raises(LitNlpError) as err:
        check_config(cfg)
    assert "FSDP and DeepSpeed are not supported" in one_line(err)

    with pytest.raises(LitNlpError) as err:
        build("classification", base, lora={"target_modules": ["querry", "value"]})
    message = one_line(err)
    assert "names ['querry']" in message and "named dense, key, query, value" in message
    with pytest.raises(LitNlpError) as err:
        build("classification", base, lora={"target_modules": r".*\.nothing"})
    assert "matches no module" in one_line(err)


def test_a_random_init_base_warns_and_stays_in_the_checkpoint(caplog):
    with caplog.at_level(logging.WARNING, logger="lit_nlp.models.lora"):
        module = make_module("bert", finetune="lora")
    assert "random-init model" in caplog.text and "every checkpoint saves its weights" in caplog.text
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["state_dict"].keys() == module.state_dict().keys() and checkpoint["lora"]["base_saved"]


# ---------------------------------------------------------------- every task
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-3}
SCHEDULER = {"name": "constant"}


@pytest.fixture(scope="module")
def t5_base(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("t5_base")
    T5ForConditionalGeneration(T5Config(vocab_size=60, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                                        decoder_start_token_id=0)).save_pretrained(folder)
    return folder


def build(task: str, base: Path, **kwargs):
    common = dict(backbone={"pretrained": str(base)}, optimizer=OPTIMIZER, scheduler=SCHEDULER, finetune="lora",
                  gradient_checkpointing=True, **kwargs)
    if task == "classification":
        return ClassificationModule(label_names=["negative", "positive"], class_weights=[1.0, 2.0], **common)
    if task == "seq2seq":
        return Seq2SeqModule(generation={"max_new_tokens": 4}, pad_token_id=0, eos_token_id=1, **common)
    if task == "extractive_qa":
        return ExtractiveQAModule(**common)
    return TokenClassificationModule(label_names=["O", "B-X", "I-X"], **common)


def batch_for(task: str, vocab: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (4, 10), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if task == "classification":
        batch["labels"] = torch.tensor([0, 1, 1, 0])
    elif task == "seq2seq":
        batch["labels"] = torch.randint(5, vocab, (4, 3), generator=gen)
    elif task == "extractive_qa":
        batch.update(start_positions=torch.tensor([1, 2, 3, 4]), end_positions=torch.tensor([2, 2, 5, 6]))
    else:
        batch["labels"] = torch.randint(0, 3, (4, 10), generator=gen)
    return batch


# per task: its head (trained in full) and some of peft's options passed through
TASK_CASES = {
    "classification": (["classifier"], {}),
    "seq2seq": ([], {"use_rslora": True}),  # T5's LM head is its tied, pretrained vocabulary projection
    "extractive_qa": (["qa_outputs"], {"use_dora": True}),
    "token_classification": (["classifier"], {"target_modules": "all-linear", "r": 4}),
}


@pytest.mark.parametrize("task", list(TASK_CASES))
def test_every_task_trains_its_adapters_and_head_and_reloads_them(task, base, t5_base):
    """One bf16 autocast step with gradient checkpointing: only adapters and head move; then
    the adapter-only checkpoint state loads strictly into a module built again."""
    heads, lora = TASK_CASES[task]
    folder = t5_base if task == "seq2seq" else base
    module = build(task, folder, lora=lora)
    assert module.lora.heads == heads
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(adapter_or_head(n) or ".lora_magnitude_vector." in n for n in trainable)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.training_step(batch_for(task, module.model.config.vocab_size), 0)
    loss.backward()
    optimizer.step()
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable and any(".lora_B." in n for n in changed)
    assert all(any(n.startswith(f"model.{h}.modules_to_save.") for n in changed) for h in heads)

    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == trainable
    again = build(task, folder, lora=lora)
    again.on_load_checkpoint(checkpoint)
    again.load_state_dict(checkpoint["state_dict"])  # strict: every other key comes from the base
    mine, theirs = module.state_dict(), again.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if ".original_module." not in k)
