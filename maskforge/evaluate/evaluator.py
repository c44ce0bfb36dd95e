"""Evaluate a trained run on a manifest or a folder of photos: predictions, metrics, report, plots.

`evaluate_run` is what `maskforge eval` calls. It writes into `runs/NAME/eval-<name>/`:
predictions.csv, report.json, report.md, confusion.png, roc.png, pr.png, calibration.png,
mistakes.png, gradcam.png and gradcam/*.jpg.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from maskforge import __version__
from maskforge.core.imageio import (
    ImageTooLargeError,
    UnreadableImageError,
    atomic_write_text,
    iter_image_files,
    read_image,
    write_image,
)
from maskforge.core.paths import display_path
from maskforge.dataset.manifest import read_manifest
from maskforge.learn.data import ManifestDataset, eval_transform
from maskforge.learn.models import CheckpointInfo
from maskforge.learn.runs import load_run_model, run_manifests_dir

SUBGROUP_COLUMNS = ("mask_type", "color", "wear", "source")
# More distinct colours than this are grouped into colour families in the subgroup table.
MAX_EXACT_COLORS = 12
MISTAKES_SHOWN = 16
THRESHOLD_RULE_TEXT = {
    "youden": "Youden's J (the cut that maximises sensitivity + specificity - 1)",
    "f1": "maximum F1 of the positive class",
}

Echo = Callable[[str], None]


def _quiet_echo(_: str) -> None:
    return None


def folder_frame(
    folder: Path, labels: Sequence[str] | str | None, classes: list[str]
) -> tuple[pd.DataFrame, str]:
    """A manifest-like frame of a folder's images and a note on how labels were assigned.

    labels: ["CLASS"] gives every image under folder (recursively) that class;
    ["SUBFOLDER=CLASS", ...] labels the images of each named subfolder; None or [] takes the
    subfolders named after the model's classes (other subfolders are ignored). `source` is
    the folder's name, or folder/subfolder with subfolders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"Not a folder: {folder}")
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    pairs = [x.split("=", 1) for x in labels if "=" in x]
    if (pairs and len(pairs) != len(labels)) or (len(labels) > 1 and not pairs):
        raise ValueError(
            f"Invalid --label {', '.join(labels)}: give one CLASS, or SUBFOLDER=CLASS pairs."
        )
    for cls in [x for x in labels if "=" not in x] + [c for _, c in pairs]:
        if cls not in classes:
            raise ValueError(
                f"Invalid label {cls!r}. The model's classes are {', '.join(classes)}."
            )
    top = folder.resolve().name
    rows: list[tuple[Path, str, str]] = []
    if labels and not pairs:
        rows = [(p, labels[0], top) for p in iter_image_files(folder)]
        note = f"all images labelled {labels[0]!r}"
    else:
        subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")
        mapping = dict(pairs) if pairs else {d: d for d in subdirs if d in classes}
        missing = [d for d in mapping if d not in subdirs]
        if missing:
            raise ValueError(f"{folder} has no subfolder {', '.join(missing)}.")
        if not mapping:
            raise ValueError(
                f"{folder} has no subfolder named after the model's classes "
                f"({', '.join(classes)}); pass --label CLASS to give all its images one class, "
                "or --label SUBFOLDER=CLASS for each subfolder."
            )
        for sub, cls in mapping.items():
            rows += [(p, cls, f"{top}/{sub}") for p in iter_image_files(folder / sub)]
        note = "labels " + ", ".join(f"{sub}/ = {cls}" for sub, cls in mapping.items())
        ignored = [d for d in subdirs if d not in mapping]
        if ignored:
            note += f" (ignored subfolders: {', '.join(ignored)})"
    if not rows:
        raise ValueError(f"No images found in {folder}.")
    # Not resolved: a folder of symlinks to photos elsewhere keeps its own relative paths.
    root = folder.absolute()
    frame = pd.DataFrame(
        {
            "path": [Path(p).absolute().relative_to(root).as_posix() for p, _, _ in rows],
            "label": [lab for _, lab, _ in rows],
            "source": [src for _, _, src in rows],
            "abspath": [str(Path(p).absolute()) for p, _, _ in rows],
        }
    )
    frame["group"] = frame["path"]
    return frame, note


# --------------------------------------------------------------------------- inference


