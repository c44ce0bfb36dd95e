"""predictions.csv written as predict goes, so that an interrupted run keeps what it did.

Rows are appended and flushed file by file; a journal beside the CSV lists the files that are
complete, and a state file says what the run was asked. A rerun with the same inputs, model and
options resumes: it keeps the rows of complete files (dropping a half-done video and the
`interrupted` row) and does the rest. A finished run removes both side files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

CSV_NAME = "predictions.csv"
STATE_NAME = ".predict-state.json"
JOURNAL_NAME = ".predict-done.txt"
BASE_COLUMNS = ("file", "frame", "face", "status", "box", "class", "probability")
TAIL_COLUMNS = ("detector", "annotated", "reason")


def columns_for(classes: Sequence[str]) -> list[str]:
    """predictions.csv's columns for a model with these classes (docs/formats.md)."""
    return [*BASE_COLUMNS, *(f"p_{c}" for c in classes), *TAIL_COLUMNS]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


class PredictionsWriter:
    """Appends rows to out/predictions.csv; resumes a run that stopped with the same `state`."""

    def __init__(self, out: Path, classes: Sequence[str], state: dict):
        self.path, self.columns = Path(out) / CSV_NAME, columns_for(classes)
        self._state_path, self._journal_path = Path(out) / STATE_NAME, Path(out) / JOURNAL_NAME
        self.done: set[str] = set()
        self.kept: list[dict] = []  # rows carried over from the stopped run, for the summary
        if self._resumable(state):
            self._carry_over()
        else:
            self._journal_path.unlink(missing_ok=True)
            self._state_path.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
            with open(self.path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self.columns)
        self._csv = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._csv)
        self._journal = open(self._journal_path, "a", encoding="utf-8")  # noqa: SIM115
        self._finished: list[str] = []  # complete files not yet in the journal

    def _resumable(self, state: dict) -> bool:
        if not (self._state_path.is_file() and self.path.is_file()):
            return False
        try:
            old = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return old == json.loads(json.dumps(state, sort_keys=True))

    def _carry_over(self) -> None:
        """Keep the rows of the files the journal lists as complete (streamed, not loaded)."""
        if self._journal_path.is_file():
            self.done = set(self._journal_path.read_text(encoding="utf-8").splitlines())
        tmp = self.path.with_name(f".{self.path.name}.resume.tmp")
        with (
            open(self.path, newline="", encoding="utf-8") as src,
            open(tmp, "w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.DictReader(src), csv.writer(dst)
            writer.writerow(self.columns)
            for row in reader:
                if row.get("file") in self.done and row.get("status") != "interrupted":
                    writer.writerow([row.get(c, "") for c in self.columns])
                    self.kept.append({"status": row["status"], "class": row.get("class", "")})
        os.replace(tmp, self.path)

    def write(self, rows: Sequence[dict]) -> None:
        """Append rows (dicts keyed by column) and flush them to disk."""
        for row in rows:
            self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._csv.flush()

    def file_done(self, file: str) -> None:
        """Record that every row of `file` is written (in the journal at the next commit)."""
        self._finished.append(file)

    def commit(self) -> None:
        """Make the rows written so far durable, then journal the files they complete: one
        fsync per batch, not per file (on a slow disk an fsync costs more than a photo)."""
        if not self._finished:
            return
        self._csv.flush()
        os.fsync(self._csv.fileno())
        self._journal.write("".join(f + "\n" for f in self._finished))
        self._journal.flush()
        self._finished = []

    def stopped(self, done: int, total: int, why: str) -> None:
        """Append the row that says where an interrupted run stopped, then close."""
        self.commit()
        self.write(
            [
                {
                    "status": "interrupted",
                    "reason": f"stopped after {done} of {total} files ({why}); rerun the same "
                    "command to resume",
                }
            ]
        )
        self.close()

    def finish(self) -> None:
        """Close, and remove the side files: the CSV is complete."""
        self.close()
        self._state_path.unlink(missing_ok=True)
        self._journal_path.unlink(missing_ok=True)

    def close(self) -> None:
        for fh in (self._csv, self._journal):
            if not fh.closed:
                fh.close()


def read_rows(path: Path) -> Iterator[dict]:
    """The rows of a predictions.csv as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)
