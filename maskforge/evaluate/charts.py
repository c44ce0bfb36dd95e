"""Evaluation plots as PNG files: confusion matrix, ROC, PR, calibration, image galleries.

Figures are built on `matplotlib.figure.Figure` objects (no pyplot state) and saved atomically.
`y` is (N,) int class indices, `probs` (N, C) class probabilities (binary: column 1 positive).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

# scikit-learn's displays import pyplot; a headless backend unless the caller chose one already.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import CalibrationDisplay  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    precision_recall_curve,
    roc_curve,
)

from maskforge.core.imageio import atomic_write_bytes  # noqa: E402

# Colours of the operating points marked on curves, by threshold name.
_POINT_STYLE = {"0.5": ("o", "black"), "val": ("s", "tab:red")}


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Render a figure to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def message_plot(path: Path, title: str, message: str) -> Path:
    """A small PNG that says why a plot could not be drawn (keeps the report's layout)."""
    fig = Figure(figsize=(5, 2.2))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, _wrap(message, 60), ha="center", va="center", fontsize=10, wrap=True)
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def confusion_plot(cm: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> Path:
    """Counts and row-normalised (recall per true class) confusion matrices side by side."""
    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, counts / np.maximum(rows, 1), np.nan)
    side = 3.2 + 0.6 * len(classes)
    fig = Figure(figsize=(2 * side + 1, side))
    ax1, ax2 = fig.subplots(1, 2)
    ConfusionMatrixDisplay(counts, display_labels=list(classes)).plot(
        ax=ax1, cmap="Blues", values_format="d", colorbar=False
    )
    ax1.set_title("Counts")
    ConfusionMatrixDisplay(norm, display_labels=list(classes)).plot(
        ax=ax2, cmap="Blues", values_format=".0%", colorbar=False, im_kw={"vmin": 0, "vmax": 1}
    )
    ax2.set_title("Share of each true class (rows sum to 100%)")
    fig.tight_layout()
    return save_figure(fig, path)


def _operating_points(ax, y: np.ndarray, score: np.ndarray, thresholds: dict, kind: str) -> None:
    """Mark where each named threshold sits on a ROC (kind="roc") or PR (kind="pr") curve."""
    for name, t in thresholds.items():
        pred = score >= t
        tp = int((pred & (y == 1)).sum())
        fp = int((pred & (y == 0)).sum())
        pos, neg = int((y == 1).sum()), int((y == 0).sum())
        marker, color = _POINT_STYLE.get(name, ("D", "tab:green"))
        label = f"threshold {t:.3g}" + (" (chosen on val)" if name == "val" else "")
        if kind == "roc":
            x, yv = fp / max(neg, 1), tp / max(pos, 1)
        else:
            if tp + fp == 0:
                continue
            x, yv = tp / max(pos, 1), tp / (tp + fp)
        ax.plot([x], [yv], marker=marker, color=color, linestyle="none", markersize=8, label=label)


def roc_plot(y, probs, classes: Sequence[str], path: Path, thresholds: dict | None = None) -> Path:
    """ROC curve (binary) or one-vs-rest ROC curves (more classes), with operating points."""
    y = np.asarray(y)
    probs = np.asarray(probs)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    if len(classes) == 2:
        RocCurveDisplay.from_predictions(
            y,
            probs[:, 1],
            pos_label=1,
            name=f"{classes[1]} vs {classes[0]}",
            ax=ax,
            plot_chance_level=True,
        )
        _operating_points(ax, y, probs[:, 1], thresholds or {}, "roc")
    else:
        for i, name in enumerate(classes):
            if 0 < (y == i).sum() < y.size:
                fpr, tpr, _ = roc_curve(y == i, probs[:, i])
                ax.plot(fpr, tpr, label=f"{name} vs rest")
        ax.plot([0, 1], [0, 1], "k--", label="chance")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (recall)")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def pr_plot(y, probs, classes: Sequence[str], path: Path, thresholds: dict | None = None) -> Path:
    """Precision-recall curve of the positive class (binary) or of each class vs the rest."""
    y = np.asarray(y)
    probs = np.asarray(probs)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    if len(classes) == 2:
        PrecisionRecallDisplay.from_predictions(
            y, probs[:, 1], pos_label=1, name=f"{classes[1]}", ax=ax, plot_chance_level=True
        )
        _operating_points(ax, y, probs[:, 1], thresholds or {}, "pr")
    else:
        for i, name in enumerate(classes):
            if 0 < (y == i).sum() < y.size:
                precision, recall, _ = precision_recall_curve(y == i, probs[:, i])
                ax.plot(recall, precision, label=f"{name} vs rest")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall curve")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def calibration_plot(y, probs, classes: Sequence[str], path: Path, n_bins: int = 10) -> Path:
    """Reliability diagram plus a histogram of the predicted probabilities.

    Binary: p(positive) against the observed share of positives. More classes: the top-class
    confidence against the observed accuracy.
    """
    y = np.asarray(y)
    probs = np.asarray(probs)
    if len(classes) == 2:
        target, score = (y == 1).astype(int), probs[:, 1]
        name, xlabel = f"p({classes[1]})", f"Predicted probability of {classes[1]}"
        ylabel = f"Observed share of {classes[1]}"
    else:
        target = (probs.argmax(axis=1) == y).astype(int)
        score = probs.max(axis=1)
        name, xlabel, ylabel = "top class", "Confidence of the predicted class", "Observed accuracy"
    fig = Figure(figsize=(5.5, 6.5))
    ax, hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    CalibrationDisplay.from_predictions(target, score, n_bins=n_bins, name=name, ax=ax, pos_label=1)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_title("Calibration (reliability diagram)")
    hist.hist(score, bins=n_bins, range=(0, 1), color="tab:gray")
    hist.set_xlabel(xlabel)
    hist.set_ylabel("Images")
    fig.tight_layout()
    return save_figure(fig, path)


def image_grid(
    panels: Sequence[tuple[np.ndarray, str]],
    path: Path,
    ncols: int = 4,
    title: str | None = None,
    panel_inches: float = 2.2,
) -> Path:
    """A gallery of RGB uint8 images (H, W, 3), each with a short caption under it."""
    if not panels:
        return message_plot(path, title or "Gallery", "No images to show.")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(ncols * panel_inches, nrows * (panel_inches + 0.45)))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (image, caption) in zip(axes, panels, strict=False):
        ax.imshow(image)
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
