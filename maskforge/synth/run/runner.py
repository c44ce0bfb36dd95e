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
Resume and finalize stream both files (the done set is a sorted array of 8-byte hashes).

One run at a time per out/: each holds an flock on out/.synthesis.lock for its whole length
(freed by the kernel when a run dies). --overwrite journals apart (.synthesis.overwrite.*)
and replaces synthesis.csv and run.json only when it finishes; until then the old index stays.
A photo that kills its pool worker or Ray actor (segfault, OOM kill) is retried alone, then
recorded as status error, "worker died: ..."; the rest of the batch goes on.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import numpy as np

from maskforge import __version__
from maskforge.choices import DEFAULT_DETECTOR, DETECTORS, ENGINES
from maskforge.core.imageio import (
    IMAGE_EXTENSIONS,
    atomic_write_text,
    is_image_path,
)
from maskforge.core.outputs import StorageError, is_storage_fault
from maskforge.core.parallel import check_local_workers, pool_map, usable_cores
from maskforge.core.paths import printable
from maskforge.synth.run.journal import (
    UNRECORDED,
    DoneSet,
    check_resume,
    finalize,
    load_done,
    lock_output,
    remove_stale_temporaries,
    rows_text,
)
from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
from maskforge.synth.run.records import (
    CSV_COLUMNS,
    JOURNAL,
    OVERWRITE_JOURNAL,
    OVERWRITE_RUN_FILE,
    RUN_FILE,
)
from maskforge.synth.run.stems import folder_stems

TASKS_PER_JOB = 8  # photos per pool job or Ray block
# How many names a warning lists (unmatched --boxes rows, unreadable folders).
SHOW_NAMES = 5


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
    boxes_unmatched: int = 0  # --boxes rows (images) that name no photo under the input
    boxes_unmatched_names: list = field(default_factory=list)  # the first SHOW_NAMES of them
    folders_skipped: list = field(default_factory=list)  # "folder: reason", unreadable ones

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


def plan_inputs(
    raw: Path,
    skipped: list | None = None,
    mixed: bool = False,
    draws: int = 1,
    done: DoneSet | None = None,
) -> Iterator[tuple[Path, str, str]]:
    """(path, relative path, output stem) for every photo, in sorted order; with `done`, only
    for the photos it has not recorded.

    The stems of one folder never write each other's files (see synth.stems.folder_stems;
    mixed: some photos are written whole and others per face; draws: --masks-per-face), nor,
    on resume, the files of the photos `done` has recorded (their stems are in done.recorded).
    Folders that cannot be listed are appended to `skipped` as "folder: reason" (relative to
    raw).
    """
    raw = Path(raw)
    for paths in _image_folders(raw, skipped):
        yield from _stems(raw, paths, mixed, draws, done)


def mixed_framing(options: SynthesisOptions) -> bool:
    """True when a run may write some photos whole (framing full) and others per face."""
    drawn = {o for o, w in zip(options.framing.options, options.framing.weights) if w > 0}
    return "full" in drawn and len(drawn) > 1


def _image_folders(root: Path, skipped: list | None) -> Iterator[list[Path]]:
    """The image files of each folder under root, in core.imageio.iter_image_files's order
    (sorted, hidden entries skipped), telling `skipped` about folders it could not list."""

    def unreadable(exc: OSError) -> None:
        if skipped is not None:
            where = os.path.relpath(exc.filename, root) if exc.filename else str(root)
            skipped.append(f"{Path(where).as_posix()}: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        paths = [
            Path(dirpath) / name
            for name in sorted(filenames)
            if not name.startswith(".") and is_image_path(Path(name))
        ]
        if paths:
            yield paths


def _stems(
    raw: Path, paths: list[Path], mixed: bool, draws: int, done: DoneSet | None = None
) -> Iterator[tuple[Path, str, str]]:
    # printable: a name that is not UTF-8 goes into the CSV, the seed and the outputs as \xNN
    rels = [printable(p.relative_to(raw).as_posix()) for p in paths]
    folder = rels[0].rsplit("/", 1)[0] if "/" in rels[0] else ""
    flags = [rel in done for rel in rels] if done is not None else [False] * len(rels)
    recorded = done.recorded if done is not None else None
    stems = folder_stems(paths, mixed, draws, recorded, flags, folder)
    for p, rel, name, recorded_already in zip(paths, rels, stems, flags):
        if not recorded_already:
            yield p, rel, (folder + "/" if folder else "") + printable(name)


