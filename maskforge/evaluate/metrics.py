"""Classification metrics (scikit-learn), decision thresholds, bootstrap CIs and subgroup tables.

Inputs everywhere: `y_true` (N,) int class indices into `classes`, `probs` (N, C) float class
probabilities (rows sum to 1; with two classes column 1 is the positive class, `classes[1]`).
A metric that is undefined on the given data (ROC-AUC with one class present, precision when
nothing was predicted positive, ...) is `None` in the result, and `undefined[name]` says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from maskforge.choices import THRESHOLD_RULES  # noqa: F401 - re-exported


def _check_inputs(y_true, probs, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must have shape (N, C) with N = {y.shape[0]}, got {p.shape}.")
    if p.shape[1] != len(classes) or len(classes) < 2:
        raise ValueError(f"probs has {p.shape[1]} columns but classes are {list(classes)}.")
    if y.size == 0:
        raise ValueError("No predictions to score (0 items).")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError("probs rows must sum to 1 (class probabilities, not logits).")
    # Rows from float32 softmax/sigmoid are off by ~1e-7; scikit-learn checks more tightly.
    p = p / sums[:, None]
    if y.min() < 0 or y.max() >= len(classes):
        found = sorted({int(v) for v in y})
        raise ValueError(f"Labels must be class indices 0..{len(classes) - 1}, got {found}.")
    return y, p


def _num(value) -> float | None:
    """A JSON-friendly float, None for nan."""
    value = float(value)
    return None if np.isnan(value) else value


@contextmanager
def _quiet():
    """Silence scikit-learn's warnings for cases we report ourselves as undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*y_pred contains classes not in y_true.*")
        warnings.filterwarnings("ignore", message=".*No positive class found in y_true.*")
        yield


def classification_metrics(y_true, probs, classes: Sequence[str], threshold: float = 0.5) -> dict:
    """All metrics for one set of predictions: binary (two classes) or per-class + macro.

    Binary: predicted positive when probs[:, 1] >= threshold. More classes: argmax.
    Returns a JSON-friendly dict; undefined metrics are None with a reason in `undefined`.
    """
    y, p = _check_inputs(y_true, probs, classes)
    if len(classes) == 2:
        return _binary(y, p, list(classes), float(threshold))
    return _multiclass(y, p, list(classes))


def _present(y: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y, minlength=k)


def _binary(y: np.ndarray, p: np.ndarray, classes: list[str], threshold: float) -> dict:
    neg, pos = classes
    score = p[:, 1]
    pred = (score >= threshold).astype(np.int64)
    counts = _present(y, 2)
    undefined: dict[str, str] = {}
    with _quiet():
        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            y, pred, labels=[0, 1], zero_division=np.nan
        )
        out = {
            "task": "binary",
            "classes": classes,
            "positive_class": pos,
            "threshold": threshold,
            "n": int(y.size),
            "support": {neg: int(counts[0]), pos: int(counts[1])},
            "accuracy": _num(skm.accuracy_score(y, pred)),
            "balanced_accuracy": None,
            "precision": _num(prec[1]),
            "recall": _num(rec[1]),
            "specificity": _num(rec[0]),
            "f1": _num(f1[1]),
            "roc_auc": None,
            "pr_auc": None,
            "brier": _num(skm.brier_score_loss(y, score, pos_label=1)),
            "log_loss": _num(skm.log_loss(y, p, labels=[0, 1])),
            "confusion_matrix": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        }
        both = counts.min() > 0
        if both:
            out["balanced_accuracy"] = _num(skm.balanced_accuracy_score(y, pred))
            out["roc_auc"] = _num(skm.roc_auc_score(y, score))
            out["pr_auc"] = _num(skm.average_precision_score(y, score))
    only = neg if counts[0] else pos
    if not both:
        one = f"only one class ({only!r}) is present in the labels"
        undefined["roc_auc"] = f"ROC-AUC is undefined: {one}; it needs both classes."
        undefined["pr_auc"] = f"PR-AUC is undefined: {one}; it needs both classes."
        undefined["balanced_accuracy"] = (
            f"balanced accuracy is undefined: {one}; it averages the recall of both classes."
        )
        # With one class, precision is 1 (or 0) by construction whatever the model does.
        out["precision"] = out["f1"] = None
        fate = "right" if only == pos else "wrong"
        see = "recall" if only == pos else "specificity"
        undefined["precision"] = (
            f"precision is not informative: {one}, so every {pos!r} prediction is {fate} by "
            f"construction; see {see}."
        )
        undefined["f1"] = f"F1 is not informative: {one} (it is built on precision)."
    if out["precision"] is None and "precision" not in undefined:
        undefined["precision"] = (
            f"precision is undefined: nothing was predicted {pos!r} at threshold {threshold:g} "
            "(0 / 0)."
        )
    if out["recall"] is None:
        undefined["recall"] = f"recall is undefined: there are no {pos!r} items in the labels."
    if out["specificity"] is None:
        undefined["specificity"] = (
            f"specificity is undefined: there are no {neg!r} items in the labels."
        )
    out["undefined"] = undefined
    return out