class _TolerantDataset(ManifestDataset):
    """ManifestDataset that records unreadable images instead of failing the whole run.

    Items are (tensor (3, S, S), row index, error message or ""); a face box (left, top,
    right, bottom) per row, when given, crops the image before the eval transform.
    """

    def __init__(self, frame, classes, transform, boxes=None):
        super().__init__(frame, classes, transform)
        self.boxes = boxes
        self.size = transform.transforms[0].height

    def __getitem__(self, i: int):
        try:
            image = load_item(self.paths[i], None if self.boxes is None else self.boxes[i])
        except (UnreadableImageError, ImageTooLargeError) as exc:
            return torch.zeros(3, self.size, self.size), i, str(exc) or "unreadable"
        return self.transform(image=image)["image"], i, ""


def load_item(path: str | Path, box=None) -> np.ndarray:
    """Read an image (RGB uint8) and crop it to box = (left, top, right, bottom) if given."""
    image = read_image(path)
    if box is None:
        return image
    left, top, right, bottom = (int(v) for v in box)
    return np.ascontiguousarray(image[max(top, 0) : bottom, max(left, 0) : right])


def predict_frame(
    model: torch.nn.Module,
    info: CheckpointInfo,
    frame: pd.DataFrame,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
    boxes=None,
    desc: str = "predict",
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities (N, C) float64 for every row (NaN rows where unreadable) + errors."""
    from tqdm import tqdm

    from maskforge.learn.models import probabilities

    transform = eval_transform(info.img_size, info.mean, info.std)
    dataset = _TolerantDataset(frame, info.classes, transform, boxes)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    probs = np.full((len(frame), len(info.classes)), np.nan)
    errors = [""] * len(frame)
    model.eval()
    with torch.inference_mode():
        for images, index, errs in tqdm(loader, desc=desc, unit="batch", disable=None):
            out = probabilities(model(images.to(device, non_blocking=True))).cpu().numpy()
            for j, (i, err) in enumerate(zip(index.tolist(), errs, strict=True)):
                if err:
                    errors[i] = err
                else:
                    probs[i] = out[j]
    return probs, errors


# --------------------------------------------------------------------------- report helpers


def color_family(value: str) -> str:
    """A coarse colour name for '#rrggbb' (black, white, gray, red, orange, ..., pink)."""
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", str(value).strip())
    if not m:
        return str(value) or "(none)"
    r, g, b = (int(m.group(1)[i : i + 2], 16) / 255 for i in (0, 2, 4))
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.2:
        return "black"
    if s < 0.15:
        return "white" if v > 0.85 else "gray"
    hue = h * 360
    for limit, name in (
        (15, "red"),
        (45, "orange"),
        (70, "yellow"),
        (170, "green"),
        (200, "cyan"),
        (260, "blue"),
        (290, "purple"),
        (335, "pink"),
    ):
        if hue < limit:
            return name
    return "red"


def subgroup_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict]:
    """Subgroup columns present with a non-empty value; colours grouped when too many."""
    frame = frame.copy()
    used, notes = [], {}
    for col in SUBGROUP_COLUMNS:
        if col not in frame.columns:
            continue
        values = frame[col].fillna("").astype(str)
        if not (values != "").any():
            continue
        if col == "color" and values[values != ""].nunique() > MAX_EXACT_COLORS:
            frame[col] = [color_family(v) if v else "" for v in values]
            notes[col] = (
                f"{values[values != ''].nunique()} distinct colours, grouped into colour families"
            )
        used.append(col)
    return frame, used, notes


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci_text(ci: dict | None) -> str:
    if not ci or ci.get("low") is None:
        return "—"
    return f"{ci['low']:.3f}–{ci['high']:.3f}"


def _thumb(image: np.ndarray, side: int = 128) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _short(path: str, n: int = 24) -> str:
    name = Path(path).name
    return name if len(name) <= n else name[: n - 1] + "…"


@dataclass
class EvalResult:
    """What `evaluate_run` produced."""

    out_dir: Path
    report: dict
    messages: list[str] = field(default_factory=list)

    @property
    def report_md(self) -> Path:
        """Path of the readable report."""
        return self.out_dir / "report.md"


# --------------------------------------------------------------------------- main entry


def evaluate_run(
    run: Path | None = None,
    manifest: Path | None = None,
    folder: Path | None = None,
    label: Sequence[str] | str | None = None,
    out: Path | None = None,
    checkpoint: str = "best",
    threshold: float | None = None,
    threshold_rule: str = "youden",
    cam: int = 8,
    bootstrap: int = 1000,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    crop_faces: bool = False,
    echo: Echo = _quiet_echo,
) -> EvalResult:
    """Evaluate a run on a manifest (default: the run's test manifest) or a folder of photos.

    threshold: the operating threshold for binary models (default 0.5); the threshold chosen
    on the run's val manifest by threshold_rule is always reported alongside.
    """
    from maskforge.evaluate.metrics import THRESHOLD_RULES

    if manifest is not None and folder is not None:
        raise ValueError("Give either --manifest or --folder, not both.")
    if label and folder is None:
        raise ValueError("--label only applies with --folder.")
    if threshold_rule not in THRESHOLD_RULES:
        raise ValueError(
            f"Invalid threshold rule {threshold_rule!r}. Only {', '.join(THRESHOLD_RULES)}."
        )
    if threshold is not None and not 0 < threshold < 1:
        raise ValueError(f"Invalid threshold {threshold}; it must be between 0 and 1.")
    if cam < 0 or bootstrap < 0:
        raise ValueError("--cam and --bootstrap must be 0 or more.")

    messages: list[str] = []

    def say(text: str) -> None:
        messages.append(text)
        echo(text)

    run_dir, ckpt, model, info, dev = load_run_model(run, checkpoint, device, say)
    manifests_dir = run_manifests_dir(run_dir, info)

    # What to evaluate.
    if folder is not None:
        frame, note = folder_frame(folder, label, info.classes)
        name, data_desc = Path(folder).resolve().name, f"folder {display_path(folder)} ({note})"
    else:
        if manifest is None:
            if manifests_dir is None or not (manifests_dir / "test.csv").is_file():
                raise FileNotFoundError(
                    f"No test manifest found for run {run_dir} (config.json names no existing "
                    "manifests folder with test.csv); pass --manifest or --folder."
                )
            manifest, how = manifests_dir / "test.csv", "the run's test manifest"
        else:
            how = "given"
        frame = read_manifest(manifest)
        name, data_desc = Path(manifest).stem, f"{display_path(manifest)} ({how})"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "data"
    say(f"Evaluating on {data_desc}: {len(frame)} images")
    out_dir = Path(out) if out is not None else run_dir / f"eval-{name}"

    boxes, faceless = None, []
    if crop_faces:
        frame, boxes, faceless = _face_crops(frame, say)

    probs, errors = predict_frame(model, info, frame, dev, batch_size, workers, boxes, "eval")
    ok = np.array([not e for e in errors])
    if not ok.any():
        raise ValueError(f"None of the {len(frame)} images could be read; nothing to evaluate.")
    if (~ok).any():
        say(f"Skipped {int((~ok).sum())} unreadable image(s) (listed in predictions.csv)")

    # The threshold chosen on validation data (binary only).
    binary = len(info.classes) == 2
    val_choice = None
    if binary:
        val_choice = _val_threshold(
            model, info, manifests_dir, dev, batch_size, workers, threshold_rule, say
        )
    operating = 0.5 if threshold is None else float(threshold)

    report = _score(frame, probs, ok, errors, info, operating, val_choice, bootstrap, seed)
    report.update(
        {
            "maskforge_version": __version__,
            "run": display_path(run_dir),
            "checkpoint": display_path(ckpt),
            "model": {
                "arch": info.arch,
                "classes": info.classes,
                "img_size": info.img_size,
                "epoch": info.epoch,
                "mean": info.mean,
                "std": info.std,
            },
            "data": {
                **report["data"],
                "description": data_desc,
                "name": name,
                "crop_faces": bool(crop_faces),
                "n_no_face": len(faceless),
            },
            "no_face": faceless,
            "options": {
                "checkpoint": checkpoint,
                "threshold_rule": threshold_rule,
                "bootstrap": bootstrap,
                "seed": seed,
                "cam": cam,
            },
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rerun replaces the previous report; drop its Grad-CAM images so none are left over.
    for stale in (out_dir / "gradcam").glob("*.jpg"):
        stale.unlink()
    _write_predictions(
        out_dir / "predictions.csv", frame, probs, errors, info, operating, val_choice, boxes
    )
    report["files"] = _write_plots(
        out_dir, frame, probs, ok, info, operating, val_choice, report, boxes
    )
    if cam > 0:
        files, report["gradcam"] = _write_gradcam(
            out_dir, model, info, frame, probs, ok, operating, cam, seed, boxes
        )
        report["files"].update(files)
    report["files"]["predictions"] = "predictions.csv"
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=_json) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    return EvalResult(out_dir=out_dir, report=report, messages=messages)


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _face_crops(frame: pd.DataFrame, say: Echo) -> tuple[pd.DataFrame, list, list[str]]:
    """Detect the largest face per image and crop it like synthesize does.

    Returns the rows with a face (unreadable ones kept: the inference pass reports them), their
    crop boxes (None for unreadable) and the paths of the images without a face.
    """
    from tqdm import tqdm

    from maskforge.synth.faces import detect_faces

    boxes, keep = [], []
    for path in tqdm(frame["abspath"], desc="faces", unit="image", disable=None):
        try:
            found = detect_faces(read_image(path))
        except (UnreadableImageError, ImageTooLargeError):
            found = [{"crop": None}]
        keep.append(bool(found))
        boxes.append(found[0]["crop"] if found else None)
    keep = np.array(keep, dtype=bool)
    faceless = list(frame.loc[~keep, "path"])
    if faceless:
        say(f"No face found in {len(faceless)} image(s); they are left out (--crop-faces)")
    if not keep.any():
        raise ValueError(f"No face found in any of the {len(frame)} images (--crop-faces).")
    kept = frame[keep].reset_index(drop=True)
    return kept, [b for b, k in zip(boxes, keep, strict=True) if k], faceless


def _val_threshold(model, info, manifests_dir, dev, batch_size, workers, rule, say):
    from maskforge.evaluate.metrics import choose_threshold

    val_path = None if manifests_dir is None else manifests_dir / "val.csv"
    if val_path is None or not val_path.is_file():
        say("No val manifest for this run: no threshold chosen on val (0.5 only)")
        return {"threshold": None, "reason": "no val manifest found for the run"}
    val = read_manifest(val_path)
    val = val[val["label"].isin(info.classes)].reset_index(drop=True)
    probs, errors = predict_frame(model, info, val, dev, batch_size, workers, None, "val")
    ok = np.array([not e for e in errors])
    y = val["label"].map({c: i for i, c in enumerate(info.classes)}).to_numpy()[ok]
    try:
        choice = choose_threshold(y, probs[ok, 1], rule)
    except ValueError as exc:
        say(f"No threshold chosen on {display_path(val_path)}: {exc}")
        return {"threshold": None, "reason": str(exc), "manifest": display_path(val_path)}
    choice["manifest"] = display_path(val_path)
    say(
        f"Threshold {choice['threshold']:.3f} chosen on {display_path(val_path)} by "
        f"{THRESHOLD_RULE_TEXT[rule]} (reported beside 0.5)"
    )
    return choice


def _score(frame, probs, ok, errors, info, operating, val_choice, n_boot, seed) -> dict:
    from maskforge.evaluate.metrics import bootstrap_cis, classification_metrics, subgroup_table

    classes = info.classes
    scored = frame[ok].reset_index(drop=True)
    y = scored["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    p = probs[ok]
    groups = scored["group"].to_numpy() if "group" in scored.columns else None
    thresholds = {"operating": operating}
    if len(classes) == 2 and val_choice and val_choice.get("threshold") is not None:
        thresholds["val"] = val_choice["threshold"]
    metrics = {key: classification_metrics(y, p, classes, t) for key, t in thresholds.items()}
    cis = {}
    if n_boot:
        cis = bootstrap_cis(y, p, classes, thresholds, groups=groups, n_boot=n_boot, seed=seed)
    sub_frame, sub_cols, sub_notes = subgroup_columns(scored)
    table = subgroup_table(sub_frame, y, p, classes, sub_cols, operating)
    unreadable = [
        {"path": path, "reason": err}
        for path, err in zip(frame["path"], errors, strict=True)
        if err
    ]
    return {
        "task": "binary" if len(classes) == 2 else "multiclass",
        "data": {
            "n_images": int(len(frame)),
            "n_scored": int(ok.sum()),
            "n_unreadable": len(unreadable),
            "support": {c: int((y == i).sum()) for i, c in enumerate(classes)},
        },
        "thresholds": {
            "operating": operating,
            "val": val_choice,
        },
        "metrics": metrics,
        "confidence_intervals": {
            "method": _ci_method(n_boot, groups),
            **cis,
        },
        "subgroups": {
            "columns": sub_cols,
            "notes": sub_notes,
            "threshold": operating,
            "rows": json.loads(table.to_json(orient="records")) if len(table) else [],
        },
        "unreadable": unreadable,
    }


def _ci_method(n_boot: int, groups) -> str:
    if not n_boot:
        return "not computed (--bootstrap 0)"
    if groups is not None and len(set(groups)) < len(groups):
        unit = "whole groups (images made from one photo share a group)"
    else:
        unit = "images"
    return f"percentile bootstrap, {n_boot} resamples of {unit}, 95%"


def _write_predictions(path, frame, probs, errors, info, operating, val_choice, boxes) -> None:
    classes = info.classes
    out = frame.drop(columns=["abspath"]).copy()
    # Paths relative to the CSV's own folder, as in every maskforge CSV.
    base = Path(path).resolve().parent
    out["path"] = [Path(os.path.relpath(p, base)).as_posix() for p in frame["abspath"]]
    ok = np.array([not e for e in errors])
    out.insert(2, "status", np.where(ok, "ok", "unreadable"))
    out.insert(3, "reason", errors)
    if boxes is not None:  # --crop-faces: the face crop that was classified
        out.insert(4, "crop", [" ".join(map(str, b)) if b else "" for b in boxes])
    for i, c in enumerate(classes):
        out[f"p_{c}"] = probs[:, i]
    pred = _predict_labels(probs, classes, operating)
    out["pred"] = np.where(ok, pred, "")
    out["confidence"] = np.nanmax(np.where(ok[:, None], probs, 0.0), axis=1)
    out["correct"] = np.where(ok, out["pred"] == out["label"], False)
    if val_choice and val_choice.get("threshold") is not None:
        out["pred_val_threshold"] = np.where(
            ok, _predict_labels(probs, classes, val_choice["threshold"]), ""
        )
    atomic_write_text(path, out.to_csv(index=False, float_format="%.9g"))


def _predict_labels(probs: np.ndarray, classes: list[str], threshold: float) -> np.ndarray:
    """Class names (N,) from probabilities; binary uses p(positive) >= threshold."""
    filled = np.nan_to_num(probs, nan=0.0)
    if len(classes) == 2:
        idx = (filled[:, 1] >= threshold).astype(int)
    else:
        idx = filled.argmax(axis=1)
    return np.asarray(classes, dtype=object)[idx]


def _write_plots(out_dir, frame, probs, ok, info, operating, val_choice, report, boxes) -> dict:
    from maskforge.evaluate import plots

    classes = info.classes
    y = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()[ok]
    p = probs[ok]
    metrics = report["metrics"]["operating"]
    files = {}
    plots.confusion_plot(metrics["confusion_matrix"], classes, out_dir / "confusion.png")
    files["confusion"] = "confusion.png"
    points = {"0.5" if operating == 0.5 else "operating": operating}
    if val_choice and val_choice.get("threshold") is not None:
        points["val"] = val_choice["threshold"]
    counts = np.bincount(y, minlength=len(classes))
    if (counts > 0).sum() >= 2:
        plots.roc_plot(y, p, classes, out_dir / "roc.png", points)
        plots.pr_plot(y, p, classes, out_dir / "pr.png", points)
    else:
        only = classes[int(np.argmax(counts))]
        why = (
            f"Only one class ({only!r}) is present in this data, so there is no trade-off "
            "between classes to draw; see the accuracy (= recall of that class) instead."
        )
        plots.message_plot(out_dir / "roc.png", "ROC curve: undefined", why)
        plots.message_plot(out_dir / "pr.png", "Precision-recall curve: undefined", why)
    files["roc"], files["pr"] = "roc.png", "pr.png"
    plots.calibration_plot(y, p, classes, out_dir / "calibration.png")
    files["calibration"] = "calibration.png"

    # Most confident mistakes.
    pred = _predict_labels(probs, classes, operating)
    wrong = np.flatnonzero(ok & (pred != frame["label"].to_numpy()))
    conf = np.nanmax(np.nan_to_num(probs, nan=0.0), axis=1)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:MISTAKES_SHOWN]
    panels = []
    for i in wrong:
        image = load_item(frame["abspath"].iloc[i], None if boxes is None else boxes[i])
        caption = (
            f"true {frame['label'].iloc[i]} → {pred[i]} {conf[i]:.2f}\n"
            f"{_short(frame['path'].iloc[i])}"
        )
        panels.append((_thumb(image), caption))
    if panels:
        plots.image_grid(panels, out_dir / "mistakes.png", ncols=4, title="Most confident mistakes")
    else:
        plots.message_plot(
            out_dir / "mistakes.png", "Most confident mistakes", "No mistakes at this threshold."
        )
    files["mistakes"] = "mistakes.png"
    report["mistakes"] = [
        {
            "path": frame["path"].iloc[i],
            "label": frame["label"].iloc[i],
            "pred": pred[i],
            "confidence": float(conf[i]),
        }
        for i in wrong
    ]
    return files


def _cam_sample(ok, correct, conf, y_true, n, seed) -> tuple[np.ndarray, np.ndarray]:
    """Up to n//2 (rounded up) most confident mistakes, the rest correct ones sampled per class."""
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(ok & ~correct)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][: (n + 1) // 2]
    right = np.flatnonzero(ok & correct)
    # Round-robin over true classes so every class shows up among the correct examples.
    by_class = [rng.permutation(right[y_true[right] == c]) for c in np.unique(y_true[right])]
    picked: list[int] = []
    need = n - len(wrong)
    depth = 0
    while len(picked) < need and any(depth < len(b) for b in by_class):
        picked += [int(b[depth]) for b in by_class if depth < len(b)][: need - len(picked)]
        depth += 1
    return wrong, np.asarray(picked, dtype=np.int64)


def _write_gradcam(out_dir, model, info, frame, probs, ok, operating, n, seed, boxes):
    """Grad-CAM pairs in gradcam/ and the gradcam.png gallery; returns (files, items)."""
    from maskforge.evaluate import plots
    from maskforge.evaluate.cam import cam_overlay, gradcam_maps

    classes = info.classes
    index = {c: i for i, c in enumerate(classes)}
    pred = _predict_labels(probs, classes, operating)
    labels = frame["label"].to_numpy()
    correct = pred == labels
    conf = np.nanmax(np.nan_to_num(probs, nan=0.0), axis=1)
    y_true = np.array([index[v] for v in labels])
    wrong, right = _cam_sample(ok, correct, conf, y_true, n, seed)
    chosen = np.concatenate([wrong, right]).astype(np.int64)
    if chosen.size == 0:
        return {}, []
    transform = eval_transform(info.img_size, info.mean, info.std)
    shown, tensors = [], []
    for i in chosen:
        image = load_item(frame["abspath"].iloc[i], None if boxes is None else boxes[i])
        tensors.append(transform(image=image)["image"])
        # What the model saw: the eval transform's resize, before normalisation.
        shown.append(
            cv2.resize(image, (info.img_size, info.img_size), interpolation=cv2.INTER_AREA)
        )
    targets = [index[pred[i]] for i in chosen]
    device = next(model.parameters()).device
    maps = gradcam_maps(model, torch.stack(tensors).to(device), targets)
    cam_dir = out_dir / "gradcam"
    panels, listed = [], []
    for k, i in enumerate(chosen):
        overlay = cam_overlay(shown[k], maps[k])
        kind = "wrong" if k < len(wrong) else "right"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(frame["path"].iloc[i]).stem)
        name = f"{k:02d}_{kind}_{stem}.jpg"
        write_image(cam_dir / name, np.hstack([shown[k], overlay]))
        caption = (
            f"{'WRONG' if kind == 'wrong' else 'right'}: true {labels[i]}\n"
            f"pred {pred[i]} {conf[i]:.2f}"
        )
        # An all-zero map: no region of the last feature map raised this class's score.
        what = "nothing raised it" if maps[k].max() < 1e-6 else _short(frame["path"].iloc[i])
        panels.append((_thumb(shown[k], 160), caption))
        panels.append((_thumb(overlay, 160), f"Grad-CAM for {pred[i]}\n{what}"))
        listed.append(
            {
                "file": f"gradcam/{name}",
                "path": frame["path"].iloc[i],
                "label": labels[i],
                "pred": pred[i],
                "correct": kind == "right",
            }
        )
    plots.image_grid(
        panels,
        out_dir / "gradcam.png",
        ncols=4,
        title="Grad-CAM: where the model looked (red = strongest evidence)",
    )
    return {"gradcam": "gradcam.png", "gradcam_dir": "gradcam/"}, listed


# --------------------------------------------------------------------------- markdown


def render_markdown(report: dict) -> str:
    """The readable report.md of an evaluation (plots linked relative to the report)."""
    lines: list[str] = []
    add = lines.append
    model, data = report["model"], report["data"]
    binary = report["task"] == "binary"
    classes = model["classes"]
    add(f"# Evaluation: {Path(report['run']).name} on {data['name']}")
    add("")
    add(
        f"- **Model**: `{report['checkpoint']}` — {model['arch']}, epoch {model['epoch']}, "
        f"input {model['img_size']} px, classes {', '.join(classes)}"
    )
    support = ", ".join(f"{c} {n}" for c, n in data["support"].items())
    add(f"- **Data**: {data['description']} — {data['n_scored']} images scored ({support})")
    if data["n_unreadable"]:
        add(
            f"- **Skipped**: {data['n_unreadable']} unreadable image(s), listed in "
            "`predictions.csv` (status `unreadable`) and in report.json"
        )
    if data.get("crop_faces"):
        add(
            "- Faces were detected and cropped as `synthesize` does before classifying "
            f"(--crop-faces); {data['n_no_face']} image(s) without a face were left out "
            "(listed in report.json under no_face)"
        )
    th = report["thresholds"]
    val = th.get("val") or {}
    if binary:
        add(f"- **Positive class**: {classes[1]} (predicted when p({classes[1]}) ≥ threshold)")
        if val.get("threshold") is not None:
            add(
                f"- **Threshold chosen on validation**: {val['threshold']:.3f}, by "
                f"{THRESHOLD_RULE_TEXT[val['rule']]} on `{val['manifest']}` "
                f"({val['n']} images). Results at {th['operating']:g} and at this threshold "
                "are shown side by side; to use it: `maskforge predict --threshold "
                f"{val['threshold']:.3f}`."
            )
        else:
            add(f"- **Threshold chosen on validation**: none ({val.get('reason', 'n/a')})")
    add("")
    add("## Headline")
    add("")
    metrics = report["metrics"]
    cis = report["confidence_intervals"]
    if binary:
        names = [
            ("accuracy", "Accuracy"),
            ("precision", f"Precision ({classes[1]})"),
            ("recall", f"Recall / sensitivity ({classes[1]})"),
            ("specificity", f"Specificity (recall of {classes[0]})"),
            ("f1", f"F1 ({classes[1]})"),
            ("balanced_accuracy", "Balanced accuracy"),
            ("roc_auc", "ROC-AUC"),
            ("pr_auc", "PR-AUC (average precision)"),
            ("brier", "Brier score (lower is better)"),
        ]
    else:
        names = [
            ("accuracy", "Accuracy"),
            ("balanced_accuracy", "Balanced accuracy"),
            ("macro_precision", "Macro precision"),
            ("macro_recall", "Macro recall"),
            ("macro_f1", "Macro F1"),
            ("weighted_f1", "Weighted F1"),
            ("roc_auc_ovr", "ROC-AUC (one-vs-rest, macro)"),
            ("log_loss", "Log loss"),
        ]
    keys = list(metrics)
    header = "| metric |"
    rule = "|---|"
    for key in keys:
        t = metrics[key].get("threshold")
        title = (
            "value" if not binary else (f"at {t:g}" if key == "operating" else f"at {t:.3f} (val)")
        )
        header += f" {title} | 95% CI |"
        rule += "---:|---|"
    add(header)
    add(rule)
    for key, title in names:
        row = f"| {title} |"
        for k in keys:
            row += f" {_fmt(metrics[k].get(key))} | {_ci_text(cis.get(k, {}).get(key))} |"
        add(row)
    add("")
    add(
        f"Confidence intervals: {cis['method']}. ROC-AUC, PR-AUC and the Brier score do not "
        "depend on the threshold."
        if binary
        else f"Confidence intervals: {cis['method']}. The predicted class is the most probable "
        "one; macro averages are over the classes where each metric is defined."
    )
    undefined = metrics["operating"].get("undefined", {})
    if undefined:
        add("")
        add("Undefined here (shown as —):")
        for text in undefined.values():
            add(f"- {text[0].upper() + text[1:]}")
    if not binary:
        add("")
        add("### Per class")
        add("")
        add("| class | support | precision | recall | F1 | ROC-AUC (vs rest) |")
        add("|---|---:|---:|---:|---:|---:|")
        for c, m in metrics["operating"]["per_class"].items():
            add(
                f"| {c} | {m['support']} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                f"{_fmt(m['f1'])} | {_fmt(m['roc_auc'])} |"
            )
    files = report["files"]
    add("")
    add("## Confusion matrix")
    add("")
    add(f"![confusion matrix]({files['confusion']})")
    add("")
    add(
        "How to read this: rows are the true class, columns the predicted class; the diagonal is "
        "correct. The right panel shows each row as percentages, i.e. the recall of each class "
        + (f"(at threshold {th['operating']:g})." if binary else "(predicted class = argmax).")
    )
    add("")
    curves = sum(1 for n in data["support"].values() if n > 0) >= 2
    add("## ROC curve")
    add("")
    if curves:
        add(f"![ROC curve]({files['roc']})")
        add("")
        add(
            "How to read this: each point is a threshold; up and to the left is better. The "
            "area under the curve (AUC) is the chance that a random positive scores above a "
            "random negative (0.5 = guessing, 1 = perfect). Markers show the thresholds used "
            "above."
        )
        add("")
        add("## Precision-recall curve")
        add("")
        add(f"![precision-recall curve]({files['pr']})")
        add("")
        add(
            "How to read this: precision (how many predicted positives are right) against "
            "recall (how many positives are found); the dashed line is the share of positives, "
            "what guessing achieves. More informative than ROC when one class is rare."
        )
    else:
        add(
            "Not drawn, and no precision-recall curve either: the data holds only one class, so "
            "there is no trade-off between classes to show. Accuracy here is the share of "
            "images given their true class."
        )
    add("")
    add("## Calibration")
    add("")
    add(f"![calibration curve]({files['calibration']})")
    add("")
    add(
        "How to read this: if the model says 0.8, about 80% of those images should really be "
        "positive; points on the diagonal mean well calibrated, below it over-confident. The "
        "histogram shows how many images got each predicted probability."
    )
    sub = report["subgroups"]
    add("")
    add("## Subgroups")
    add("")
    if sub["rows"]:
        add(
            f"Metrics per value of {', '.join(sub['columns'])} at threshold "
            f"{sub['threshold']:g}. Accuracy has a 95% Wilson interval; small groups have wide "
            "intervals, so do not over-read differences between them."
        )
        for col, note in sub["notes"].items():
            add(f"({col}: {note}.)")
        add("")
        if binary:
            add(
                f"| column | value | n | n {classes[0]} | n {classes[1]} | accuracy (95% CI) | "
                f"recall {classes[1]} | specificity | F1 | ROC-AUC |"
            )
            add("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
            for r in sub["rows"]:
                acc = (
                    f"{_fmt(r['accuracy'])} ({_fmt(r['accuracy_low'], 2)}–"
                    f"{_fmt(r['accuracy_high'], 2)})"
                )
                add(
                    f"| {r['column']} | {r['value']} | {r['n']} | {r[f'n_{classes[0]}']} | "
                    f"{r[f'n_{classes[1]}']} | {acc} | {_fmt(r['recall'])} | "
                    f"{_fmt(r['specificity'])} | {_fmt(r['f1'])} | {_fmt(r['roc_auc'])} |"
                )
        else:
            cols = " | ".join(f"recall {c}" for c in classes)
            add(f"| column | value | n | accuracy (95% CI) | {cols} | macro F1 |")
            add("|---|---|---:|---|" + "---:|" * len(classes) + "---:|")
            for r in sub["rows"]:
                acc = (
                    f"{_fmt(r['accuracy'])} ({_fmt(r['accuracy_low'], 2)}–"
                    f"{_fmt(r['accuracy_high'], 2)})"
                )
                recalls = " | ".join(_fmt(r[f"recall_{c}"]) for c in classes)
                add(
                    f"| {r['column']} | {r['value']} | {r['n']} | {acc} | {recalls} | "
                    f"{_fmt(r['macro_f1'])} |"
                )
        add("")
        add(
            "— means undefined for that subgroup (e.g. specificity where it holds no "
            f"{classes[0]} images)."
        )
    else:
        add("No subgroup columns (mask_type, color, wear, source) with values in this data.")
    add("")
    add("## Most confident mistakes")
    add("")
    add(f"![most confident mistakes]({files['mistakes']})")
    add("")
    add(
        "How to read this: the wrong predictions the model was most sure of (caption: true "
        "class → predicted class and its probability). Look for label errors, odd crops, or a "
        "pattern such as one mask type or lighting."
    )
    if "gradcam" in files:
        add("")
        add("## Grad-CAM")
        add("")
        add(f"![Grad-CAM overlays]({files['gradcam']})")
        add("")
        add(
            "How to read this: each image is followed by its heat map for the predicted class; "
            "red marks the regions that pushed the model towards that class. A sound model "
            "looks at the mouth and nose region (the mask or its absence), not the background, "
            "hair or image borders. Mistakes come first, then correct examples. Full-size pairs "
            "are in `gradcam/`."
        )
    add("")
    add("## Files")
    add("")
    add(
        "- `predictions.csv`: one row per image: path, label, status, p_<class>, pred, "
        "confidence, correct" + (", pred_val_threshold" if val.get("threshold") else "")
    )
    add("- `report.json`: every number in this report")
    add("")
    return "\n".join(lines)
