"""The classifier's runtime for predict: PyTorch, or ONNX Runtime on the run's model exported once.

On CPU, ONNX Runtime classifies the demo's EfficientNet-Lite0 crops with 1.5-3x less CPU time
per crop than PyTorch (27-45 ms against 56-199 ms at batch 1-32, measured side by side on this
2-core machine; README "predict"), so "auto" uses it there when onnxruntime is installed. The
export (a few seconds, more on a busy machine) is cached beside the checkpoint, keyed by its
bytes, and each session is checked against PyTorch before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from maskforge import __version__
from maskforge.choices import PREDICT_RUNTIMES
from maskforge.deploy.export import INPUT_NAME, OUTPUT_NAME, ExportWrapper, export_onnx
from maskforge.learn.models import CheckpointInfo

# An ONNX session whose probabilities differ from PyTorch's by more than this is not used.
MAX_RUNTIME_DIFF = 1e-5
OPSET = 17


class OnnxClassifierModel:
    """An ONNX Runtime session of an exported run: float32 (N, 3, S, S) in 0..1 -> (N, C)."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (one per core)
        # Its threads otherwise spin between runs on the cores predict's detection workers
        # need: 72-86 against 58-67 CPU ms a photo for the whole run, measured side by side.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) float32 of a float32 batch."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def onnx_available() -> bool:
    """True when ONNX Runtime (and onnx, which the exporter needs) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def choose_runtime(runtime: str, device: torch.device) -> str:
    """ "onnx" or "torch" for a --runtime choice: auto is ONNX Runtime on CPU where installed."""
    if runtime not in PREDICT_RUNTIMES:
        raise ValueError(f"Invalid runtime {runtime!r}; use {', '.join(PREDICT_RUNTIMES)}.")
    if runtime == "onnx" and not onnx_available():
        raise ValueError(
            "--runtime onnx needs onnxruntime and onnx: pip install 'maskforge[export]'."
        )
    if runtime == "onnx" and device.type != "cpu":
        raise ValueError("--runtime onnx runs on the CPU: give --device cpu, or --runtime torch.")
    if runtime == "auto":
        return "onnx" if device.type == "cpu" and onnx_available() else "torch"
    return runtime


def _cache_path(ckpt: Path) -> Path:
    digest = hashlib.sha1(f"{__version__} {torch.__version__} {OPSET}".encode())
    with open(ckpt, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return ckpt.parent / "export" / f".predict-{ckpt.stem}-{digest.hexdigest()[:16]}.onnx"


def _export(model: torch.nn.Module, info: CheckpointInfo, path: Path) -> None:
    wrapper = ExportWrapper(model, info.mean, info.std).eval()
    example = torch.rand(2, 3, info.img_size, info.img_size, generator=torch.Generator())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes are export's to print
            export_onnx(wrapper, example, tmp, OPSET)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def onnx_model(
    model: torch.nn.Module, info: CheckpointInfo, ckpt: Path, threads: int = 0
) -> tuple[OnnxClassifierModel, float]:
    """The run's model in ONNX Runtime and its largest difference from PyTorch on two images.

    The export is cached beside the checkpoint with that difference (a first PyTorch forward
    pass costs 1-2 s); where the run folder is read-only it is made in a temporary folder for
    this run only. ValueError when the two differ by more than MAX_RUNTIME_DIFF.
    """
    path = _cache_path(Path(ckpt))
    checked = path.with_name(path.name + ".json")
    with tempfile.TemporaryDirectory() as tmp:
        if not path.is_file():
            try:
                _export(model, info, path)
            except OSError:
                path = checked = Path(tmp) / path.name
                _export(model, info, path)
        runtime = OnnxClassifierModel(path, threads)
        try:
            diff = float(json.loads(checked.read_text(encoding="utf-8"))["max_abs_diff"])
        except (OSError, ValueError, KeyError, TypeError):
            diff = _difference(runtime, model, info)
            with contextlib.suppress(OSError):
                checked.write_text(json.dumps({"max_abs_diff": diff}), encoding="utf-8")
    if not diff <= MAX_RUNTIME_DIFF:
        raise ValueError(f"ONNX Runtime differs from PyTorch by {diff:.1e} on this model")
    return runtime, diff


def _difference(runtime: OnnxClassifierModel, model: torch.nn.Module, info) -> float:
    """Largest difference of the runtime's probabilities from PyTorch's on two made-up images."""
    wrapper = ExportWrapper(model, info.mean, info.std).eval()
    gen = torch.Generator().manual_seed(0)
    check = torch.rand(2, 3, info.img_size, info.img_size, generator=gen)
    with torch.inference_mode():
        reference = wrapper(check).numpy()
    return float(np.abs(runtime(check.numpy()) - reference).max())
