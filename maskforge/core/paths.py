"""Paths as the user would type them, for messages and summaries; names that fit the file
system and CSVs (printable, fit_name)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from maskforge.choices import MAX_NAME_BYTES


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


def printable(text: str) -> str:
    """text as one line of valid UTF-8: a file name that is not UTF-8 (decoded by Python with
    surrogate escapes) gets its undecodable bytes written as \\xNN, and a line break in it as
    \\x0a or \\x0d, so it can go into a CSV row or a one-line message. Other text comes back
    unchanged, so printable(printable(t)) == printable(t)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    if "\n" in text or "\r" in text:
        text = text.replace("\n", "\\x0a").replace("\r", "\\x0d")
    return text


def short_hash(text: str, length: int = 8) -> str:
    """A stable hexadecimal digest of text (the same on every machine and run)."""
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:length]


def fit_name(stem: str, reserve: int = 0, limit: int = MAX_NAME_BYTES) -> str:
    """stem (a file name without extension, no folders) cut so that stem + `reserve` bytes of
    suffixes fit in limit bytes: a long stem keeps its start, then "~" and a short hash of the
    whole stem, so two long names that share a start stay apart. Deterministic; a stem that
    fits comes back unchanged."""
    raw = os.fsencode(stem)
    room = limit - reserve
    if len(raw) <= room:
        return stem
    tag = "~" + short_hash(stem)
    keep = raw[: max(1, room - len(tag))]
    # Cut on a character boundary: drop a partial UTF-8 sequence at the end.
    head = keep.decode("utf-8", "ignore") if _is_utf8(raw) else os.fsdecode(keep)
    return head + tag


def fit_stem(stem: str, reserve: int = 0, limit: int = MAX_NAME_BYTES) -> str:
    """fit_name applied to the last part of a "/"-separated output stem ("sub/photo")."""
    folder, sep, name = stem.rpartition("/")
    return folder + sep + fit_name(name, reserve, limit)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