def read_boxes(path: Path) -> dict[str, list]:
    """User-given faces: CSV with `image` and left,top,right,bottom or x0,y0..x67,y67 columns.

    {image name as written, with "/": [(4,) box or (68, 2) landmarks float64, ...]}. Every
    image name must be non-empty and every coordinate a finite number of pixels within
    +-BOXES_LIMIT; a one-line ValueError names the file, the row and the value otherwise.
    """
    from maskforge.core.tables import read_string_csv

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Boxes file not found: {path}")
    df = read_string_csv(path, "Boxes file ")
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
    names = df["image"].str.strip()
    if (names == "").any():
        row = int(np.argmax((names == "").to_numpy())) + 2
        raise ValueError(f"Boxes file {path}: row {row} has an empty image name.")
    values = _coordinates(df[cols], path)
    if shape == (4,):
        v = values
        if ((v[:, 2] <= v[:, 0]) | (v[:, 3] <= v[:, 1])).any():
            row = int(np.argmax((v[:, 2] <= v[:, 0]) | (v[:, 3] <= v[:, 1]))) + 2
            raise ValueError(f"Boxes file {path}: row {row} has right <= left or bottom <= top.")
    out: dict[str, list] = {}
    for image, vals in zip(df["image"], values, strict=True):
        out.setdefault(Path(image).as_posix(), []).append(vals.reshape(shape))
    return out


# Pixel coordinates beyond this are no photo's (a side of 16,777,216 px), and every integer up
# to it is exact in float32; larger values would overflow OpenCV's and dlib's integers.
BOXES_LIMIT = 2**24


def _coordinates(cells, path: Path) -> np.ndarray:
    """(N, columns) float64 from string cells; ValueError naming the first bad cell."""
    import pandas as pd

    values = cells.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    values = values.to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & (np.abs(values) <= BOXES_LIMIT))
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise ValueError(
            f"Boxes file {path}: row {i + 2}: {cells.columns[j]} is {cells.iat[i, j]!r}; "
            f"coordinates must be finite numbers of pixels within +-{BOXES_LIMIT:,}."
        )
    return values


# -- worker side ---------------------------------------------------------------------------------

# One task: (photo path, path relative to the input root, output stem, user-given faces or None).
Task = tuple[str, str, str, "list | None"]


def synthesis_worker(
    options: SynthesisOptions, detector_args: dict, out: str
) -> Callable[[Task], list[dict]]:
    """Load models once; return task -> synthesis.csv rows of that photo (outputs written)."""
    return _photo_runner(Synthesizer(options, **detector_args), Path(out))


def _photo_runner(synthesizer: Synthesizer, out: Path) -> Callable[[Task], list[dict]]:
    folder = _identity(out)

    def run(task: Task) -> list[dict]:
        # Writing on would make the folders again (atomic writes create their parents): on
        # the disk under a mount point that went away, or where the user just deleted out/.
        if _identity(out) != folder:
            raise FileNotFoundError(
                errno.ENOENT, "The output folder was removed or replaced during the run", str(out)
            )
        path, rel, stem, given = task
        return synthesizer.run_file(Path(path), rel, out, stem, given)

    return run


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it is not there."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


