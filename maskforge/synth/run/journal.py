"""The bookkeeping of a synthesize run in its output folder: the journal, the done set,
finalize, the lock, and whether a rerun may resume.

Rows are appended to out/.synthesis.journal.csv as each photo completes; finalize streams the
old synthesis.csv and the journal into a new synthesis.csv, replaced atomically. Both are read
row by row: the done set is a sorted array of 8-byte hashes of the inputs recorded, so resume
and finalize take the same memory for ten thousand photos or a million
(benchmarks/resume.py). One run at a time holds out/.synthesis.lock (fcntl.flock, freed by the
kernel when the run dies). An --overwrite run journals apart (OVERWRITE_JOURNAL, with its
settings in OVERWRITE_RUN_FILE) and replaces synthesis.csv and run.json only when it finishes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from array import array
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from maskforge.core.imageio import atomic_text_stream
from maskforge.core.outputs import folder_lock
from maskforge.synth.run.records import (
    CSV_COLUMNS,
    CSV_NAME,
    JOURNAL,
    LOCK_FILE,
    OVERWRITE_JOURNAL,
    OVERWRITE_RUN_FILE,
    RUN_FILE,
)
from maskforge.synth.run.stems import RecordedStems, per_face_prefixes, recorded_stem
from maskforge.synth.sampling.specs import stable_hash

# Keys of run.json that must match for a rerun to resume into the same folder.
RESUME_KEYS = ("input", "options", "detector", "boxes")
# What a run.json that does not record an option was made with, where that differs from today's
# default: the landmark model became an option when dlib's was the only one.
UNRECORDED = {"landmarks": "dlib", "far_camera": 0.0}
# Options whose default has changed since folders were made with the old one (0.1: the
# licence-clean detector and landmarks, then the far camera): a resume that does not name them
# keeps what run.json records, rather than being refused as a change of settings.
DEFAULTS_CHANGED = ("detector", "landmarks", "far_camera")


class DoneSet:
    """Hashes of inputs already recorded (compact: 8 bytes per input, for millions of photos);
    `recorded`: the stems their outputs were written under, where load_done was asked for them."""

    def __init__(self, hashes: array | list[int]):
        self.recorded: RecordedStems | None = None
        if isinstance(hashes, array):
            values = np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.zeros(0, np.int64)
        else:
            values = np.asarray(hashes, dtype=np.int64).copy()
        values.sort()  # in place: no second copy of millions of hashes
        if len(values) > 1:
            repeated = values[1:] == values[:-1]
            if repeated.any():
                values = values[np.concatenate(([True], ~repeated))]
        self._sorted = values

    def __contains__(self, rel: str) -> bool:
        h = np.int64(stable_hash(rel))
        i = int(np.searchsorted(self._sorted, h))
        return i < len(self._sorted) and self._sorted[i] == h

    def __len__(self) -> int:
        return len(self._sorted)


def _read_inputs(csv_path: Path, into: array, stems: _StemHashes | None = None) -> None:
    """Append the hash of each input recorded in csv_path to `into`, and each stem its outputs
    were written under to `stems`, streaming the file (rows of one photo follow each other:
    each input is hashed once)."""
    if not csv_path.is_file():
        return
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "input" not in header:
            return
        col, last, stemmed = header.index("input"), None, True
        where = {c: header.index(c) for c in _STEM_COLUMNS if c in header}
        for row in reader:
            if len(row) > col and row[col] and row[col] != last:
                last, stemmed = row[col], stems is None
                into.append(stable_hash(last))
            # All rows of a photo share its stem: the first row with an output file names it.
            if not stemmed:
                stem = _row_stem(row, where)
                if stem is not None:
                    stems.add(stem)
                    stemmed = True


class _StemHashes:
    """The recorded stems, and the stems whose per-face names they are, as 8-byte hashes."""

    def __init__(self, draws: int, per_face: bool):
        self.draws, self.per_face = draws, per_face
        self.stems, self.prefixes = array("q"), array("q")

    def add(self, stem: str) -> None:
        self.stems.append(stable_hash(stem))
        if self.per_face:  # only a run that writes some photos whole asks about prefixes
            self.prefixes.extend(stable_hash(p) for p in per_face_prefixes(stem, self.draws))

    def recorded(self) -> RecordedStems:
        return RecordedStems(DoneSet(self.stems), DoneSet(self.prefixes), self.draws)


# The columns that say which stem a row's outputs were written under.
_STEM_COLUMNS = ("output", "original", "negative", "face", "framing", "mask_draw")


def _row_stem(row: list[str], where: dict[str, int]) -> str | None:
    """The stem (see synth.stems.recorded_stem) of a row's outputs; None when it has none."""

    def get(column: str) -> str:
        i = where.get(column)
        return row[i] if i is not None and i < len(row) else ""

    output = get("output") or get("original")
    negative = not output
    output = output or get("negative")
    if not output:
        return None
    draw = get("mask_draw")
    draw_index = int(draw) if draw.isdigit() else 0
    return recorded_stem(output, get("face"), get("framing"), draw_index, negative)


