"""Paths as the user would type them, for messages, summaries and CSV rows (row_path); names
that fit the file system and CSVs (printable, fit_name); what kind of file a path is, from
os.stat alone (not_regular)."""

from __future__ import annotations

import hashlib
import os
import stat
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


def row_path(path: Path | str, csv_folder: Path | str) -> str:
    """path as a CSV row gives it: relative to csv_folder, with `/`, and never resolved
    through a link, so a row names the file as the user gave it or as it was found under the
    folder they gave (a symlink's own name, not its target). The `..` steps are counted from
    where csv_folder really is, so the row opens the same file from there."""
    target = os.path.abspath(path)  # `.` and `..` folded, links left as they are
    return Path(os.path.relpath(target, os.path.realpath(csv_folder))).as_posix()


def file_kind(mode: int) -> str:
    """What an st_mode is, in words: "a regular file", "a directory", "a FIFO", "a device",
    "a socket" or "a special file"."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def not_regular(path: Path | str) -> str:
    """Why path (links followed) is not a regular file to read, in words, or "" when it is one.

    From os.stat alone: nothing is opened, so a FIFO, a device or a socket with a photo's or a
    video's name is told apart without blocking ("not a regular file (a FIFO)"). A missing file
    or a dangling link gives "file not found", a folder "is a directory".
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "is a directory"
    return f"not a regular file ({file_kind(mode)})"


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
