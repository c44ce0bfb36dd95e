"""Remembers what the last command in a working folder wrote, so commands chain with no args."""

from __future__ import annotations

import json
from pathlib import Path

from maskforge.core.imageio import atomic_write_text

STATE_FILE = Path(".maskforge") / "state.json"
DEFAULTS = {"synthesize_out": "out", "manifests": "manifests"}


def load_state(cwd: Path | None = None) -> dict:
    """The state dict of the working folder (empty if none or unreadable)."""
    path = Path(cwd or Path.cwd()) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def remember(key: str, value: Path, cwd: Path | None = None) -> None:
    """Record `key` -> path (stored relative to cwd when inside it) in the state file."""
    cwd = Path(cwd or Path.cwd()).resolve()
    value = Path(value).resolve()
    try:
        stored = value.relative_to(cwd).as_posix()
    except ValueError:
        stored = value.as_posix()
    state = load_state(cwd)
    state[key] = stored
    atomic_write_text(cwd / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def recall(key: str, cwd: Path | None = None) -> Path | None:
    """The path recorded for `key` (or its default), resolved against cwd; None if unknown."""
    cwd = Path(cwd or Path.cwd())
    value = load_state(cwd).get(key, DEFAULTS.get(key))
    return None if value is None else cwd / value


def newest_run(runs_dir: Path) -> Path | None:
    """The most recently modified run folder (one holding a checkpoint) under runs_dir."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and any(p.glob("*.pt"))]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)
