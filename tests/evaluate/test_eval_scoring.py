"""Scoring helpers on hand-made frames and probabilities: labels, colours, subgroups, CSV."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from maskforge.evaluate.scoring import (
    _ci_method,
    color_family,
    predict_labels,
    score_predictions,
    subgroup_columns,
    val_threshold,
    write_predictions,
)

BINARY = ["unmasked", "masked"]


@pytest.mark.parametrize(
    "value, family",
    [
        ("#000000", "black"),
        ("#ffffff", "white"),
        ("#808080", "gray"),
        ("#ff0000", "red"),
        ("#ff8000", "orange"),
        ("#ffff00", "yellow"),
        ("00ff00", "green"),
        ("#00ffff", "cyan"),
        ("#0000FF", "blue"),
        ("#8000ff", "purple"),
        ("#ff00ff", "pink"),
        ("#ff0040", "red"),  # hue 345: red again past pink
        ("navy", "navy"),
        ("", "(none)"),
    ],
)
def test_color_family(value, family):
    assert color_family(value) == family


def test_subgroup_columns_skips_empty_columns_and_groups_many_colours():
    colors = [f"#{v:02x}0000" for v in range(40, 250, 16)]  # 14 distinct reds
    frame = pd.DataFrame(
        {
            "mask_type": ["cloth"] * 7 + [""] * 7,
            "color": colors,
            "wear": [""] * 14,
        }
    )
    out, used, notes = subgroup_columns(frame)
    assert used == ["mask_type", "color"]  # wear has no values, source is absent
    assert notes == {"color": "14 distinct colours, grouped into colour families"}
    assert set(out["color"]) <= {"red", "black"}
    assert list(frame["color"]) == colors  # the caller's frame is left alone
    few = frame.iloc[:12]
    out, used, notes = subgroup_columns(few)
    assert notes == {} and list(out["color"]) == colors[:12]


def test_predict_labels_binary_threshold_and_multiclass_argmax():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [np.nan, np.nan], [0.5, 0.5]])
    assert list(predict_labels(probs, BINARY, 0.5)) == ["unmasked", "masked", "unmasked", "masked"]
    assert list(predict_labels(probs, BINARY, 0.25)) == ["masked", "masked", "unmasked", "masked"]
    three = ["a", "b", "c"]
    probs3 = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    assert list(predict_labels(probs3, three, 0.99)) == ["b", "c"]


def test_ci_method_names_the_resampled_unit():
    assert _ci_method(0, None) == "not computed (--bootstrap 0)"
    assert _ci_method(50, np.array(["a", "b"])) == (
        "percentile bootstrap, 50 resamples of images, 95%"
    )
    assert "resamples of whole groups" in _ci_method(50, np.array(["a", "a", "b"]))


def _frame(root) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    rows = [
        ("a.png", "masked", "g1", "cloth"),
        ("b.png", "masked", "g1", "surgical"),
        ("c.png", "unmasked", "g2", ""),
        ("d.png", "unmasked", "g3", ""),
        ("e.png", "unmasked", "g4", ""),
    ]
    frame = pd.DataFrame(rows, columns=["path", "label", "group", "mask_type"])
    frame["abspath"] = [str(root / "data" / p) for p in frame["path"]]
    frame = frame[["path", "label", "abspath", "group", "mask_type"]]
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.8, 0.2], [np.nan, np.nan], [0.3, 0.7]])
    errors = ["", "", "", "not a recognised image", ""]
    return frame, probs, errors


INFO = types.SimpleNamespace(classes=BINARY)


def test_score_predictions_counts_and_sections(tmp_path):
    frame, probs, errors = _frame(tmp_path)
    ok = np.array([not e for e in errors])
    val = {"threshold": 0.35, "rule": "youden"}
    report = score_predictions(frame, probs, ok, errors, INFO, 0.5, val, 20, 0)
    assert list(report) == [
        "task",
        "data",
        "thresholds",
        "metrics",
        "confidence_intervals",
        "subgroups",
        "unreadable",
    ]
    assert report["task"] == "binary"
    assert report["data"] == {
        "n_images": 5,
        "n_scored": 4,
        "n_unreadable": 1,
        "support": {"unmasked": 2, "masked": 2},
    }
    assert report["thresholds"] == {"operating": 0.5, "val": val}
    assert list(report["metrics"]) == ["operating", "val"]
    # At 0.5: a right, b wrong (0.4), c right, e wrong (0.7); at 0.35 b turns right.
    assert report["metrics"]["operating"]["accuracy"] == pytest.approx(0.5)
    assert report["metrics"]["val"]["accuracy"] == pytest.approx(0.75)
    cis = report["confidence_intervals"]
    assert "resamples of whole groups" in cis["method"] and set(cis) == {
        "method",
        "operating",
        "val",
    }
    assert report["subgroups"]["columns"] == ["mask_type"]
    assert {r["value"] for r in report["subgroups"]["rows"]} == {"cloth", "surgical", "(none)"}
    assert report["unreadable"] == [{"path": "d.png", "reason": "not a recognised image"}]
    plain = score_predictions(frame, probs, ok, errors, INFO, 0.5, None, 0, 0)
    assert list(plain["metrics"]) == ["operating"]
    assert plain["confidence_intervals"] == {"method": "not computed (--bootstrap 0)"}


def test_write_predictions_columns_and_relative_paths(tmp_path):
    frame, probs, errors = _frame(tmp_path)
    path = tmp_path / "runs/r/eval-test/predictions.csv"
    path.parent.mkdir(parents=True)
    boxes = [[1, 2, 30, 40], [0, 0, 9, 9], [3, 3, 5, 5], None, [4, 5, 6, 7]]
    write_predictions(path, frame, probs, errors, INFO, 0.5, {"threshold": 0.35}, boxes)
    out = pd.read_csv(path, keep_default_na=False)
    assert list(out.columns) == [
        "path",
        "label",
        "status",
        "reason",
        "crop",
        "group",
        "mask_type",
        "p_unmasked",
        "p_masked",
        "pred",
        "confidence",
        "correct",
        "pred_val_threshold",
    ]
    assert out["path"].iloc[0] == "../../../data/a.png"
    assert list(out["status"]) == ["ok", "ok", "ok", "unreadable", "ok"]
    assert out["reason"].iloc[3] == "not a recognised image"
    assert list(out["crop"]) == ["1 2 30 40", "0 0 9 9", "3 3 5 5", "", "4 5 6 7"]
    assert list(out["pred"]) == ["masked", "unmasked", "unmasked", "", "masked"]
    assert list(out["pred_val_threshold"]) == ["masked", "masked", "unmasked", "", "masked"]
    assert list(out["correct"]) == [True, False, True, False, False]
    assert list(out["confidence"]) == pytest.approx([0.9, 0.6, 0.8, 0.0, 0.7])
    lines = path.read_text().splitlines()
    assert (
        lines[1]
        == "../../../data/a.png,masked,ok,,1 2 30 40,g1,cloth,0.1,0.9,masked,0.9,True,masked"
    )
    assert (
        lines[4]
        == "../../../data/d.png,unmasked,unreadable,not a recognised image,,g3,,,,,0,False,"
    )
    write_predictions(path, frame, probs, errors, INFO, 0.5, None, None)
    out = pd.read_csv(path)
    assert "crop" not in out.columns and "pred_val_threshold" not in out.columns


def test_val_threshold_without_a_val_manifest(tmp_path):
    said = []
    choice = val_threshold(None, INFO, None, None, 8, 0, "youden", said.append)
    assert choice == {"threshold": None, "reason": "no val manifest found for the run"}
    assert said == ["No val manifest for this run: no threshold chosen on val (0.5 only)"]
    assert val_threshold(None, INFO, tmp_path, None, 8, 0, "f1", said.append) == choice
