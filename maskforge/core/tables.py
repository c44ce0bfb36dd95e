"""Reading the CSVs the wings exchange: every cell a string, one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_string_csv(path: Path, prefix: str = "") -> pd.DataFrame:
    """A CSV with every cell a string ('' when empty); one-line ValueError if empty or malformed.

    prefix names the kind of file in the messages, e.g. "Manifest ".
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{prefix}{path} is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ValueError(f"{prefix}{path} is not a valid CSV: {reason}") from None