def load_done(
    out: Path,
    journal_name: str = JOURNAL,
    with_final: bool = True,
    draws: int | None = None,
    per_face: bool = False,
) -> DoneSet:
    """The inputs already recorded in out (synthesis.csv unless with_final is False, and the
    journal), after repairing a journal cut short by a kill -9. Memory: 8 bytes per photo.
    draws: --masks-per-face of the run; given, the set's `recorded` also holds the stems the
    recorded photos wrote under (synth.stems.RecordedStems, 8 more bytes per photo), for a
    run that writes some photos whole and others per face with `per_face`."""
    out = Path(out)
    repair_journal(out / journal_name)
    hashes = array("q")
    stems = _StemHashes(draws, per_face) if draws is not None else None
    if with_final:
        _read_inputs(out / CSV_NAME, hashes, stems)
    _read_inputs(out / journal_name, hashes, stems)
    done = DoneSet(hashes)
    if stems is not None:
        done.recorded = stems.recorded()
    return done


def repair_journal(journal: Path) -> None:
    """Drop a partial last line left by a kill -9 in the middle of a write (reads only the
    end of the file)."""
    if not journal.is_file():
        return
    with open(journal, "r+b") as fh:
        size = pos = fh.seek(0, os.SEEK_END)
        end = 0
        while pos > 0:
            step = min(1 << 16, pos)
            fh.seek(pos - step)
            newline = fh.read(step).rfind(b"\n")
            if newline >= 0:
                end = pos - step + newline + 1
                break
            pos -= step
        if end != size:
            fh.truncate(end)


def remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files a killed run left behind (atomic writes name them .*.tmp);
    streams the tree (os.scandir), so a folder of a million outputs is never listed whole."""
    removed, stack = 0, [os.fspath(out)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
    return removed


def rows_text(rows: list[dict]) -> str:
    """One photo's rows as CSV text, one line per row: a line break inside a value (a message)
    becomes a space, so that repair_journal's cut at the last line break never leaves part of
    a row behind (names come here through core.paths.printable, which has none)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="raise", lineterminator="\n")
    for row in rows:
        writer.writerow({k: _one_line(row.get(k, "")) for k in CSV_COLUMNS})
    return buf.getvalue()


def _one_line(value: object) -> object:
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        return " ".join(value.split())
    return value


def finalize(out: Path, overwrite: bool = False) -> None:
    """synthesis.csv := its old rows + the journal's, written atomically (streamed line by
    line); then drop the journal.

    overwrite: synthesis.csv := the rows of the --overwrite journal alone, and its run file
    becomes run.json; only then are the old journal and the --overwrite files removed.
    """
    out = Path(out)
    journal, final = out / (OVERWRITE_JOURNAL if overwrite else JOURNAL), out / CSV_NAME
    if not journal.is_file():
        return
    repair_journal(journal)
    with atomic_text_stream(final) as dst:
        dst.write(",".join(CSV_COLUMNS) + "\n")
        for source in (journal,) if overwrite else (final, journal):
            if source.is_file():
                with open(source, encoding="utf-8", newline="") as src:
                    next(src, None)  # header
                    for line in src:
                        dst.write(line)
    if overwrite:
        # A kill from here on leaves the --overwrite files: the next run refuses to resume
        # without --overwrite, and a rerun with it finishes this one.
        os.replace(out / OVERWRITE_RUN_FILE, out / RUN_FILE)
        (out / JOURNAL).unlink(missing_ok=True)
    journal.unlink()


