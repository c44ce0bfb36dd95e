"""Classify every face in photos, folders and videos; write a CSV and annotated copies.

Faces are found with the same detector cascade as `synthesize` (maskforge.synth.faces) and
classified on the same square crop (maskforge.synth.geometry.square_crop), with the eval
preprocessing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from maskforge.choices import NO_FACE_CHOICES
from maskforge.core.imageio import (
    IMAGE_EXTENSIONS,
    ImageTooLargeError,
    UnreadableImageError,
    atomic_write_text,
    read_image,
    write_image,
)
from maskforge.synth.faces import detect_faces

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
# Box colours (RGB) per class; other class names take the palette in order.
CLASS_COLORS = {"unmasked": (230, 40, 40), "masked": (40, 190, 70), "incorrect": (245, 150, 0)}
PALETTE = [(60, 120, 240), (200, 60, 200), (0, 190, 190), (150, 110, 60)]
SMALL_COLOR = (160, 160, 160)
CSV_NAME = "predictions.csv"

Echo = Callable[[str], None]


def class_color(name: str, classes: Sequence[str]) -> tuple[int, int, int]:
    """Drawing colour of a class (RGB)."""
    if name in CLASS_COLORS:
        return CLASS_COLORS[name]
    others = [c for c in classes if c not in CLASS_COLORS]
    return PALETTE[others.index(name) % len(PALETTE)] if name in others else PALETTE[0]


def draw_box(image: np.ndarray, box, text: str, color) -> None:
    """Draw a labelled box in place on RGB uint8; line width and text scale follow the image."""
    h, w = image.shape[:2]
    thick = max(2, round(max(h, w) / 300))
    # Face boxes of tight crops run off the frame; draw the visible part so every edge shows.
    left, top, right, bottom = (int(v) for v in box)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, w - 1), min(bottom, h - 1)
    cv2.rectangle(image, (left, top), (right, bottom), color, thick)
    scale = max(0.4, min(1.2, (right - left) / 160))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    # Label above the box, or inside its top when there is no room above.
    y0 = top - th - base - 2 if top - th - base - 2 >= 0 else top + thick
    x0 = min(max(left, 0), max(w - tw - 4, 0))
    cv2.rectangle(image, (x0, y0), (x0 + tw + 4, y0 + th + base + 2), color, -1)
    cv2.putText(
        image,
        text,
        (x0 + 2, y0 + th + 1),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )


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


class _Classifier:
    """Classifies face crops with a run's model: RGB crops -> (class names, probabilities)."""

    def __init__(self, model, info, device, threshold: float):
        from maskforge.learn.data import eval_transform

        self.model, self.info, self.device = model, info, device
        self.threshold = threshold
        self.transform = eval_transform(info.img_size, info.mean, info.std)

    def __call__(self, crops: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
        from maskforge.learn.models import probabilities

        if not crops:
            return [], np.zeros((0, len(self.info.classes)))
        x = torch.stack([self.transform(image=c)["image"] for c in crops]).to(self.device)
        with torch.inference_mode():
            probs = probabilities(self.model(x)).cpu().numpy().astype(np.float64)
        if len(self.info.classes) == 2:
            idx = (probs[:, 1] >= self.threshold).astype(int)
        else:
            idx = probs.argmax(axis=1)
        return [self.info.classes[i] for i in idx], probs


def _face_size(box) -> int:
    return int(min(box[2] - box[0], box[3] - box[1]))


def _annotate(rgb, classify, detector, min_face, classes, no_face="skip"):
    """Rows (without file/frame) and the annotated copy of one image or frame."""
    faces = detect_faces(rgb, detector)
    canvas = rgb.copy()
    if not faces and no_face == "whole":
        # dlib's detectors miss many masked faces (the mask hides what they look for); a tight
        # face photo is what the model was trained on anyway.
        (name,), probs = classify([rgb])
        h, w = rgb.shape[:2]
        row = {
            "status": "whole_image",
            "reason": "no face found; the whole image was classified",
            "box": f"0 0 {w} {h}",
            "class": name,
            "probability": float(probs[0][classes.index(name)]),
        }
        row.update({f"p_{c}": float(v) for c, v in zip(classes, probs[0], strict=True)})
        label = f"{name} {row['probability']:.2f} (whole)"
        draw_box(canvas, (0, 0, w - 1, h - 1), label, class_color(name, classes))
        return [row], canvas
    if not faces:
        return [{"status": "no_face", "reason": "no face found"}], canvas
    usable = [k for k, f in enumerate(faces) if _face_size(f["box"]) >= min_face]
    crops = []
    for k in usable:
        left, top, right, bottom = faces[k]["crop"]
        crops.append(np.ascontiguousarray(rgb[max(top, 0) : bottom, max(left, 0) : right]))
    names, probs = classify(crops)
    results = dict(zip(usable, zip(names, probs, strict=True), strict=True))
    rows = []
    for k, f in enumerate(faces):
        row = {"face": k, "box": " ".join(str(v) for v in f["box"]), "detector": f["detector"]}
        if k in results:
            name, p = results[k]
            row.update(
                {"status": "ok", "class": name, "probability": float(p[classes.index(name)])}
            )
            row.update({f"p_{c}": float(v) for c, v in zip(classes, p, strict=True)})
            label = f"{name} {row['probability']:.2f}"
            draw_box(canvas, f["box"], label, class_color(name, classes))
        else:
            row["status"] = "too_small"
            row["reason"] = f"face is {_face_size(f['box'])} px, below --min-face {min_face}"
            draw_box(canvas, f["box"], "too small", SMALL_COLOR)
        rows.append(row)
    return rows, canvas


def collect_inputs(inputs: Sequence[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(file, output name relative to out_dir) for every image/video of the inputs, in order.

    Folders are searched recursively (hidden entries and out_dir skipped); a folder's files are
    written under out_dir/<folder name>/, single files directly in out_dir.
    """
    out_res = Path(out_dir).resolve()
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise FileNotFoundError(f"Input not found: {item}")
        if item.is_file():
            found.append((item, Path(item.name)))
            continue
        if item.resolve() == out_res:
            raise ValueError(f"--out {out_dir} is the input folder {item}; choose another --out.")
        for path in _walk(item, out_res):
            found.append((path, Path(item.resolve().name) / path.relative_to(item)))
    return found


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


def predict_inputs(
    inputs: Sequence[Path],
    out: Path = Path("annotated"),
    run: Path | None = None,
    checkpoint: str = "best",
    threshold: float = 0.5,
    every: int = 1,
    min_face: int = 24,
    detector: str = "cascade",
    device: str = "auto",
    echo: Echo | None = None,
    no_face: str = "skip",
) -> PredictSummary:
    """Detect and classify every face in images, folders and videos.

    Writes out/predictions.csv (one row per face, and one per image or frame without a usable
    face) and annotated copies: out/<name> for images, out/<stem>.mp4 for videos (every
    `every`-th frame, at fps / every). Unreadable files and too-small faces are recorded.
    no_face: "skip" records an image or frame without a face as no_face; "whole" classifies
    the whole image instead (status whole_image).
    """
    from tqdm import tqdm

    from maskforge.core.paths import display_path
    from maskforge.learn.runs import load_run_model

    if not inputs:
        raise ValueError("Give at least one image, folder or video.")
    if every < 1 or min_face < 1:
        raise ValueError("--every and --min-face must be at least 1.")
    if not 0 < threshold < 1:
        raise ValueError(f"Invalid threshold {threshold}; it must be between 0 and 1.")
    if no_face not in NO_FACE_CHOICES:
        raise ValueError(f"Invalid no_face {no_face!r}; use {' or '.join(NO_FACE_CHOICES)}.")
    echo = echo or (lambda _: None)
    out = Path(out)
    files = collect_inputs(inputs, out)
    if not files:
        raise ValueError(f"No images or videos found in {', '.join(map(str, inputs))}.")
    _, _, model, info, dev = load_run_model(run, checkpoint, device, echo)
    classes = list(info.classes)
    classify = _Classifier(model, info, dev, threshold)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(out_dir=out, csv_path=out / CSV_NAME)
    rows: list[dict] = []
    used: set[Path] = set()
    base = out.resolve()

    def rel(path: Path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), base)).as_posix()

    for path, name in tqdm(files, desc="predict", unit="file", disable=None):
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            target = _unique(name.with_suffix(".mp4"), used)
            new = _video(path, out / target, classify, detector, min_face, classes, every, no_face)
            summary.videos += 1
        else:
            suffix = (
                path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
            )
            target = _unique(name.with_suffix(suffix), used)
            new = _image(path, out / target, classify, detector, min_face, classes, no_face)
            summary.images += 1
        for row in new:
            row["file"] = rel(path)
            if row["status"] != "unreadable":
                row["annotated"] = rel(out / target)
        if any(r["status"] != "unreadable" for r in new):
            summary.annotated.append(out / target)
        rows += new

    frame = _rows_frame(rows, classes)
    atomic_write_text(summary.csv_path, frame.to_csv(index=False, float_format="%.6f"))
    status = frame["status"]
    summary.faces = int((status == "ok").sum())
    summary.whole_images = int((status == "whole_image").sum())
    summary.by_class = Counter(frame.loc[status.isin(["ok", "whole_image"]), "class"])
    summary.too_small = int((status == "too_small").sum())
    summary.no_face = int((status == "no_face").sum())
    summary.unreadable = int((status == "unreadable").sum())
    summary.frames = int(
        frame.loc[frame["frame"].notna(), ["file", "frame"]].drop_duplicates().shape[0]
    )
    echo(f"Wrote {display_path(summary.csv_path)} and annotated copies in {display_path(out)}")
    return summary


def _rows_frame(rows: list[dict], classes: list[str]) -> pd.DataFrame:
    columns = [
        "file",
        "frame",
        "face",
        "status",
        "box",
        "class",
        "probability",
        *[f"p_{c}" for c in classes],
        "detector",
        "annotated",
        "reason",
    ]
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=columns)
    for col in ("frame", "face"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _image(path, target, classify, detector, min_face, classes, no_face="skip") -> list[dict]:
    try:
        rgb = read_image(path)
    except (UnreadableImageError, ImageTooLargeError) as exc:
        return [{"status": "unreadable", "reason": str(exc)}]
    rows, canvas = _annotate(rgb, classify, detector, min_face, classes, no_face)
    write_image(target, canvas)
    return rows


def _video(
    path, target, classify, detector, min_face, classes, every, no_face="skip"
) -> list[dict]:
    """Rows for every processed frame; the annotated video is written atomically."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        return [{"status": "unreadable", "reason": "OpenCV cannot open this video"}]
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp{target.suffix}")
    writer = None
    rows: list[dict] = []
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if index % every == 0:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                new, canvas = _annotate(rgb, classify, detector, min_face, classes, no_face)
                for row in new:
                    row["frame"] = index
                rows += new
                if writer is None:
                    h, w = canvas.shape[:2]
                    writer = cv2.VideoWriter(
                        str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), max(fps / every, 1.0), (w, h)
                    )
                    if not writer.isOpened():
                        raise OSError(f"OpenCV cannot write the annotated video {target}")
                writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            index += 1
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not rows:
        tmp.unlink(missing_ok=True)
        return [{"status": "unreadable", "reason": "the video has no readable frames"}]
    os.replace(tmp, target)
    return rows