def _multiclass(y: np.ndarray, p: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    labels = list(range(k))
    pred = p.argmax(axis=1)
    counts = _present(y, k)
    undefined: dict[str, str] = {}
    with _quiet():
        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            y, pred, labels=labels, zero_division=np.nan
        )
        per_class = {}
        for i, name in enumerate(classes):
            onehot = (y == i).astype(np.int64)
            present = 0 < counts[i] < y.size
            per_class[name] = {
                "support": int(counts[i]),
                "precision": _num(prec[i]),
                "recall": _num(rec[i]),
                "f1": _num(f1[i]),
                "roc_auc": _num(skm.roc_auc_score(onehot, p[:, i])) if present else None,
                "pr_auc": _num(skm.average_precision_score(onehot, p[:, i])) if present else None,
            }
            if not present:
                why = "no" if counts[i] == 0 else "only"
                undefined[f"{name}.roc_auc"] = (
                    f"one-vs-rest ROC-AUC of {name!r} is undefined: {why} {name!r} items in the "
                    "labels."
                )
                undefined[f"{name}.pr_auc"] = undefined[f"{name}.roc_auc"].replace("ROC", "PR")
            if per_class[name]["precision"] is None:
                undefined[f"{name}.precision"] = (
                    f"precision of {name!r} is undefined: nothing was predicted {name!r}."
                )
            if per_class[name]["recall"] is None:
                undefined[f"{name}.recall"] = (
                    f"recall of {name!r} is undefined: no {name!r} items in the labels."
                )

        def macro(values: np.ndarray) -> float | None:
            # Macro average over the classes where the metric is defined (sklearn would put 0).
            ok = values[~np.isnan(values)]
            return _num(ok.mean()) if ok.size else None

        all_present = bool((counts > 0).all())
        out = {
            "task": "multiclass",
            "classes": classes,
            "n": int(y.size),
            "support": {c: int(n) for c, n in zip(classes, counts, strict=True)},
            "accuracy": _num(skm.accuracy_score(y, pred)),
            "balanced_accuracy": _num(skm.balanced_accuracy_score(y, pred)),
            "macro_precision": macro(prec),
            "macro_recall": macro(rec),
            "macro_f1": macro(f1),
            "weighted_f1": _num(
                skm.f1_score(y, pred, labels=labels, average="weighted", zero_division=0)
            ),
            "roc_auc_ovr": (
                _num(skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))
                if all_present
                else None
            ),
            "log_loss": _num(skm.log_loss(y, p, labels=labels)),
            "per_class": per_class,
            "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        }
    if not all_present:
        missing = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        undefined["roc_auc_ovr"] = (
            f"macro one-vs-rest ROC-AUC is undefined: class(es) {missing} have no items in the "
            "labels."
        )
    out["undefined"] = undefined
    return out


