"""python -m lit_nlp.onnx <run dir | export dir> [threads=N]: write export/onnx/model.onnx and
model.int8.onnx, then check both against torch on the run's test split (parity.json)."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from lit_nlp.errors import LitNlpError, exit_on_user_error
from lit_nlp.run_layout import ONNX_DIR, ONNX_PARITY, SAVED_CONFIG, SETTINGS_FILE, export_dir


def _paths(arg: str) -> tuple[Path | None, Path]:
    """(run dir or None, export dir) of the argument."""
    path = Path(arg).expanduser()
    if (path / SETTINGS_FILE).is_file():
        run = path.parent if (path.parent / SAVED_CONFIG).is_file() else None
        return run, path
    if (export_dir(path) / SETTINGS_FILE).is_file():
        return path, export_dir(path)
    raise LitNlpError(f"{path} is neither a run dir with an export/ nor an export folder ({SETTINGS_FILE})")


@contextmanager
def _quiet_lightning():
    """Lightning's loggers at WARNING while `main` runs, and as they were afterwards: main also
    runs inside other programs (a notebook, the tests), whose logging it must not change."""
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def main(argv: list[str]) -> dict:
    from hydra.utils import get_class

    from lit_nlp.onnx import check_task, require_onnx
    from lit_nlp.onnx.export import export_onnx, fuse, quantize
    from lit_nlp.onnx.parity import compare, run_datamodule, test_metrics
    from lit_nlp.onnx.runtime import OnnxModel
    from lit_nlp.predict import find_checkpoint, module_from_checkpoint
    from lit_nlp.tasks import TASKS

    # the scoring Trainers' start-up notes (accelerators found, and so on); quieted after the
    # imports above, since importing Lightning sets its loggers to INFO
    with _quiet_lightning():
        if not argv or "=" in argv[0]:
            raise LitNlpError("usage: python -m lit_nlp.onnx <run dir | export dir> [threads=N]")
        options = dict(arg.split("=", 1) for arg in argv[1:] if "=" in arg)
        unknown = set(options) - {"threads"} or [a for a in argv[1:] if "=" not in a]
        if unknown:
            raise LitNlpError(f"unknown arguments {sorted(unknown)}; the only option is threads=N")
        threads = int(options["threads"]) if "threads" in options else None
        require_onnx()
        run_dir, export = _paths(argv[0])
        settings = json.loads((export / SETTINGS_FILE).read_text())
        task = settings.get("task")
        check_task(task)
        folder = export / ONNX_DIR
        model = get_class(TASKS[task].auto_model).from_pretrained(export).eval()
        fp32 = export_onnx(model, task, folder, max_length=settings.get("max_length", 512))
        fuse(fp32, model.config)
        int8 = quantize(fp32)
        print(f"wrote {fp32} and {int8}", file=sys.stderr)
        if run_dir is None:
            print("parity not checked: this export has no run dir around it (its test split is the run's)", file=sys.stderr)
            return {}
        ckpt = find_checkpoint(run_dir)
        if ckpt is None:
            raise LitNlpError(f"{run_dir} holds no checkpoint; parity is checked with the run's LightningModule")
        sessions = {"onnx": OnnxModel(fp32, model.config, threads=threads),
                    "onnx-int8": OnnxModel(int8, model.config, threads=threads)}
        datamodule = run_datamodule(run_dir)
        module, _ = module_from_checkpoint(ckpt)
        module.eval()
        report = {"task": task, "split": "test", "torch": {"metrics": test_metrics(module, datamodule, model)}}
        for name, row in compare(task, model, sessions, datamodule.test_dataloader()).items():
            report[name] = {**row, "metrics": test_metrics(module, datamodule, sessions[name])}
        (folder / ONNX_PARITY).write_text(json.dumps(report, indent=2))
        for name in ("torch", "onnx", "onnx-int8"):
            row = report[name]
            # the task's headline metrics (per-type and per-label ones are in parity.json)
            metrics = "  ".join(f"{k}={v:.4f}" for k, v in row["metrics"].items()
                                if k.count("/") == 1 and not k.endswith("loss"))
            extra = "" if name == "torch" else f"  max |logit diff|={row['max_abs_diff']:.2e}  agreement={row['agreement']:.4f}"
            print(f"{name:10s} {metrics}{extra}")
        print(f"wrote {folder / ONNX_PARITY}", file=sys.stderr)
        return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    exit_on_user_error(main)(sys.argv[1:])
