"""Reading the CSVs the wings exchange: every cell a string, one-line errors for bad files."""

from __future__ import annotations

import csv
import io
import os
import stat
import warnings
from pathlib import Path

import pandas as pd

from maskforge.core.paths import file_kind


def read_string_csv(path: Path, prefix: str = "") -> pd.DataFrame:
    """A CSV with every cell a string ('' when empty or missing at the end of a short row).

    Never NaN (keep_default_na=False: "", "NA" and "nan" stay as written), never an index
    column (a row with more fields than the header is an error naming the row, not a shift of
    every value by one column). Only a regular file is read: a FIFO, device or socket is
    refused without waiting on it. One-line ValueError for an empty, malformed or unreadable
    file; prefix names the kind of file in the messages, e.g. "Manifest ".
    """
    try:
        data = _regular_bytes(path)
    except OSError as exc:
        raise ValueError(f"{prefix}{path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{prefix}{path} {exc}") from None
    try:
        with warnings.catch_warnings():
            # With index_col=False pandas drops the extra fields of a long first row, warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{prefix}{path} is empty.") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError) as exc:
        reason = _long_row(data) or " ".join(str(exc).split())
        raise ValueError(f"{prefix}{path} is not a valid CSV: {reason}") from None


def _regular_bytes(path: Path) -> bytes:
    """The bytes of path if it is a regular file (ValueError saying what it is otherwise).

    Checked with stat before opening, so a FIFO is never opened, and again on the open file,
    should the path have been swapped in between (O_NONBLOCK keeps that open from waiting).
    """
    _check_regular(os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        _check_regular(os.fstat(fd).st_mode)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        return fh.read()


def _check_regular(mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise ValueError("is a directory.")
    if not stat.S_ISREG(mode):
        raise ValueError(f"is not a regular file ({file_kind(mode)}).")


def _long_row(data: bytes) -> str:
    """ "row N has F fields but the header has H" for the first row longer than the header
    (N counts lines of the file, the header being row 1), or ""."""
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        header = next(reader, [])
        for fields in reader:
            if len(fields) > len(header):
                return (
                    f"row {reader.line_num} has {len(fields)} fields but the header has "
                    f"{len(header)} ({', '.join(header)})"
                )
    except (UnicodeDecodeError, csv.Error):
        pass
    return ""