# -- driver ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """How a synthesize run is carried out, as against what it draws (SynthesisOptions).

    detector: a choices.DETECTORS cascade; landmarks_model / cnn_model: dlib model files (None:
    $MASKFORGE_LANDMARKS_MODEL / $MASKFORGE_CNN_MODEL, else the installed package's); boxes: a
    CSV of the user's own faces. workers: processes or Ray actors (None: the usable cores, or
    all CPUs of the Ray cluster at `address`; 1 with the local engine runs in this process).
    limit: stop after this many new photos (for trials). progress: a tqdm bar (None: only on a
    terminal). engine: "local" or "ray" (Ray Data; `address` of a running cluster, or None to
    start one on this machine).
    """

    detector: str = DEFAULT_DETECTOR
    landmarks_model: Path | None = None
    cnn_model: Path | None = None
    boxes: Path | None = None
    workers: int | None = None
    overwrite: bool = False
    limit: int | None = None
    progress: bool | None = None
    engine: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(
                f"Invalid detector {self.detector!r}. Only {', '.join(DETECTORS)} are supported."
            )
        if self.engine not in ENGINES:
            raise ValueError(f"Invalid engine {self.engine!r}. Choose from: {', '.join(ENGINES)}.")
        if self.address and self.engine != "ray":
            raise ValueError(f"--address {self.address} needs --engine ray.")
        for name in ("workers", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Invalid {name} {value!r}: must be at least 1.")

    @property
    def detector_args(self) -> dict:
        """The keyword arguments of Synthesizer that say how faces are found."""
        return dict(
            detector=self.detector,
            landmarks_model=self.landmarks_model,
            cnn_model=self.cnn_model,
        )


def run_synthesis(
    raw: Path,
    out: Path,
    options: SynthesisOptions,
    run: RunOptions = RunOptions(),
) -> RunSummary:
    """Synthesize every photo under raw into out (see docs/formats.md); resumable.

    options: what is drawn and written; run: how (detector, workers, engine, resume, limit).
    """
    engine, workers, address = run.engine, run.workers, run.address
    if engine == "ray":
        from maskforge.core.ray_engine import import_ray

        import_ray()  # the install hint before any work
    raw, out = Path(raw), Path(out)
    check_folders(raw, out)
    boxes, limit, overwrite = run.boxes, run.limit, run.overwrite
    given_faces = read_boxes(boxes) if boxes else {}
    detector_args = run.detector_args
    if engine == "local" or not address:
        check_local_workers(workers)  # a cluster's Ray actors may be many more
        workers = workers or usable_cores()
    # Fail fast (model files, templates, option names) before starting workers or touching
    # out/. Only a run in this process needs the models here; workers load their own.
    in_process = engine == "local" and workers == 1
    probe = Synthesizer(options, **detector_args, load_models=in_process)
    run_info = {
        "maskforge_version": __version__,
        "input": str(raw.resolve()),
        "options": options.describe(),
        "detector": run.detector,
        "boxes": str(Path(boxes).resolve()) if boxes else None,
    }
    summary = _survey(raw, given_faces)  # before out/ is touched: refuses an empty input
    with _output_faults(out):
        out.mkdir(parents=True, exist_ok=True)
        with lock_output(out):
            done, journal_name = _prepare(out, run_info, overwrite, options)
            todo = islice(
                (
                    (str(p), rel, stem, given_faces.get(rel))
                    for p, rel, stem in plan_inputs(
                        raw, mixed=mixed_framing(options), draws=options.masks_per_face, done=done
                    )
                ),
                limit,
            )
            summary.already_done = min(len(done), summary.inputs)
            total = summary.inputs - summary.already_done
            if engine == "ray":
                results = _ray_results(todo, out, options, detector_args, workers, address)
            elif in_process:
                results = map(_photo_runner(probe, out), todo)
            else:
                results = _pool_results(todo, out, options, detector_args, workers)
            total = total if limit is None else min(total, limit)
            _record(results, out / journal_name, summary, total, run.progress)
            # An interrupted --overwrite run leaves the old synthesis.csv as it was; rerunning
            # it with --overwrite resumes from its own journal.
            if not (overwrite and summary.interrupted):
                finalize(out, overwrite)
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary


@contextmanager
def _output_faults(out: Path) -> Iterator[None]:
    """Turn a storage fault writing into out/ into core.outputs.StorageError, naming out where
    the fault names no file (the photos that follow would all fail the same way: they are left
    for the rerun, not recorded)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if not is_storage_fault(exc):
            raise
        raise StorageError(out, exc) from exc


def _prepare(
    out: Path, run_info: dict, overwrite: bool, options: SynthesisOptions
) -> tuple[DoneSet, str]:
    """Check that the run may resume into out, write its run file, tidy up after a killed
    run; (the inputs already done, with the stems they wrote under, the journal's name)."""
    killed = (out / JOURNAL).is_file() or (out / OVERWRITE_JOURNAL).is_file()
    defaults = {**SynthesisOptions().describe(), **UNRECORDED}
    resume_overwrite = check_resume(out, run_info, overwrite, defaults)
    journal_name = OVERWRITE_JOURNAL if overwrite else JOURNAL
    # --overwrite keeps the old run.json, synthesis.csv and journal until it finishes.
    run_file = OVERWRITE_RUN_FILE if overwrite else RUN_FILE
    atomic_write_text(out / run_file, json.dumps(run_info, indent=2) + "\n")
    if killed:  # the last run was killed: tidy up after it
        remove_stale_temporaries(out)
    if overwrite and not resume_overwrite:
        return DoneSet([]), journal_name
    draws, mixed = options.masks_per_face, mixed_framing(options)
    done = load_done(out, journal_name, not overwrite, draws=draws, per_face=mixed)
    return done, journal_name


