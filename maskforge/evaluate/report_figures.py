"""The figures of an evaluation: confusion, ROC, PR, calibration, the mistakes gallery, Grad-CAM.

Each writer draws into the report folder (through `charts`) and returns the file names it wrote,
relative to that folder, for the report's `files`.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import torch

from maskforge.core.imageio import write_image
from maskforge.evaluate.inference import load_item
from maskforge.evaluate.scoring import predict_labels
from maskforge.learn.transforms import eval_transform

MISTAKES_SHOWN = 16


def write_plots(
    out_dir, frame, probs, ok, info, operating, val_choice, confusion, boxes
) -> tuple[dict, list[dict]]:
    """confusion.png, roc.png, pr.png, calibration.png and mistakes.png; returns (files, mistakes).

    confusion: the confusion matrix at the operating threshold (rows true, columns predicted);
    boxes: the face crop per row (--crop-faces) or None. mistakes lists the wrong predictions
    mistakes.png shows, most confident first.
    """
    from maskforge.evaluate import charts

    classes = info.classes
    y = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()[ok]
    p = probs[ok]
    files = {}
    charts.confusion_plot(confusion, classes, out_dir / "confusion.png")
    files["confusion"] = "confusion.png"
    points = {"0.5" if operating == 0.5 else "operating": operating}
    if val_choice and val_choice.get("threshold") is not None:
        points["val"] = val_choice["threshold"]
    counts = np.bincount(y, minlength=len(classes))
    if (counts > 0).sum() >= 2:
        charts.roc_plot(y, p, classes, out_dir / "roc.png", points)
        charts.pr_plot(y, p, classes, out_dir / "pr.png", points)
    else:
        only = classes[int(np.argmax(counts))]
        why = (
            f"Only one class ({only!r}) is present in this data, so there is no trade-off "
            "between classes to draw; see the accuracy (= recall of that class) instead."
        )
        charts.message_plot(out_dir / "roc.png", "ROC curve: undefined", why)
        charts.message_plot(out_dir / "pr.png", "Precision-recall curve: undefined", why)
    files["roc"], files["pr"] = "roc.png", "pr.png"
    charts.calibration_plot(y, p, classes, out_dir / "calibration.png")
    files["calibration"] = "calibration.png"
    mistakes = _write_mistakes(out_dir, frame, probs, ok, classes, operating, boxes)
    files["mistakes"] = "mistakes.png"
    return files, mistakes


def _write_mistakes(out_dir, frame, probs, ok, classes, operating, boxes) -> list[dict]:
    """mistakes.png: the most confident wrong predictions (or a note that there are none)."""
    from maskforge.evaluate import charts

    pred = predict_labels(probs, classes, operating)
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
        charts.image_grid(
            panels, out_dir / "mistakes.png", ncols=4, title="Most confident mistakes"
        )
    else:
        charts.message_plot(
            out_dir / "mistakes.png", "Most confident mistakes", "No mistakes at this threshold."
        )
    return [
        {
            "path": frame["path"].iloc[i],
            "label": frame["label"].iloc[i],
            "pred": pred[i],
            "confidence": float(conf[i]),
        }
        for i in wrong
    ]


def cam_sample(ok, correct, conf, y_true, n, seed) -> tuple[np.ndarray, np.ndarray]:
    """Up to n//2 (rounded up) most confident mistakes, the rest correct ones sampled per class.

    ok, correct: (N,) bool; conf: (N,) float confidence of the prediction; y_true: (N,) int.
    Returns (wrong, right): row indices, mistakes most confident first, then correct examples
    drawn round-robin over the true classes with a generator seeded by seed.
    """
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


def write_gradcam(out_dir, model, info, frame, probs, ok, operating, n, seed, boxes):
    """Grad-CAM pairs in gradcam/ and the gradcam.png gallery; returns (files, items)."""
    from maskforge.evaluate import charts
    from maskforge.evaluate.cam import cam_overlay, gradcam_maps

    classes = info.classes
    index = {c: i for i, c in enumerate(classes)}
    pred = predict_labels(probs, classes, operating)
    labels = frame["label"].to_numpy()
    correct = pred == labels
    conf = np.nanmax(np.nan_to_num(probs, nan=0.0), axis=1)
    y_true = np.array([index[v] for v in labels])
    wrong, right = cam_sample(ok, correct, conf, y_true, n, seed)
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
    charts.image_grid(
        panels,
        out_dir / "gradcam.png",
        ncols=4,
        title="Grad-CAM: where the model looked (red = strongest evidence)",
    )
    return {"gradcam": "gradcam.png", "gradcam_dir": "gradcam/"}, listed


def _thumb(image: np.ndarray, side: int = 128) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _short(path: str, n: int = 24) -> str:
    name = Path(path).name
    return name if len(name) <= n else name[: n - 1] + "…"
