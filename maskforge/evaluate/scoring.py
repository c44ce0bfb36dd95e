"""Scoring an evaluation: labels from probabilities, the threshold chosen on val, the metrics,
confidence intervals and subgroups of the report, and predictions.csv.

`probs` is (N, C) float class probabilities in the order of the model's classes, NaN rows for
unreadable images; `ok` (N,) bool marks the readable rows; with two classes column 1 is the
positive class.
"""

from __future__ import annotations

import colorsys
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from maskforge.core.imageio import atomic_write_text
from maskforge.core.paths import display_path, row_path
from maskforge.dataset.manifest import read_manifest
from maskforge.evaluate.inference import predict_frame
from maskforge.learn.models import CheckpointInfo

SUBGROUP_COLUMNS = ("mask_type", "color", "wear", "source")
# More distinct colours than this are grouped into colour families in the subgroup table.
MAX_EXACT_COLORS = 12
THRESHOLD_RULE_TEXT = {
    "youden": "Youden's J (the cut that maximises sensitivity + specificity - 1)",
    "f1": "maximum F1 of the positive class",
}


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


def val_threshold(
    model: torch.nn.Module,
    info: CheckpointInfo,
    manifests_dir: Path | None,
    dev: torch.device,
    batch_size: int,
    workers: int,
    rule: str,
    say: Callable[[str], None],
) -> dict:
    """The threshold chosen by rule on the run's val manifest (binary models).

    Returns choose_threshold's dict plus `manifest`, or {"threshold": None, "reason": ...} when
    there is no val manifest or no threshold can be chosen on it.
    """
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


def score_predictions(frame, probs, ok, errors, info, operating, val_choice, n_boot, seed) -> dict:
    """The report's numbers: task, data counts, thresholds, metrics, CIs, subgroups, unreadable.

    Metrics at the operating threshold and, for binary models with one, at val_choice's;
    n_boot bootstrap resamples (0: no intervals), of whole groups where the frame has them.
    """
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


def write_predictions(path, frame, probs, errors, info, operating, val_choice, boxes) -> None:
    """predictions.csv: the frame's columns, status, reason, crop, p_<class>, pred, confidence,
    correct (and pred_val_threshold with a val threshold); paths relative to the CSV's folder."""
    classes = info.classes
    out = frame.drop(columns=["abspath"]).copy()
    # Paths relative to the CSV's own folder, as in every maskforge CSV; as given (row_path).
    out["path"] = [row_path(p, Path(path).parent) for p in frame["abspath"]]
    ok = np.array([not e for e in errors])
    out.insert(2, "status", np.where(ok, "ok", "unreadable"))
    out.insert(3, "reason", errors)
    if boxes is not None:  # --crop-faces: the face crop that was classified
        out.insert(4, "crop", [" ".join(map(str, b)) if b else "" for b in boxes])
    for i, c in enumerate(classes):
        out[f"p_{c}"] = probs[:, i]
    pred = predict_labels(probs, classes, operating)
    out["pred"] = np.where(ok, pred, "")
    out["confidence"] = np.nanmax(np.where(ok[:, None], probs, 0.0), axis=1)
    out["correct"] = np.where(ok, out["pred"] == out["label"], False)
    if val_choice and val_choice.get("threshold") is not None:
        out["pred_val_threshold"] = np.where(
            ok, predict_labels(probs, classes, val_choice["threshold"]), ""
        )
    atomic_write_text(path, out.to_csv(index=False, float_format="%.9g"))


def predict_labels(probs: np.ndarray, classes: list[str], threshold: float) -> np.ndarray:
    """Class names (N,) from probabilities; binary uses p(positive) >= threshold."""
    filled = np.nan_to_num(probs, nan=0.0)
    if len(classes) == 2:
        idx = (filled[:, 1] >= threshold).astype(int)
    else:
        idx = filled.argmax(axis=1)
    return np.asarray(classes, dtype=object)[idx]