def lock_output(out: Path) -> AbstractContextManager[None]:
    """Hold an exclusive lock on out for the whole run (core.outputs.folder_lock on
    out/.synthesis.lock, released by the kernel when the process dies, so a killed run never
    leaves it stuck). Another command holding it: a one-line ValueError naming it (pid, host,
    start)."""
    return folder_lock(out, "synthesize", LOCK_FILE)


def _settings_changed(previous: dict, run_info: dict, defaults: dict | None = None) -> list[str]:
    """'key: old -> new' for each RESUME_KEYS setting that differs (options one by one).

    defaults: each option's default. An option the old run file does not record was added
    since that run was made, and its default does what that version did, so a run at that
    default still resumes (e.g. masks_per_face: 1 against a run.json from before it; a field
    added to a nested option such as finish alike)."""
    detail = []
    for key in RESUME_KEYS:
        old, new = previous.get(key), run_info.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            if key == "options":
                old = _with_defaults(old, defaults or {}, new)
            detail += [
                f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            ]
        else:
            detail.append(f"{key}: {old!r} -> {new!r}")
    return detail


def _with_defaults(old: dict, defaults: dict, new: dict) -> dict:
    """old, with the keys of new that it lacks taken from defaults, at every nesting level."""
    filled = dict(old)
    for k, value in new.items():
        if k not in defaults:
            continue
        if k not in old:
            filled[k] = defaults[k]
        elif all(isinstance(d, dict) for d in (old[k], defaults[k], value)):
            filled[k] = _with_defaults(old[k], defaults[k], value)
    return filled


def recorded_settings(out: Path) -> dict[str, str | float]:
    """The DEFAULTS_CHANGED settings out/run.json records ({} without a readable run.json):
    what a resume of out that does not name them should keep."""
    try:
        run = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(run, dict) or not isinstance(run.get("options"), dict):
        return {}
    recorded = {"detector": run.get("detector"), **UNRECORDED, **run["options"]}
    return {
        k: recorded[k]
        for k in DEFAULTS_CHANGED
        if isinstance(recorded.get(k), (str, float, int)) and not isinstance(recorded[k], bool)
    }


def _read_run_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; use --overwrite or a new folder.") from None


def check_resume(out: Path, run_info: dict, overwrite: bool, defaults: dict | None = None) -> bool:
    """Refuse a folder made with other settings (unless overwrite); True when an --overwrite
    run resumes an interrupted one with the same settings. Touches nothing but the leftovers
    of an --overwrite run made with other settings. defaults: the options' defaults (see
    _settings_changed)."""
    if overwrite:
        pending = out / OVERWRITE_RUN_FILE
        if pending.is_file() and (out / OVERWRITE_JOURNAL).is_file():
            try:
                if not _settings_changed(json.loads(pending.read_text()), run_info, defaults):
                    return True
            except ValueError:
                pass
        (out / OVERWRITE_JOURNAL).unlink(missing_ok=True)
        pending.unlink(missing_ok=True)
        return False
    if (out / OVERWRITE_RUN_FILE).is_file() or (out / OVERWRITE_JOURNAL).is_file():
        raise ValueError(
            f"An --overwrite run into {out} did not finish (the old synthesis.csv is still "
            "there); rerun it with --overwrite to finish it, or use a new output folder."
        )
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if (out / CSV_NAME).is_file() or (out / JOURNAL).is_file():
            raise ValueError(
                f"{out} holds a synthesis.csv but no run.json; use --overwrite or a new folder."
            )
        return False
    detail = _settings_changed(_read_run_file(run_file), run_info, defaults)
    if detail:
        raise ValueError(
            f"{out} was made with other settings ({'; '.join(detail[:4])}); rerun with the same "
            "options to resume, or use --overwrite or a new output folder."
        )
    return False
