"""Paths as the user would type them, for messages and summaries (never for files we write)."""

from __future__ import annotations

from pathlib import Path


def display_path(path: Path | str, folder_slash: bool = False) -> str:
    """path relative to the working folder when inside it, else as given; folder_slash adds a
    trailing / to folders so that a summary tells folders from files."""
    path = Path(path)
    try:
        text = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        text = path.as_posix()
    if text == ".":
        text = "./" if folder_slash else "."
    elif folder_slash and path.is_dir():
        text += "/"
    return text
