"""Batch runner for synthesize: walk inputs, run an engine, resumable journal, summary.

It knows files, order and bookkeeping, not how a face is masked: each photo goes to
`Synthesizer.run_file` in a worker and comes back as synthesis.csv rows. Engines only decide
where the workers run: this process (--workers 1), a local process pool (core/parallel.py), or
Ray actors (--engine ray, core/ray_engine.py); each hands the rows back in input order to one
`record` on the driver, so the CSV, the journal and the summary are the same code for all.

Resume: rows are appended to out/.synthesis.journal.csv as each photo completes (one write per
photo; image files are written atomically before their rows). synthesis.csv itself is only ever
replaced atomically, when a run ends or is interrupted with Ctrl-C. A rerun skips every photo
already in synthesis.csv or the journal, so a kill -9 loses at most the photos in flight.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from maskforge import __version__
from maskforge.choices import ENGINES  # noqa: F401 - re-exported
from maskforge.core.imageio import atomic_write_text, iter_image_files
from maskforge.core.parallel import pool_map
from maskforge.synth.pipeline import SynthesisOptions, Synthesizer
from maskforge.synth.sampling import stable_hash
from maskforge.synth.table import CSV_COLUMNS, CSV_NAME, JOURNAL, RUN_FILE

TASKS_PER_JOB = 8  # photos per pool job or Ray block
# Keys of run.json that must match for a rerun to resume into the same folder.
RESUME_KEYS = ("options", "detector", "boxes")


@dataclass
class RunSummary:
    """Counts and timing of one synthesize run."""

    inputs: int = 0
    already_done: int = 0
    processed: int = 0
    photos_masked: int = 0  # processed photos with at least one masked face
    faces: int = 0
    outputs: Counter = field(default_factory=Counter)  # masked / incorrect / negative images
    status: Counter = field(default_factory=Counter)  # per row: ok, no_face, unreadable, ...
    detectors: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        """Photos processed per second in this run (resumed ones not counted)."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def add(self, rows: list[dict]) -> None:
        """Count one photo's rows."""
        self.processed += 1
        self.photos_masked += any(row["status"] == "ok" for row in rows)
        for row in rows:
            self.status[row["status"]] += 1
            if row.get("face", "") != "":
                self.faces += 1
            if row["status"] == "ok":
                self.outputs[row["label"]] += 1
                self.detectors[row["detector"]] += 1
                if row.get("negative"):
                    self.outputs["negative"] += 1


def check_folders(raw: Path, out: Path) -> None:
    """Refuse a missing input, an output inside the input, or an input inside the output."""
    raw, out = Path(raw).resolve(), Path(out).resolve()
    if not raw.exists():
        raise FileNotFoundError(f"Input folder not found: {raw}")
    if not raw.is_dir():
        raise NotADirectoryError(f"Input is not a folder: {raw}")
    if out == raw or raw in out.parents:
        raise ValueError(
            f"Output folder {out} is inside the input folder {raw}; choose one outside it."
        )
    if out in raw.parents:
        raise ValueError(
            f"Input folder {raw} is inside the output folder {out}; choose another output."
        )
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"Output path exists and is not a folder: {out}")


def plan_inputs(raw: Path) -> Iterator[tuple[Path, str, str]]:
    """(path, relative path, output stem) for every photo, in sorted order.

    The stem drops the extension unless two photos in one folder share a name (a.jpg, a.png),
    in which case both keep it, so no output overwrites another.
    """
    raw = Path(raw)
    current_dir, batch = None, []
    for path in iter_image_files(raw):
        if path.parent != current_dir:
            yield from _stems(raw, batch)
            current_dir, batch = path.parent, []
        batch.append(path)
    yield from _stems(raw, batch)


def _stems(raw: Path, paths: list[Path]) -> Iterator[tuple[Path, str, str]]:
    counts = Counter(p.stem.lower() for p in paths)
    for p in paths:
        rel = p.relative_to(raw).as_posix()
        stem = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        stem += p.name.replace(".", "_") if counts[p.stem.lower()] > 1 else p.stem
        yield p, rel, stem


