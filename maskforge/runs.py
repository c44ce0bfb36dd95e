"""The run folder (docs/formats.md): naming, config.json, metrics.csv + curves.png, checkpoints."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import torch

from maskforge.imageio import atomic_write_bytes, atomic_write_text

METRIC_COLUMNS = (
    "epoch",
    "phase",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "images_per_s",
    "train_seconds",
    "epoch_seconds",
    "best",
)


def new_run_dir(runs_root: Path, arch: str) -> Path:
    """runs_root/<YYYYmmdd-HHMMSS>-<arch>, created (with a -2, -3 ... suffix if taken)."""
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"
    for n in range(1, 1000):
        path = Path(runs_root) / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"Cannot create a new run folder under {runs_root}.")


def claim_run_dir(path: Path) -> Path:
    """Create the folder for a new run at path; an existing run there is an error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--run {path} is a file, not a folder.")
    if (path / "config.json").exists() or any(path.glob("*.pt")):
        raise FileExistsError(
            f"{path} already holds a run; continue it with --resume {path} or choose another --run."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_run_config(run_dir: Path) -> dict:
    """The config.json of a run folder (one-line errors when missing or unreadable)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"Cannot resume: {path} not found (is {run_dir} a run folder?).")
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"Cannot resume: {path} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"Cannot resume: {path} does not hold a training config.")
    return config


def write_run_config(run_dir: Path, config: dict) -> None:
    """Write config.json (the resolved settings and data facts of a run)."""
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(config, indent=2) + "\n")


def write_metrics(rows: list[dict], run_dir: Path) -> None:
    """metrics.csv (one row per epoch, METRIC_COLUMNS) and curves.png."""
    from maskforge.curves import plot_curves

    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    atomic_write_text(run_dir / "metrics.csv", frame.to_csv(index=False, float_format="%.6g"))
    plot_curves(frame, run_dir / "curves.png")


def read_metrics(run_dir: Path, epochs_done: int) -> list[dict]:
    """Rows of metrics.csv up to epochs_done (later rows belong to epochs being redone)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return frame[frame["epoch"] <= epochs_done].to_dict("records")


def write_checkpoint(path: Path, checkpoint: dict) -> None:
    """torch.save a checkpoint dict atomically (temporary file + rename)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
