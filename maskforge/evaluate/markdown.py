"""report.md of an evaluation: a summary, then a table of sections over the report dict.

The report dict is what report.json holds. Each section is a function of it that returns its
lines, or None to leave the section out; `render_markdown` writes the summary, then each
section of SECTIONS as `## title`, a blank line and its lines. Plots are linked relative to the
report, by the names in report["files"].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from maskforge.evaluate.scoring import THRESHOLD_RULE_TEXT

# Rows of the headline table, (metric, title); {pos} and {neg} name a binary model's positive
# and negative class.
BINARY_HEADLINE = (
    ("accuracy", "Accuracy"),
    ("precision", "Precision ({pos})"),
    ("recall", "Recall / sensitivity ({pos})"),
    ("specificity", "Specificity (recall of {neg})"),
    ("f1", "F1 ({pos})"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC (average precision)"),
    ("brier", "Brier score (lower is better)"),
)
MULTICLASS_HEADLINE = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("roc_auc_ovr", "ROC-AUC (one-vs-rest, macro)"),
    ("log_loss", "Log loss"),
)


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


def _binary(report: dict) -> bool:
    return report["task"] == "binary"


def _classes(report: dict) -> list[str]:
    return report["model"]["classes"]


def _val(report: dict) -> dict:
    """The threshold chosen on val ({} for multiclass models)."""
    return report["thresholds"].get("val") or {}


def _has_curves(report: dict) -> bool:
    """Whether ROC and PR curves were drawn: at least two classes present in the data."""
    return sum(1 for n in report["data"]["support"].values() if n > 0) >= 2


# --------------------------------------------------------------------------- summary


def _summary(report: dict) -> list[str]:
    """The title and the bullets: model, data, what was left out, positive class and threshold."""
    model, data = report["model"], report["data"]
    support = ", ".join(f"{c} {n}" for c, n in data["support"].items())
    lines = [
        f"# Evaluation: {Path(report['run']).name} on {data['name']}",
        "",
        f"- **Model**: `{report['checkpoint']}` — {model['arch']}, epoch {model['epoch']}, "
        f"input {model['img_size']} px, classes {', '.join(_classes(report))}",
        f"- **Data**: {data['description']} — {data['n_scored']} images scored ({support})",
    ]
    if data["n_unreadable"]:
        lines.append(
            f"- **Skipped**: {data['n_unreadable']} unreadable image(s), listed in "
            "`predictions.csv` (status `unreadable`) and in report.json"
        )
    if data.get("crop_faces"):
        lines.append(
            "- Faces were detected and cropped as `synthesize` does before classifying "
            f"(--crop-faces); {data['n_no_face']} image(s) without a face were left out "
            "(listed in report.json under no_face)"
        )
    if data.get("n_detection_failed"):
        lines.append(
            f"- **Detection crashed**: {data['n_detection_failed']} image(s) killed the face "
            "detector's worker process (twice) and were left out (listed in report.json under "
            "detection_failed)"
        )
    if _binary(report):
        lines += _threshold_bullets(report)
    return lines


def _threshold_bullets(report: dict) -> list[str]:
    positive = _classes(report)[1]
    operating, val = report["thresholds"]["operating"], _val(report)
    lines = [f"- **Positive class**: {positive} (predicted when p({positive}) ≥ threshold)"]
    if val.get("threshold") is None:
        lines.append(f"- **Threshold chosen on validation**: none ({val.get('reason', 'n/a')})")
        return lines
    lines.append(
        f"- **Threshold chosen on validation**: {val['threshold']:.3f}, by "
        f"{THRESHOLD_RULE_TEXT[val['rule']]} on `{val['manifest']}` "
        f"({val['n']} images). Results at {operating:g} and at this threshold "
        "are shown side by side; to use it: `maskforge predict --threshold "
        f"{val['threshold']:.3f}`."
    )
    return lines


# --------------------------------------------------------------------------- sections


def _headline(report: dict) -> list[str]:
    """The metrics table, how its intervals were made, what is undefined, per-class rows."""
    if _binary(report):
        note = "ROC-AUC, PR-AUC and the Brier score do not depend on the threshold."
    else:
        note = (
            "The predicted class is the most probable one; macro averages are over the "
            "classes where each metric is defined."
        )
    method = report["confidence_intervals"]["method"]
    return [
        *_headline_table(report),
        "",
        f"Confidence intervals: {method}. {note}",
        *_undefined(report),
        *_per_class(report),
    ]


def _headline_table(report: dict) -> list[str]:
    """One row per metric; a value and a 95% CI column pair per threshold (binary: 0.5, val)."""
    binary, classes = _binary(report), _classes(report)
    metrics, cis = report["metrics"], report["confidence_intervals"]
    header, rule = "| metric |", "|---|"
    for key, m in metrics.items():
        t = m.get("threshold")
        if not binary:
            title = "value"
        else:
            title = f"at {t:g}" if key == "operating" else f"at {t:.3f} (val)"
        header += f" {title} | 95% CI |"
        rule += "---:|---|"
    lines = [header, rule]
    if binary:
        names = [(n, t.format(pos=classes[1], neg=classes[0])) for n, t in BINARY_HEADLINE]
    else:
        names = MULTICLASS_HEADLINE
    for name, title in names:
        row = f"| {title} |"
        for key, m in metrics.items():
            row += f" {_fmt(m.get(name))} | {_ci_text(cis.get(key, {}).get(name))} |"
        lines.append(row)
    return lines


def _undefined(report: dict) -> list[str]:
    undefined = report["metrics"]["operating"].get("undefined", {})
    if not undefined:
        return []
    return ["", "Undefined here (shown as —):"] + [
        f"- {text[0].upper() + text[1:]}" for text in undefined.values()
    ]


def _per_class(report: dict) -> list[str]:
    if _binary(report):
        return []
    lines = [
        "",
        "### Per class",
        "",
        "| class | support | precision | recall | F1 | ROC-AUC (vs rest) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c, m in report["metrics"]["operating"]["per_class"].items():
        lines.append(
            f"| {c} | {m['support']} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
            f"{_fmt(m['f1'])} | {_fmt(m['roc_auc'])} |"
        )
    return lines


def _confusion(report: dict) -> list[str]:
    if _binary(report):
        how = f"(at threshold {report['thresholds']['operating']:g})."
    else:
        how = "(predicted class = argmax)."
    return [
        f"![confusion matrix]({report['files']['confusion']})",
        "",
        "How to read this: rows are the true class, columns the predicted class; the diagonal is "
        "correct. The right panel shows each row as percentages, i.e. the recall of each class "
        + how,
    ]


def _roc(report: dict) -> list[str]:
    if not _has_curves(report):
        return [
            "Not drawn, and no precision-recall curve either: the data holds only one class, so "
            "there is no trade-off between classes to show. Accuracy here is the share of "
            "images given their true class."
        ]
    return [
        f"![ROC curve]({report['files']['roc']})",
        "",
        "How to read this: each point is a threshold; up and to the left is better. The "
        "area under the curve (AUC) is the chance that a random positive scores above a "
        "random negative (0.5 = guessing, 1 = perfect). Markers show the thresholds used "
        "above.",
    ]


def _precision_recall(report: dict) -> list[str] | None:
    if not _has_curves(report):
        return None  # the ROC section says why
    return [
        f"![precision-recall curve]({report['files']['pr']})",
        "",
        "How to read this: precision (how many predicted positives are right) against "
        "recall (how many positives are found); the dashed line is the share of positives, "
        "what guessing achieves. More informative than ROC when one class is rare.",
    ]


def _calibration(report: dict) -> list[str]:
    return [
        f"![calibration curve]({report['files']['calibration']})",
        "",
        "How to read this: if the model says 0.8, about 80% of those images should really be "
        "positive; points on the diagonal mean well calibrated, below it over-confident. The "
        "histogram shows how many images got each predicted probability.",
    ]


def _subgroups(report: dict) -> list[str]:
    sub = report["subgroups"]
    if not sub["rows"]:
        return ["No subgroup columns (mask_type, color, wear, source) with values in this data."]
    classes = _classes(report)
    lines = [
        f"Metrics per value of {', '.join(sub['columns'])} at threshold "
        f"{sub['threshold']:g}. Accuracy has a 95% Wilson interval; small groups have wide "
        "intervals, so do not over-read differences between them."
    ]
    lines += [f"({col}: {note}.)" for col, note in sub["notes"].items()]
    lines.append("")
    if _binary(report):
        lines += _binary_subgroup_table(sub["rows"], classes)
    else:
        lines += _multiclass_subgroup_table(sub["rows"], classes)
    return lines + [
        "",
        "— means undefined for that subgroup (e.g. specificity where it holds no "
        f"{classes[0]} images).",
    ]


def _accuracy_cell(row: dict) -> str:
    return (
        f"{_fmt(row['accuracy'])} ({_fmt(row['accuracy_low'], 2)}–{_fmt(row['accuracy_high'], 2)})"
    )


def _binary_subgroup_table(rows: list[dict], classes: list[str]) -> list[str]:
    neg, pos = classes
    lines = [
        f"| column | value | n | n {neg} | n {pos} | accuracy (95% CI) | "
        f"recall {pos} | specificity | F1 | ROC-AUC |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['column']} | {r['value']} | {r['n']} | {r[f'n_{neg}']} | "
            f"{r[f'n_{pos}']} | {_accuracy_cell(r)} | {_fmt(r['recall'])} | "
            f"{_fmt(r['specificity'])} | {_fmt(r['f1'])} | {_fmt(r['roc_auc'])} |"
        )
    return lines


def _multiclass_subgroup_table(rows: list[dict], classes: list[str]) -> list[str]:
    cols = " | ".join(f"recall {c}" for c in classes)
    lines = [
        f"| column | value | n | accuracy (95% CI) | {cols} | macro F1 |",
        "|---|---|---:|---|" + "---:|" * len(classes) + "---:|",
    ]
    for r in rows:
        recalls = " | ".join(_fmt(r[f"recall_{c}"]) for c in classes)
        lines.append(
            f"| {r['column']} | {r['value']} | {r['n']} | {_accuracy_cell(r)} | {recalls} | "
            f"{_fmt(r['macro_f1'])} |"
        )
    return lines


def _mistakes(report: dict) -> list[str]:
    return [
        f"![most confident mistakes]({report['files']['mistakes']})",
        "",
        "How to read this: the wrong predictions the model was most sure of (caption: true "
        "class → predicted class and its probability). Look for label errors, odd crops, or a "
        "pattern such as one mask type or lighting.",
    ]


def _gradcam(report: dict) -> list[str] | None:
    if "gradcam" not in report["files"]:
        return None  # --cam 0, or nothing to show
    return [
        f"![Grad-CAM overlays]({report['files']['gradcam']})",
        "",
        "How to read this: each image is followed by its heat map for the predicted class; "
        "red marks the regions that pushed the model towards that class. A sound model "
        "looks at the mouth and nose region (the mask or its absence), not the background, "
        "hair or image borders. Mistakes come first, then correct examples. Full-size pairs "
        "are in `gradcam/`.",
    ]


def _files(report: dict) -> list[str]:
    val_column = ", pred_val_threshold" if _val(report).get("threshold") else ""
    return [
        "- `predictions.csv`: one row per image: path, label, status, p_<class>, pred, "
        "confidence, correct" + val_column,
        "- `report.json`: every number in this report",
    ]


# --------------------------------------------------------------------------- the report

Section = Callable[[dict], "list[str] | None"]

# The report's sections in order: (title, lines of the section or None to leave it out).
SECTIONS: tuple[tuple[str, Section], ...] = (
    ("Headline", _headline),
    ("Confusion matrix", _confusion),
    ("ROC curve", _roc),
    ("Precision-recall curve", _precision_recall),
    ("Calibration", _calibration),
    ("Subgroups", _subgroups),
    ("Most confident mistakes", _mistakes),
    ("Grad-CAM", _gradcam),
    ("Files", _files),
)


def render_markdown(report: dict) -> str:
    """The readable report.md of an evaluation (plots linked relative to the report)."""
    lines = _summary(report)
    for title, section in SECTIONS:
        body = section(report)
        if body is not None:
            lines += ["", f"## {title}", "", *body]
    return "\n".join([*lines, ""])
