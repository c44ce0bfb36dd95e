"""report.md from hand-made report dicts, compared byte for byte with golden files.

The golden files were written by the renderer as it was before it became a table of sections;
they pin every line, blank line and number format of the report.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from maskforge.evaluate.markdown import render_markdown

GOLDEN = Path(__file__).parent / "golden"
FILES = {
    "confusion": "confusion.png",
    "roc": "roc.png",
    "pr": "pr.png",
    "calibration": "calibration.png",
    "mistakes": "mistakes.png",
    "predictions": "predictions.csv",
}


def _ci(low, high, n=100):
    return {"low": low, "high": high, "n_valid": n}


def binary_report() -> dict:
    """Everything a two-class report can show: val threshold, skips, face crops, Grad-CAM."""
    metrics = {
        "accuracy": 0.9523809523809523,
        "precision": 0.9090909090909091,
        "recall": 1.0,
        "specificity": 0.9090909090909091,
        "f1": 0.9523809523809523,
        "balanced_accuracy": 0.9545454545454546,
        "roc_auc": 0.990909090909091,
        "pr_auc": 0.9876,
        "brier": 0.04321,
        "confusion_matrix": [[10, 1], [0, 10]],
        "undefined": {},
    }
    cis = {key: _ci(0.8123, 1.0) for key in metrics if key not in ("confusion_matrix", "undefined")}
    return {
        "task": "binary",
        "run": "runs/tiny",
        "checkpoint": "runs/tiny/best.pt",
        "model": {
            "arch": "resnet18",
            "classes": ["unmasked", "masked"],
            "img_size": 32,
            "epoch": 3,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        },
        "data": {
            "n_images": 24,
            "n_scored": 21,
            "n_unreadable": 1,
            "support": {"unmasked": 11, "masked": 10},
            "description": "manifests/test.csv (the run's test manifest)",
            "name": "test",
            "crop_faces": True,
            "n_no_face": 2,
        },
        "thresholds": {
            "operating": 0.5,
            "val": {
                "threshold": 0.43217,
                "rule": "youden",
                "score": 0.875,
                "n": 16,
                "manifest": "manifests/val.csv",
            },
        },
        "metrics": {
            "operating": {**metrics, "threshold": 0.5},
            "val": {**metrics, "threshold": 0.43217, "precision": 0.8333333, "specificity": None},
        },
        "confidence_intervals": {
            "method": "percentile bootstrap, 100 resamples of whole groups (images made from one "
            "photo share a group), 95%",
            "operating": cis,
            "val": {**cis, "specificity": _ci(None, None, 0)},
        },
        "subgroups": {
            "columns": ["mask_type", "color", "source"],
            "notes": {"color": "14 distinct colours, grouped into colour families"},
            "threshold": 0.5,
            "rows": [
                {
                    "column": "mask_type",
                    "value": "surgical",
                    "n": 5,
                    "n_unmasked": 0,
                    "n_masked": 5,
                    "accuracy": 1.0,
                    "accuracy_low": 0.5655,
                    "accuracy_high": 1.0,
                    "recall": 1.0,
                    "specificity": None,
                    "f1": 1.0,
                    "roc_auc": None,
                },
                {
                    "column": "source",
                    "value": "real",
                    "n": 1,
                    "n_unmasked": 1,
                    "n_masked": 0,
                    "accuracy": 0.0,
                    "accuracy_low": 0.0,
                    "accuracy_high": 0.7935,
                    "recall": None,
                    "specificity": 0.0,
                    "f1": None,
                    "roc_auc": None,
                },
            ],
        },
        "files": {**FILES, "gradcam": "gradcam.png", "gradcam_dir": "gradcam/"},
    }


def binary_bare_report() -> dict:
    """A two-class report with little in it: one class present, no val threshold, no CIs."""
    report = copy.deepcopy(binary_report())
    report["data"].update(
        {"n_unreadable": 0, "support": {"unmasked": 0, "masked": 7}, "n_scored": 7}
    )
    del report["data"]["crop_faces"]
    report["thresholds"] = {
        "operating": 0.3,
        "val": {"threshold": None, "reason": "no val manifest found for the run"},
    }
    operating = report["metrics"]["operating"]
    operating.update(
        {
            "threshold": 0.3,
            "roc_auc": None,
            "pr_auc": None,
            "specificity": None,
            "undefined": {
                "roc_auc": "ROC-AUC is undefined: only one class ('masked') is present",
                "specificity": "specificity is undefined: there are no 'unmasked' items",
            },
        }
    )
    report["metrics"] = {"operating": operating}
    report["confidence_intervals"] = {"method": "not computed (--bootstrap 0)"}
    report["subgroups"] = {"columns": [], "notes": {}, "threshold": 0.3, "rows": []}
    report["files"] = dict(FILES)
    return report


def multiclass_report() -> dict:
    classes = ["unmasked", "masked", "incorrect"]
    per_class = {
        c: {"support": 3, "precision": p, "recall": 2 / 3, "f1": 0.5, "roc_auc": a}
        for c, p, a in zip(classes, (0.5, None, 1.0), (0.75, 0.5, None), strict=True)
    }
    metrics = {
        "task": "multiclass",
        "accuracy": 0.4444444,
        "balanced_accuracy": 0.4444444,
        "macro_precision": 0.75,
        "macro_recall": 2 / 3,
        "macro_f1": 0.5,
        "weighted_f1": 0.5,
        "roc_auc_ovr": None,
        "log_loss": 1.0986,
        "confusion_matrix": [[2, 1, 0], [1, 1, 1], [0, 1, 2]],
        "per_class": per_class,
        "undefined": {"roc_auc_ovr": "ROC-AUC is undefined for ['incorrect']"},
    }
    return {
        "task": "multiclass",
        "run": "/data/runs/three",
        "checkpoint": "/data/runs/three/last.pt",
        "model": {"arch": "mobilenet_v2", "classes": classes, "img_size": 112, "epoch": 12},
        "data": {
            "n_images": 9,
            "n_scored": 9,
            "n_unreadable": 0,
            "support": {c: 3 for c in classes},
            "description": "m/test.csv (given)",
            "name": "test",
            "crop_faces": False,
            "n_no_face": 0,
        },
        "thresholds": {"operating": 0.5, "val": None},
        "metrics": {"operating": metrics},
        "confidence_intervals": {
            "method": "percentile bootstrap, 20 resamples of images, 95%",
            "operating": {"accuracy": _ci(0.1111, 0.7778, 20), "macro_f1": _ci(None, None, 0)},
        },
        "subgroups": {
            "columns": ["source"],
            "notes": {},
            "threshold": 0.5,
            "rows": [
                {
                    "column": "source",
                    "value": "out",
                    "n": 9,
                    "accuracy": 0.4444444,
                    "accuracy_low": 0.1888,
                    "accuracy_high": 0.7333,
                    "recall_unmasked": 2 / 3,
                    "recall_masked": None,
                    "recall_incorrect": 1.0,
                    "macro_f1": 0.5,
                }
            ],
        },
        "files": {**FILES, "gradcam": "gradcam.png", "gradcam_dir": "gradcam/"},
    }


def binary_no_val_reason_report() -> dict:
    """Val threshold without a reason, val CIs absent, positive class renamed."""
    report = copy.deepcopy(binary_report())
    report["model"]["classes"] = ["bare", "covered"]
    report["data"]["support"] = {"bare": 11, "covered": 10}
    report["data"]["crop_faces"] = False
    report["thresholds"]["val"] = {}
    del report["metrics"]["val"], report["confidence_intervals"]["val"]
    for row in report["subgroups"]["rows"]:
        row["n_bare"], row["n_covered"] = row.pop("n_unmasked"), row.pop("n_masked")
    return report


CASES = {
    "binary": binary_report,
    "binary_bare": binary_bare_report,
    "binary_no_val_reason": binary_no_val_reason_report,
    "multiclass": multiclass_report,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_markdown_matches_golden_file(case):
    golden = (GOLDEN / f"report_{case}.md").read_text(encoding="utf-8")
    assert render_markdown(CASES[case]()) == golden


def test_report_markdown_does_not_change_the_report():
    report = binary_report()
    before = copy.deepcopy(report)
    render_markdown(report)
    assert report == before