def choose_threshold(y_true, p_pos, rule: str = "youden") -> dict:
    """Pick the binary decision threshold on validation data.

    rule "youden": maximise Youden's J = sensitivity + specificity - 1 (ROC curve);
    rule "f1": maximise F1 of the positive class (precision-recall curve).
    The threshold is the midpoint between the best cut's score and the next lower score seen,
    so it is not placed right on top of a validation example. Returns {"threshold", "rule",
    "score" (J or F1 reached on val), "n"}; raises ValueError where no threshold can be chosen.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"Invalid threshold rule {rule!r}. Only {', '.join(THRESHOLD_RULES)}.")
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    s = np.asarray(p_pos, dtype=np.float64).reshape(-1)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("Cannot choose a threshold: the validation data holds only one class.")
    # Distinct scores, high to low; predicting positive for score >= cuts[i].
    cuts = np.unique(s)[::-1]
    if rule == "youden":
        fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
        values = tpr - fpr
    else:
        precision, recall, thr = skm.precision_recall_curve(y, s, drop_intermediate=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = 2 * precision * recall / (precision + recall)
        values = np.nan_to_num(values[:-1], nan=0.0)  # last point has no threshold
    finite = np.isfinite(thr)
    thr, values = thr[finite], values[finite]
    best = float(thr[int(np.argmax(values))])
    lower = cuts[cuts < best]
    threshold = (best + float(lower[0])) / 2 if lower.size else best / 2
    return {"threshold": threshold, "rule": rule, "score": float(values.max()), "n": int(y.size)}


def _resample_indices(
    n: int, groups: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    if groups is None:
        return [rng.integers(0, n, size=n) for _ in range(n_boot)]
    # fillna first: a missing group would be NaN, which factorize leaves out of every group.
    codes, uniques = pd.factorize(pd.Series(groups).fillna("").astype(str))
    members = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    out = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(members), size=len(members))
        out.append(np.concatenate([members[g] for g in picked]))
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den else np.nan


def _headline_values(y: np.ndarray, p: np.ndarray, k: int, thresholds: Mapping[str, float]):
    """Headline metrics per threshold for one resample (nan where undefined).

    Speed matters here (thousands of resamples): the threshold-free AUCs are computed once, and
    the threshold metrics come from one scikit-learn confusion matrix per threshold, with the
    same definitions as precision_recall_fscore_support (checked equal in the tests).
    """
    counts = np.bincount(y, minlength=k)
    both = counts.min() > 0
    if k == 2:
        auc = skm.roc_auc_score(y, p[:, 1]) if both else np.nan
        ap = skm.average_precision_score(y, p[:, 1]) if both else np.nan
        out = {}
        for key, t in thresholds.items():
            pred = (p[:, 1] >= t).astype(np.int64)
            tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
            out[key] = {
                "accuracy": (tp + tn) / y.size,
                "precision": _ratio(tp, tp + fp) if both else np.nan,
                "recall": _ratio(tp, tp + fn),
                "specificity": _ratio(tn, tn + fp),
                "f1": _ratio(2 * tp, 2 * tp + fp + fn) if both else np.nan,
                "roc_auc": auc,
                "pr_auc": ap,
            }
        return out
    labels = list(range(k))
    pred = p.argmax(axis=1)
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=np.nan
    )
    values = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "macro_precision": np.nanmean(prec) if np.isfinite(prec).any() else np.nan,
        "macro_recall": np.nanmean(rec) if np.isfinite(rec).any() else np.nan,
        "macro_f1": np.nanmean(f1) if np.isfinite(f1).any() else np.nan,
        "roc_auc_ovr": (
            skm.roc_auc_score(y, p, multi_class="ovr", labels=labels) if both else np.nan
        ),
    }
    return {key: values for key in thresholds}


def bootstrap_cis(
    y_true,
    probs,
    classes: Sequence[str],
    thresholds: Mapping[str, float],
    groups: Sequence | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict]:
    """Percentile bootstrap confidence intervals of the headline metrics at several thresholds.

    thresholds: name -> threshold on p(positive) (ignored with more than two classes, where
    the prediction is the argmax). With `groups` (N,), whole groups are resampled (a cluster
    bootstrap), because images made from one photo are not independent. Resamples where a
    metric is undefined (e.g. one class drawn) are left out of that metric's interval;
    `n_valid` counts the ones used. Returns {name: {metric: {"low", "high", "n_valid"}}}
    (low/high None if fewer than 10 resamples were valid).
    """
    y, p = _check_inputs(y_true, probs, classes)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    rng = np.random.default_rng(seed)
    g = None if groups is None else np.asarray(groups)
    samples: dict[str, dict[str, list[float]]] = {key: {} for key in thresholds}
    with _quiet():
        for idx in _resample_indices(y.size, g, n_boot, rng):
            values = _headline_values(y[idx], p[idx], len(classes), thresholds)
            for key, metrics in values.items():
                for name, value in metrics.items():
                    samples[key].setdefault(name, []).append(float(value))
    alpha = (1 - level) / 2 * 100
    out: dict[str, dict] = {}
    for key, per_metric in samples.items():
        out[key] = {}
        for name, values in per_metric.items():
            arr = np.asarray(values)
            arr = arr[np.isfinite(arr)]
            if arr.size < 10:
                out[key][name] = {"low": None, "high": None, "n_valid": int(arr.size)}
                continue
            low, high = np.percentile(arr, [alpha, 100 - alpha])
            out[key][name] = {"low": float(low), "high": float(high), "n_valid": int(arr.size)}
    return out


def bootstrap_ci(
    y_true,
    probs,
    classes: Sequence[str],
    threshold: float = 0.5,
    groups: Sequence | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Bootstrap intervals at one threshold: {metric: {"low", "high", "n_valid"}} (see above)."""
    return bootstrap_cis(y_true, probs, classes, {"t": threshold}, groups, n_boot, level, seed)["t"]


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (scipy), None for n = 0."""
    if n == 0:
        return None
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def subgroup_table(
    frame: pd.DataFrame,
    y_true,
    probs,
    classes: Sequence[str],
    columns: Sequence[str],
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Metrics per value of each subgroup column (rows aligned with y_true/probs).

    One row per (column, value) with n, per-class counts, accuracy with its Wilson 95% interval,
    and the main metrics where defined (None/NaN where the subgroup lacks a class; see
    `classification_metrics`). Empty values are shown as "(none)".
    """
    y, p = _check_inputs(y_true, probs, classes)
    if len(frame) != y.size:
        raise ValueError(f"frame has {len(frame)} rows but there are {y.size} predictions.")
    rows = []
    for col in columns:
        if col not in frame.columns:
            continue
        # fillna first: under pandas 3 astype(str) keeps a missing cell as NaN, not "nan".
        values = frame[col].fillna("").astype(str).replace("", "(none)").to_numpy()
        for value in sorted(set(values)):
            sel = values == value
            m = classification_metrics(y[sel], p[sel], classes, threshold)
            n = int(sel.sum())
            correct = int(round(m["accuracy"] * n))
            ci = wilson_interval(correct, n)
            row = {"column": col, "value": value, "n": n}
            row.update({f"n_{c}": m["support"][c] for c in classes})
            row.update(accuracy=m["accuracy"], accuracy_low=ci[0], accuracy_high=ci[1])
            if m["task"] == "binary":
                for key in ("recall", "specificity", "precision", "f1", "roc_auc"):
                    row[key] = m[key]
            else:
                for c in classes:
                    row[f"recall_{c}"] = m["per_class"][c]["recall"]
                row["macro_f1"] = m["macro_f1"]
            rows.append(row)
    return pd.DataFrame(rows)