def _record(
    results: Iterable[list[dict]],
    journal_path: Path,
    summary: RunSummary,
    total: int,
    progress: bool | None,
) -> None:
    """Append each photo's rows to the journal as they come (one write per photo), counting
    them in `summary`; Ctrl-C ends the loop with summary.interrupted set."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="img",
        desc="synthesize",
        disable=None if progress is None else not progress,
    )
    start = time.perf_counter()
    # A kill while the header was being written leaves an empty journal (repair_journal cut
    # the partial line): it needs the header too, or finalize would skip its first row.
    has_header = journal_path.is_file() and journal_path.stat().st_size > 0
    with open(journal_path, "a", encoding="utf-8", newline="") as journal:
        if not has_header:
            journal.write(",".join(CSV_COLUMNS) + "\n")
        try:
            for rows in results:
                journal.write(rows_text(rows))
                journal.flush()
                summary.add(rows)
                bar.update(1)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if hasattr(results, "close"):
                results.close()  # stop the engine's workers now, whatever ended the loop
            bar.close()
            summary.seconds = time.perf_counter() - start


def _survey(raw: Path, given_faces: dict) -> RunSummary:
    """A summary with the photos under raw counted, the --boxes rows that name none of them
    and the folders that could not be listed; an error when there is no photo at all."""
    skipped: list[str] = []
    matched: set[str] = set()
    inputs = 0
    for _, rel, _ in plan_inputs(raw, skipped):
        inputs += 1
        if rel in given_faces:
            matched.add(rel)
    if not inputs:
        where = f"; {len(skipped)} folder(s) could not be read: {skipped[0]}" if skipped else ""
        raise ValueError(
            f"No photos under {raw} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}{where}); "
            "nothing was written."
        )
    unmatched = sorted(k for k in given_faces if k not in matched)
    return RunSummary(
        inputs=inputs,
        boxes_unmatched=len(unmatched),
        boxes_unmatched_names=unmatched[:SHOW_NAMES],
        folders_skipped=skipped,
    )


def _pool_results(
    todo: Iterable[Task], out: Path, options: SynthesisOptions, detector_args: dict, workers: int
) -> Iterator[list[dict]]:
    """The rows of each photo, in order, from a local process pool; a photo that kills its
    worker (twice: the photos in flight are retried alone) gives an error row."""
    args = (options, detector_args, str(out))
    return pool_map(synthesis_worker, args, todo, workers, TASKS_PER_JOB, on_crash=_crash_rows)


def _crash_rows(task: Task, reason: str) -> list[dict]:
    """The synthesis.csv row of a photo that killed the worker processing it (twice)."""
    rel = task[1]
    return [{"input": rel, "group": rel, "status": "error", "reason": reason}]


def _ray_results(
    todo: Iterable[Task],
    out: Path,
    options: SynthesisOptions,
    detector_args: dict,
    workers: int | None,
    address: str | None,
) -> Iterator[list[dict]]:
    """The rows of each photo, in order, from Ray actors writing straight into out/; a photo
    that kills its actor (again, alone) gives an error row.

    Paths go absolute: actors run in other folders, on a cluster on other machines, which must
    see the input and output folders (and any model file given) at the same paths.
    """
    from maskforge.core.ray_engine import ray_map, ray_session

    # A generator, not a list: ray_map reads it a slice at a time, so the driver's memory does
    # not grow with the number of photos.
    tasks = ((os.path.abspath(p), rel, stem, given) for p, rel, stem, given in todo)
    first = next(tasks, None)
    if first is None:
        return  # nothing left to do: no need to start Ray
    tasks = chain([first], tasks)
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
            on_crash=_crash_rows,
        )
