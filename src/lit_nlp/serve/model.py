"""What the server says about its model (GET /info, the version headers, lit_nlp_model_info):
the task, labels and lengths from the predictor's saved settings, and a version that names the
run, a hash of the weights that answer, and lit_nlp's version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lit_nlp
from lit_nlp.predict import find_checkpoint, onnx_file
from lit_nlp.run_layout import CHECKPOINT_DIR, EXPORT_DIR, SETTINGS_FILE, export_dir

HASH_CHARS = 12  # of the sha256: a short id that still tells weights apart


def source_of(model_path: str | Path) -> Path:
    """The export folder or .ckpt that load_predictor reads for `model_path` (run dir: its
    export, else its best checkpoint), for naming and hashing."""
    path = Path(model_path).expanduser()
    if path.is_file() or (path / SETTINGS_FILE).is_file():
        return path
    if (export_dir(path) / SETTINGS_FILE).is_file():
        return export_dir(path)
    return find_checkpoint(path) or path


def weight_files(source: Path, backend: str) -> list[Path]:
    """The files whose bytes make the answers: a .ckpt; the ONNX file (and its external
    weights) for an ONNX backend; the export's safetensors/bin files (a LoRA adapter's too)."""
    if source.is_file():
        return [source]
    if backend != "torch":
        graph = onnx_file(source, backend)
        return [p for p in (graph, graph.with_name(graph.name + ".data")) if p.is_file()]
    return sorted(p for p in source.rglob("*") if p.suffix in (".safetensors", ".bin")
                  and "onnx" not in p.relative_to(source).parts)


def weights_hash(files: list[Path]) -> str:
    """sha256 over the files' names and bytes, in order, shortened to HASH_CHARS."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:HASH_CHARS]


def run_name(source: Path) -> str:
    """The run dir's name (outputs/runs/<date>_<time>) of an export or checkpoint inside one,
    else the export folder's name (a .ckpt's: the folder that holds it)."""
    if source.is_file():
        return source.parent.parent.name if source.parent.name == CHECKPOINT_DIR else source.parent.name
    return source.parent.name if source.name == EXPORT_DIR else source.name


def model_version(model_path: str | Path, backend: str) -> dict:
    """run, file (what was loaded, relative to the run), weights_sha256, lit_nlp and `id`
    (run@hash: what the X-Model-Version header carries)."""
    source = source_of(model_path)
    files = weight_files(source, backend)
    run = run_name(source)
    digest = weights_hash(files)
    return {"id": f"{run}@{digest}", "run": run, "source": str(source), "weights_sha256": digest,
            "weight_files": [p.name for p in files], "lit_nlp": lit_nlp.__version__}


def describe(predictor, backend: str, version: dict, inputs) -> dict:
    """GET /info's model part: task, labels, model architecture and size, backend, the saved
    lengths, the request fields with an example, and the version."""
    settings = predictor.settings
    config = getattr(getattr(predictor, "model", None), "config", None)
    params = sum(p.numel() for p in predictor.model.parameters()) if hasattr(predictor, "model") else 0
    labels = settings.get("label_names") or getattr(predictor, "label_names", None)
    return {
        "task": settings["task"],
        **({"multi_label": settings["multi_label"]} if "multi_label" in settings else {}),
        "labels": list(labels) if labels else None,
        "model": {"architecture": (getattr(config, "architectures", None) or [None])[0],
                  "type": getattr(config, "model_type", None), "parameters": params or None},
        "backend": backend,
        "lengths": {k: v for k, v in settings.items() if isinstance(v, int) and not isinstance(v, bool)
                    and ("length" in k or "stride" in k) and k != "length_buckets"},
        "inputs": {"fields": inputs.fields, "example": inputs.example()},
        "lit_nlp_version": lit_nlp.__version__,
        "model_version": version,
    }
