"""The synthesis.csv contract: its file names, columns and statuses, and how to read it back.

Written by the batch runner, read by preview and by dataset.sources; docs/formats.md documents
every column. One module so that the name of a file or a column is spelled in one place.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from maskforge.choices import STATUSES  # noqa: F401 - re-exported
from maskforge.core.tables import read_string_csv

CSV_NAME = "synthesis.csv"
# Rows are appended here as each photo completes; the finished run turns it into CSV_NAME.
JOURNAL = ".synthesis.journal.csv"
RUN_FILE = "run.json"
# Held (fcntl.flock) by the run writing into a folder; says which run (pid, host, start).
LOCK_FILE = ".synthesis.lock"
# An --overwrite run journals here and keeps its run.json here until it finishes: the old
# synthesis.csv, journal and run.json stay in place until then.
OVERWRITE_JOURNAL = ".synthesis.overwrite.journal.csv"
OVERWRITE_RUN_FILE = ".run.overwrite.json"

# Columns added after synthesis.csv files were first written: readers treat them as optional.
LATER_COLUMNS = (
    "framing",
    "frame",
    "near_hand",
    "mask_draw",
    "far_face",
    "far_blur",
    "far_noise",
    "far_jpeg",
)
CSV_COLUMNS = (
    "input",
    "face",
    "status",
    "reason",
    "label",
    "output",
    "original",
    "negative",
    "negative_kind",
    "group",
    "detector",
    "box",
    "yaw",
    "variant",
    "mask_type",
    "color",
    "pattern",
    "wear",
    "seed",
    *LATER_COLUMNS,
)


def read_synthesis_table(csv_path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """synthesis.csv as strings, with a one-line error when it lacks a `required` column."""
    df = read_string_csv(csv_path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{csv_path} lacks column(s) {', '.join(missing)} (see docs/formats.md, synthesis.csv)."
        )
    return df