def read_boxes(path: Path) -> dict[str, list]:
    """User-given faces: CSV with `image` and left,top,right,bottom or x0,y0..x67,y67 columns."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Boxes file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"Boxes file {path} is not a valid CSV: {' '.join(str(exc).split())}"
        ) from None
    box_cols = ["left", "top", "right", "bottom"]
    lm_cols = [f"{a}{i}" for i in range(68) for a in "xy"]
    if "image" not in df.columns:
        raise ValueError(
            f"Boxes file {path} needs an 'image' column (found: {', '.join(map(str, df.columns))})."
        )
    if all(c in df.columns for c in lm_cols):
        cols, shape = lm_cols, (68, 2)
    elif all(c in df.columns for c in box_cols):
        cols, shape = box_cols, (4,)
    else:
        raise ValueError(
            f"Boxes file {path} needs columns left,top,right,bottom or x0,y0,...,x67,y67 "
            "beside 'image'."
        )
    values = df[cols].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1)
    if bad.any():
        raise ValueError(
            f"Boxes file {path}: row {int(bad.idxmax()) + 2} has a missing or non-numeric value."
        )
    if shape == (4,):
        v = values.to_numpy()
        if ((v[:, 2] <= v[:, 0]) | (v[:, 3] <= v[:, 1])).any():
            row = int(np.argmax((v[:, 2] <= v[:, 0]) | (v[:, 3] <= v[:, 1]))) + 2
            raise ValueError(f"Boxes file {path}: row {row} has right <= left or bottom <= top.")
    out: dict[str, list] = {}
    for image, vals in zip(df["image"].astype(str), values.to_numpy(dtype=np.float64)):
        out.setdefault(Path(image).as_posix(), []).append(vals.reshape(shape))
    return out


class _DoneSet:
    """Hashes of inputs already recorded (compact: 8 bytes per input, for millions of photos)."""

    def __init__(self, hashes: list[int]):
        self._sorted = np.unique(np.asarray(hashes, dtype=np.int64))

    def __contains__(self, rel: str) -> bool:
        h = np.int64(stable_hash(rel))
        i = int(np.searchsorted(self._sorted, h))
        return i < len(self._sorted) and self._sorted[i] == h

    def __len__(self) -> int:
        return len(self._sorted)


def _read_inputs(csv_path: Path) -> list[int]:
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return [stable_hash(row["input"]) for row in csv.DictReader(fh) if row.get("input")]


def _repair_journal(journal: Path) -> None:
    """Drop a partial last line left by a kill -9 in the middle of a write."""
    if not journal.is_file():
        return
    data = journal.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(journal, "r+b") as fh:
            fh.truncate(end)


def _remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files a killed run left behind (atomic writes name them .*.tmp)."""
    removed = 0
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _rows_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="raise", lineterminator="\n")
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    return buf.getvalue()


