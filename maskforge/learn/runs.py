"""The run folder (docs/formats.md): naming, config.json, metrics.csv + curves.png, checkpoints."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from maskforge.choices import CHECKPOINTS as CHECKPOINT_CHOICES
from maskforge.core.imageio import atomic_write_bytes, atomic_write_text
from maskforge.core.outputs import output_folder
from maskforge.core.paths import display_path
from maskforge.learn.devices import resolve_device
from maskforge.learn.models import CheckpointInfo, load_checkpoint

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


@contextmanager
def held_run_dir(
    path: Path | None, runs_root: Path, arch: str, resume: bool = False
) -> Iterator[Path]:
    """The run folder, held for the block (core.outputs.output_folder: created, locked before
    anything is written, so a second command on it is refused; its storage faults name it):
    the run to resume, a new run's path (refused when a run is there), or when path is None a
    new folder under runs_root."""
    if path is None:
        path = new_run_dir(runs_root, arch)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--run {path} is a file, not a folder.")
    with output_folder(path, "train"):
        if not resume and ((path / "config.json").exists() or any(path.glob("*.pt"))):
            raise FileExistsError(
                f"{path} already holds a run; continue it with --resume {path} or choose "
                "another --run."
            )
        yield path


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
    from maskforge.learn.curves import plot_curves

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


# Run discovery: which run and checkpoint eval, predict and export use.


def find_run(run: Path | None = None, cwd: Path | None = None) -> tuple[Path, str]:
    """The run folder (or checkpoint file) to use and a phrase saying where it came from.

    run given: that folder or .pt file. Otherwise the run the last `maskforge train` in this
    working folder recorded, else the newest folder in runs/ that holds a checkpoint.
    """
    from maskforge.core.workspace import newest_run, recall

    if run is not None:
        run = Path(run)
        if not run.exists():
            raise FileNotFoundError(f"Run not found: {run} (give a run folder or a .pt file)")
        if run.is_dir() and not any(run.glob("*.pt")):
            raise ValueError(f"{run} holds no checkpoint (*.pt); is it a run folder?")
        return run, "given"
    cwd = Path(cwd or Path.cwd())
    recorded = recall("run", cwd)
    if recorded is not None and recorded.is_dir() and any(recorded.glob("*.pt")):
        return recorded, "from the last train"
    newest = newest_run(cwd / "runs")
    if newest is None:
        raise FileNotFoundError(
            f"No trained run found: {cwd / 'runs'} holds no run folder with a checkpoint. "
            "Train one with `maskforge train` or pass RUN."
        )
    return newest, "newest in runs/"


def run_checkpoint(run: Path, which: str = "best") -> Path:
    """The checkpoint file of a run folder (best.pt or last.pt); a .pt path is returned as is."""
    run = Path(run)
    if run.is_file():
        return run
    if which not in CHECKPOINT_CHOICES:
        raise ValueError(f"Invalid checkpoint {which!r}. Only best, last are supported.")
    path = run / f"{which}.pt"
    if not path.is_file():
        present = ", ".join(sorted(p.name for p in run.glob("*.pt"))) or "none"
        raise FileNotFoundError(f"{path} not found (checkpoints in {run}: {present}).")
    return path


def run_dir_of(run: Path) -> Path:
    """The run folder of a run folder or of a checkpoint file inside one."""
    run = Path(run)
    return run.parent if run.is_file() else run


def run_manifests_dir(run: Path, info: CheckpointInfo | None = None, cwd: Path | None = None):
    """The manifests folder a run was trained from (config.json "manifests"), or None.

    A relative path is tried against the working folder, the folder holding runs/, and the
    run folder; if none exists, the manifests folder of the last `split` is used when present.
    """
    from maskforge.core.workspace import recall

    run_dir = run_dir_of(run)
    cwd = Path(cwd or Path.cwd())
    recorded = None
    config_path = run_dir / "config.json"
    if config_path.is_file():
        try:
            recorded = json.loads(config_path.read_text()).get("manifests")
        except (OSError, ValueError, AttributeError):
            recorded = None
    if recorded is None and info is not None:
        recorded = info.config.get("manifests")
    if recorded:
        path = Path(recorded)
        candidates = (
            [path]
            if path.is_absolute()
            else [cwd / path, run_dir.parent.parent / path, run_dir / path]
        )
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
    fallback = recall("manifests", cwd)
    return fallback if fallback is not None and fallback.is_dir() else None


def load_run_model(
    run: Path | None,
    checkpoint: str = "best",
    device: str = "auto",
    echo: Callable[[str], None] = lambda _: None,
) -> tuple[Path, Path, torch.nn.Module, CheckpointInfo, torch.device]:
    """Find the run, load its checkpoint on the device; prints what it used via echo.

    Returns (run folder, checkpoint path, model in eval mode, info, device).
    """
    found, how = find_run(run)
    ckpt = run_checkpoint(found, checkpoint)
    dev = resolve_device(device)
    model, info = load_checkpoint(ckpt, dev)
    echo(f"Using run {display_path(run_dir_of(found))} ({how})")
    echo(
        f"Using checkpoint {display_path(ckpt)} ({info.arch}, epoch {info.epoch}, classes "
        f"{', '.join(info.classes)}, {info.img_size} px) on {dev}"
    )
    return run_dir_of(found), ckpt, model, info, dev
