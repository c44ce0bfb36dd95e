"""Metrics on hand-made predictions whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maskforge.evaluate.metrics import (
    bootstrap_ci,
    bootstrap_cis,
    choose_threshold,
    classification_metrics,
    subgroup_table,
    wilson_interval,
)

BINARY = ["unmasked", "masked"]
THREE = ["unmasked", "masked", "incorrect"]


def _probs(pos: list[float]) -> np.ndarray:
    s = np.asarray(pos, dtype=float)
    return np.c_[1 - s, s]


def test_perfectly_separable_binary():
    y = [0, 0, 0, 1, 1, 1]
    m = classification_metrics(y, _probs([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), BINARY)
    for key in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "pr_auc"):
        assert m[key] == pytest.approx(1.0), key
    assert m["confusion_matrix"] == [[3, 0], [0, 3]]
    assert m["undefined"] == {}
    assert m["positive_class"] == "masked"
    # Brier = mean squared distance of p(masked) from the label.
    assert m["brier"] == pytest.approx(np.mean([0.01, 0.04, 0.09, 0.09, 0.04, 0.01]))


def test_all_wrong_binary():
    y = [0, 0, 1, 1]
    m = classification_metrics(y, _probs([0.9, 0.8, 0.2, 0.1]), BINARY)
    assert m["accuracy"] == 0.0
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["specificity"] == 0.0
    assert m["f1"] == 0.0
    assert m["roc_auc"] == 0.0  # perfectly inverted ranking
    assert m["confusion_matrix"] == [[0, 2], [2, 0]]


def test_known_mixed_binary_values():
    # TP=2 (0.9, 0.6), FN=1 (0.4), FP=1 (0.7), TN=2 (0.2, 0.1)
    y = [1, 1, 1, 0, 0, 0]
    m = classification_metrics(y, _probs([0.9, 0.6, 0.4, 0.7, 0.2, 0.1]), BINARY)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(2 / 3)
    # Pairs (pos, neg) ranked correctly: 0.9>all 3, 0.6>0.2,0.1 (not 0.7), 0.4>0.2,0.1 -> 7/9.
    assert m["roc_auc"] == pytest.approx(7 / 9)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    # A threshold of 0.65 turns the 0.6 positive into a false negative.
    m2 = classification_metrics(y, _probs([0.9, 0.6, 0.4, 0.7, 0.2, 0.1]), BINARY, 0.65)
    assert m2["recall"] == pytest.approx(1 / 3) and m2["threshold"] == 0.65


def test_single_class_has_clear_undefined_messages():
    m = classification_metrics([1, 1, 1], _probs([0.6, 0.9, 0.3]), BINARY)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["specificity"] is None
    assert "only one class ('masked')" in m["undefined"]["roc_auc"]
    assert "ROC-AUC is undefined" in m["undefined"]["roc_auc"]
    assert "no 'unmasked' items" in m["undefined"]["specificity"]
    assert m["support"] == {"unmasked": 0, "masked": 3}
    # Precision would be 1 by construction: reported as not informative instead.
    assert m["precision"] is None and m["f1"] is None
    assert "right by construction; see recall" in m["undefined"]["precision"]


def test_single_class_all_wrong():
    m = classification_metrics([0, 0], _probs([0.9, 0.7]), BINARY)
    assert m["accuracy"] == 0.0 and m["specificity"] == 0.0
    assert m["recall"] is None and "no 'masked' items" in m["undefined"]["recall"]
    assert "wrong by construction; see specificity" in m["undefined"]["precision"]
    assert m["confusion_matrix"] == [[0, 2], [0, 0]]


def test_nothing_predicted_positive_makes_precision_undefined():
    m = classification_metrics([1, 0], _probs([0.2, 0.1]), BINARY)
    assert m["precision"] is None
    assert "nothing was predicted 'masked'" in m["undefined"]["precision"]
    assert m["recall"] == 0.0 and m["specificity"] == 1.0


def test_multiclass_per_class_and_macro():
    y = [0, 0, 1, 1, 2, 2]
    p = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.8, 0.1],
            [0.5, 0.4, 0.1],  # masked predicted unmasked
            [0.1, 0.1, 0.8],
            [0.1, 0.2, 0.7],
        ]
    )
    m = classification_metrics(y, p, THREE)
    assert m["task"] == "multiclass"
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["unmasked"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["masked"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["incorrect"]["f1"] == pytest.approx(1.0)
    assert m["macro_recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert m["per_class"]["incorrect"]["roc_auc"] == pytest.approx(1.0)


def test_multiclass_missing_class_is_undefined_not_zero():
    y = [0, 1, 1]
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    m = classification_metrics(y, p, THREE)
    assert m["accuracy"] == 1.0
    assert m["roc_auc_ovr"] is None
    assert "['incorrect']" in m["undefined"]["roc_auc_ovr"]
    assert m["per_class"]["incorrect"]["recall"] is None
    # Macro recall averages the classes where it is defined.
    assert m["macro_recall"] == pytest.approx(1.0)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(ValueError, match="columns"):
        classification_metrics([0, 1], np.ones((2, 3)) / 3, BINARY)
    with pytest.raises(ValueError, match="class indices"):
        classification_metrics([0, 2], _probs([0.1, 0.2]), BINARY)
    with pytest.raises(ValueError, match="0 items"):
        classification_metrics([], np.zeros((0, 2)), BINARY)


@pytest.mark.parametrize("rule", ["youden", "f1"])
def test_threshold_separable_is_midpoint_of_gap(rule):
    t = choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.8], rule)
    assert t["threshold"] == pytest.approx(0.5)
    assert t["score"] == pytest.approx(1.0) and t["rule"] == rule


def test_threshold_rules_differ_on_known_data():
    # Positives 0.35, 0.6, 0.9; negatives 0.1, 0.2, 0.4, 0.5.
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.35, 0.6, 0.9, 0.1, 0.2, 0.4, 0.5]
    youden = choose_threshold(y, s, "youden")
    # Best J: cut at 0.6 (tpr 2/3, fpr 0) -> J = 2/3; cut at 0.35 -> 1 - 2/4 = 0.5.
    assert youden["score"] == pytest.approx(2 / 3)
    assert youden["threshold"] == pytest.approx((0.6 + 0.5) / 2)
    f1 = choose_threshold(y, s, "f1")
    # F1 at 0.6: P=1, R=2/3 -> 0.8; at 0.35: P=3/5, R=1 -> 0.75.
    assert f1["score"] == pytest.approx(0.8)


def test_threshold_needs_two_classes():
    with pytest.raises(ValueError, match="only one class"):
        choose_threshold([1, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="Invalid threshold rule"):
        choose_threshold([0, 1], [0.2, 0.9], "magic")


def test_bootstrap_ci_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.35 * y + 0.65 * rng.random(200), 0, 1)
    p = _probs(s)
    point = classification_metrics(y, p, BINARY)
    a = bootstrap_ci(y, p, BINARY, n_boot=200, seed=3)
    b = bootstrap_ci(y, p, BINARY, n_boot=200, seed=3)
    assert a == b
    for key in ("accuracy", "recall", "roc_auc"):
        assert a[key]["low"] < point[key] < a[key]["high"]
        assert a[key]["high"] - a[key]["low"] < 0.3
        assert a[key]["n_valid"] == 200


def test_bootstrap_groups_widen_interval_for_duplicated_items():
    # Every item duplicated 8 times: resampling items pretends there are 8x more data.
    rng = np.random.default_rng(1)
    y0 = rng.integers(0, 2, 40)
    s0 = np.clip(0.3 * y0 + 0.7 * rng.random(40), 0, 1)
    y, s = np.repeat(y0, 8), np.repeat(s0, 8)
    groups = np.repeat(np.arange(40), 8)
    plain = bootstrap_ci(y, _probs(s), BINARY, n_boot=300, seed=0)["accuracy"]
    grouped = bootstrap_ci(y, _probs(s), BINARY, groups=groups, n_boot=300, seed=0)["accuracy"]
    assert (grouped["high"] - grouped["low"]) > 1.8 * (plain["high"] - plain["low"])


def test_bootstrap_single_class_auc_has_no_interval():
    ci = bootstrap_ci([1] * 30, _probs(np.linspace(0.1, 0.9, 30)), BINARY, n_boot=50)
    assert ci["roc_auc"] == {"low": None, "high": None, "n_valid": 0}
    assert ci["recall"]["n_valid"] == 50


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) is None


def test_subgroup_table_rows_and_values():
    frame = pd.DataFrame(
        {
            "mask_type": ["surgical", "surgical", "n95", "n95", "", ""],
            "source": ["out", "out", "out", "real", "real", "real"],
        }
    )
    y = [1, 1, 1, 1, 0, 0]
    s = [0.9, 0.4, 0.8, 0.7, 0.2, 0.6]
    t = subgroup_table(frame, y, _probs(s), BINARY, ["mask_type", "source", "color"])
    assert set(t["column"]) == {"mask_type", "source"}  # color absent: skipped
    row = t[(t["column"] == "mask_type") & (t["value"] == "surgical")].iloc[0]
    assert row["n"] == 2 and row["accuracy"] == 0.5 and row["recall"] == 0.5
    assert pd.isna(row["roc_auc"])  # only masked items in this subgroup
    none = t[(t["column"] == "mask_type") & (t["value"] == "(none)")].iloc[0]
    assert none["n_unmasked"] == 2 and none["specificity"] == 0.5
    real = t[(t["column"] == "source") & (t["value"] == "real")].iloc[0]
    assert real["n"] == 3 and real["accuracy"] == pytest.approx(2 / 3)
    assert real["roc_auc"] == pytest.approx(1.0)
    assert real["accuracy_low"] < 2 / 3 < real["accuracy_high"]


@pytest.mark.parametrize("classes", [BINARY, THREE])
def test_bootstrap_fast_path_matches_full_metrics(classes):
    from maskforge.evaluate.metrics import _headline_values

    rng = np.random.default_rng(5)
    k = len(classes)
    y = rng.integers(0, k, 120)
    p = rng.dirichlet(np.ones(k), 120)
    p[np.arange(120), y] += 0.4
    p /= p.sum(axis=1, keepdims=True)
    for t in (0.3, 0.5, 0.8):
        full = classification_metrics(y, p, classes, t)
        fast = _headline_values(y, p, k, {"t": t})["t"]
        for name, value in fast.items():
            assert value == pytest.approx(full[name]), (name, t)


def test_bootstrap_cis_several_thresholds_share_threshold_free_metrics():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    s = np.clip(0.4 * y + 0.6 * rng.random(100), 0, 1)
    cis = bootstrap_cis(y, _probs(s), BINARY, {"a": 0.5, "b": 0.3}, n_boot=100, seed=1)
    assert cis["a"]["roc_auc"] == cis["b"]["roc_auc"]
    # A lower threshold finds more positives: recall interval moves up.
    assert cis["b"]["recall"]["low"] > cis["a"]["recall"]["low"]
    assert bootstrap_ci(y, _probs(s), BINARY, 0.3, n_boot=100, seed=1) == cis["b"]


def test_subgroup_table_takes_missing_cells_as_none(tmp_path):
    # A frame read the pandas way (empty cells are NaN): under pandas 3 astype(str) keeps NaN.
    (tmp_path / "m.csv").write_text("mask_type,source\nsurgical,out\n,out\n,real\nnan,real\n")
    frame = pd.read_csv(tmp_path / "m.csv")
    assert frame["mask_type"].isna().sum() == 3
    t = subgroup_table(frame, [1, 0, 0, 1], _probs([0.9, 0.2, 0.3, 0.6]), BINARY, ["mask_type"])
    assert list(t["value"]) == ["(none)", "surgical"]
    assert t.set_index("value").loc["(none)", "n"] == 3


def test_bootstrap_keeps_items_whose_group_is_missing(tmp_path):
    # A group column read the pandas way: the empty cells are NaN, and every item still counts.
    (tmp_path / "g.csv").write_text("group\n" + "a\n" * 10 + "\n" * 10 + "b\n" * 10)
    groups = pd.read_csv(tmp_path / "g.csv", skip_blank_lines=False)["group"].to_numpy()
    assert pd.isna(groups).sum() == 10
    y = np.array([1] * 10 + [0] * 10 + [1] * 10)
    ci = bootstrap_ci(y, _probs(np.where(y == 1, 0.8, 0.3)), BINARY, groups=groups, n_boot=40)
    assert ci["specificity"]["n_valid"] > 0  # the unmasked items (group missing) are resampled