def _finalize(out: Path) -> None:
    """synthesis.csv := its old rows + the journal's, written atomically; then drop the journal."""
    journal, final = out / JOURNAL, out / CSV_NAME
    if not journal.is_file():
        return
    _repair_journal(journal)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{CSV_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            dst.write(",".join(CSV_COLUMNS) + "\n")
            for source in (final, journal):
                if source.is_file():
                    with open(source, encoding="utf-8", newline="") as src:
                        next(src, None)  # header
                        for line in src:
                            dst.write(line)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    journal.unlink()


def _check_resume(out: Path, run_info: dict, overwrite: bool) -> None:
    run_file = out / RUN_FILE
    if overwrite:
        for name in (CSV_NAME, JOURNAL):
            (out / name).unlink(missing_ok=True)
        return
    if not run_file.is_file():
        if (out / CSV_NAME).is_file() or (out / JOURNAL).is_file():
            raise ValueError(
                f"{out} holds a synthesis.csv but no run.json; use --overwrite or a new folder."
            )
        return
    try:
        previous = json.loads(run_file.read_text())
    except ValueError:
        raise ValueError(
            f"{run_file} is not valid JSON; use --overwrite or a new folder."
        ) from None
    changed = [k for k in RESUME_KEYS if previous.get(k) != run_info.get(k)]
    if changed:
        detail = []
        for key in changed:
            old, new = previous.get(key), run_info.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                detail += [
                    f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                    for k in sorted(set(old) | set(new))
                    if old.get(k) != new.get(k)
                ]
            else:
                detail.append(f"{key}: {old!r} -> {new!r}")
        raise ValueError(
            f"{out} was made with other settings ({'; '.join(detail[:4])}); rerun with the same "
            "options to resume, or use --overwrite or a new output folder."
        )


# -- worker side ---------------------------------------------------------------------------------

# One task: (photo path, path relative to the input root, output stem, user-given faces or None).
Task = tuple[str, str, str, "list | None"]


def synthesis_worker(
    options: SynthesisOptions, detector_args: dict, out: str
) -> Callable[[Task], list[dict]]:
    """Load models once; return task -> synthesis.csv rows of that photo (outputs written)."""
    return _photo_runner(Synthesizer(options, **detector_args), Path(out))


def _photo_runner(synthesizer: Synthesizer, out: Path) -> Callable[[Task], list[dict]]:
    def run(task: Task) -> list[dict]:
        path, rel, stem, given = task
        return synthesizer.run_file(Path(path), rel, out, stem, given)

    return run


# -- driver ----------------------------------------------------------------------------------------


def run_synthesis(
    raw: Path,
    out: Path,
    options: SynthesisOptions,
    detector: str = "cascade",
    landmarks_model: Path | None = None,
    cnn_model: Path | None = None,
    boxes: Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
) -> RunSummary:
    """Synthesize every photo under raw into out (see docs/formats.md); resumable.

    workers: processes or Ray actors (default: all cores, or all CPUs of the Ray cluster at
    `address`; 1 with the local engine runs in this process). limit: stop after this many new
    photos (for trials). progress: tqdm bar (None: only on a terminal). engine: "local" or
    "ray" (Ray Data; `address` of a running cluster, or None to start one on this machine).
    """
    from tqdm import tqdm

    if engine not in ENGINES:
        raise ValueError(f"Invalid engine {engine!r}. Choose from: {', '.join(ENGINES)}.")
    if address and engine != "ray":
        raise ValueError(f"--address {address} needs --engine ray.")
    if engine == "ray":
        from maskforge.core.ray_engine import import_ray

        import_ray()  # the install hint before any work
    raw, out = Path(raw), Path(out)
    check_folders(raw, out)
    given_faces = read_boxes(boxes) if boxes else {}
    detector_args = {
        "detector": detector,
        "landmarks_model": landmarks_model,
        "cnn_model": cnn_model,
    }
    if engine == "local" or not address:
        workers = max(1, workers or os.cpu_count() or 1)
    # Fail fast (model files, templates, option names) before starting workers or touching
    # out/. Only a run in this process needs the models here; workers load their own.
    in_process = engine == "local" and workers == 1
    probe = Synthesizer(options, **detector_args, load_models=in_process)
    run_info = {
        "maskforge_version": __version__,
        "input": str(raw.resolve()),
        "options": options.describe(),
        "detector": detector,
        "boxes": str(Path(boxes).resolve()) if boxes else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, run_info, overwrite)
    atomic_write_text(out / RUN_FILE, json.dumps(run_info, indent=2) + "\n")
    if (out / JOURNAL).is_file():  # the last run was killed: tidy up after it
        _remove_stale_temporaries(out)
        _repair_journal(out / JOURNAL)
    done = _DoneSet(_read_inputs(out / CSV_NAME) + _read_inputs(out / JOURNAL))

    summary = RunSummary(inputs=sum(1 for _ in plan_inputs(raw)))
    todo = islice(
        (
            (str(p), rel, stem, given_faces.get(rel))
            for p, rel, stem in plan_inputs(raw)
            if rel not in done
        ),
        limit,
    )
    summary.already_done = min(len(done), summary.inputs)
    total = summary.inputs - summary.already_done
    if limit is not None:
        total = min(total, limit)
    bar = tqdm(
        total=total,
        unit="img",
        desc="synthesize",
        disable=None if progress is None else not progress,
    )
    if engine == "ray":
        results = _ray_results(todo, out, options, detector_args, workers, address)
    elif in_process:
        results = map(_photo_runner(probe, out), todo)
    else:
        args = (options, detector_args, str(out))
        results = pool_map(synthesis_worker, args, todo, workers, TASKS_PER_JOB)
    start = time.perf_counter()
    journal_exists = (out / JOURNAL).is_file()
    with open(out / JOURNAL, "a", encoding="utf-8", newline="") as journal:
        if not journal_exists:
            journal.write(",".join(CSV_COLUMNS) + "\n")

        def record(rows: list[dict]) -> None:
            journal.write(_rows_text(rows))
            journal.flush()
            summary.add(rows)
            bar.update(1)

        try:
            for rows in results:
                record(rows)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if hasattr(results, "close"):
                results.close()  # stop the engine's workers now, whatever ended the loop
            bar.close()
            summary.seconds = time.perf_counter() - start
    _finalize(out)
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary


def _ray_results(
    todo: Iterable[Task],
    out: Path,
    options: SynthesisOptions,
    detector_args: dict,
    workers: int | None,
    address: str | None,
) -> Iterator[list[dict]]:
    """The rows of each photo, in order, from Ray actors writing straight into out/.

    Paths go absolute: actors run in other folders, on a cluster on other machines, which must
    see the input and output folders (and any model file given) at the same paths.
    """
    from maskforge.core.ray_engine import ray_map, ray_session

    tasks = [(os.path.abspath(p), rel, stem, given) for p, rel, stem, given in todo]
    if not tasks:
        return  # nothing left to do: no need to start Ray
    detector_args = {
        k: os.path.abspath(v) if k.endswith("_model") and v is not None else v
        for k, v in detector_args.items()
    }
    with ray_session(address, workers) as cpus:
        yield from ray_map(
            synthesis_worker,
            (options, detector_args, os.path.abspath(out)),
            tasks,
            workers or cpus,
            TASKS_PER_JOB,
        )
