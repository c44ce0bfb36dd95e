"""Manifest CSV I/O (see docs/formats.md) and the canonical class order."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from maskforge.core.imageio import atomic_write_text
from maskforge.core.tables import read_string_csv

MANIFEST_COLUMNS = ("path", "label", "group", "source", "mask_type", "wear", "weight")
REQUIRED_COLUMNS = ("path", "label")
CLASS_ORDER = ("unmasked", "masked", "incorrect")


def class_order(labels) -> list[str]:
    """Known classes in canonical order (unmasked, masked, incorrect), then others sorted."""
    present = {str(x) for x in labels}
    known = [c for c in CLASS_ORDER if c in present]
    return known + sorted(present - set(CLASS_ORDER))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (manifest digests recorded in stats and checkpoints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest CSV; adds `abspath` (paths resolved against the CSV's folder).

    Missing optional columns are filled (group = path, weight = 1.0, others empty).
    Raises FileNotFoundError or ValueError with a one-line reason for a bad manifest.
    """
    path = Path(path)
    if not path.exists():  # a FIFO or a folder: read_string_csv says what it is
        raise FileNotFoundError(f"Manifest not found: {path}")
    df = read_string_csv(path, "Manifest ")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"Manifest {path} lacks column(s) {', '.join(missing)}; "
            f"expected at least {', '.join(REQUIRED_COLUMNS)} (found {', '.join(df.columns)})."
        )
    if df.empty:
        raise ValueError(f"Manifest {path} has no rows.")
    for col in REQUIRED_COLUMNS:
        empty = (df[col].str.strip() == "").to_numpy()
        if empty.any():
            raise ValueError(
                f"Manifest {path} row {int(np.argmax(empty)) + 2} has an empty {col}; every row "
                "needs a path and a label."
            )
    for col in MANIFEST_COLUMNS:
        if col not in df.columns:
            df[col] = df["path"] if col == "group" else ("1.0" if col == "weight" else "")
    df["weight"] = _weights(df["weight"], path)
    base = path.resolve().parent
    df["abspath"] = [os.path.normpath(base / p) for p in df["path"]]
    return df


def _weights(cells: pd.Series, path: Path) -> pd.Series:
    """The weight column as float64 ('' is 1.0); ValueError naming the first row whose weight
    is not a finite number >= 0."""
    text = cells.str.strip().replace("", "1.0")
    weights = pd.to_numeric(text, errors="coerce").astype(np.float64)
    bad = ~(np.isfinite(weights.to_numpy()) & (weights.to_numpy() >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"Manifest {path} row {i + 2}: weight {cells.iloc[i]!r} is not a finite number >= 0."
        )
    return weights


def write_manifest(df: pd.DataFrame, path: Path) -> None:
    """Write manifest rows atomically; `abspath` (if present) is rewritten relative to the CSV."""
    path = Path(path)
    out = df.copy()
    if "abspath" in out.columns:
        base = path.resolve().parent
        out["path"] = [Path(os.path.relpath(p, base)).as_posix() for p in out["abspath"]]
    for col in MANIFEST_COLUMNS:
        if col not in out.columns:
            out[col] = 1.0 if col == "weight" else ""
    extra = [c for c in out.columns if c not in MANIFEST_COLUMNS and c != "abspath"]
    atomic_write_text(path, out[list(MANIFEST_COLUMNS) + extra].to_csv(index=False))


def missing_files(paths) -> list[str]:
    """The paths (in the given order, each once) where there is no file: nothing (a dangling
    link too) or a folder. A FIFO, device or socket is there: it is left to the reader, which
    refuses it unopened and records why (core.paths.not_regular)."""
    seen: set[str] = set()
    missing = []
    for p in map(str, paths):
        if p not in seen:
            seen.add(p)
            if not os.path.exists(p) or os.path.isdir(p):
                missing.append(p)
    return missing


def require_files(
    df: pd.DataFrame, where: str, drop_missing: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """Check that every `abspath` exists; returns (rows kept, missing paths).

    Raises ValueError naming the count and the first missing file unless drop_missing, in which
    case rows whose file is missing are dropped (and raises if nothing is left).
    """
    missing = missing_files(df["abspath"])
    if not missing:
        return df, []
    total = df["abspath"].nunique()
    if not drop_missing:
        raise ValueError(
            f"{len(missing)} of {total} images listed in {where} are missing "
            f"(first: {os.path.relpath(missing[0])}); pass --drop-missing to leave them out."
        )
    kept = df[~df["abspath"].isin(set(missing))]
    if kept.empty:
        raise ValueError(f"All {total} images listed in {where} are missing.")
    return kept, missing
