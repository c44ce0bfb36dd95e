"""Group-aware stratified split: allocation, ratios, seeds, balance, empty-split errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maskforge.dataset.split import (
    SPLITS,
    allocate,
    assign_splits,
    balance_splits,
    parse_ratios,
    strata_keys,
)

MASK_TYPES = ("surgical", "cloth", "n95")


def synthetic_items(n_groups: int = 200, seed: int = 0, multi_face: bool = True) -> pd.DataFrame:
    """Items like a synthesize folder's plus a real-photo source; no files behind the paths.

    Each input photo (group) has 1-3 faces; each face gives a masked or incorrect output, its
    unmasked original, and sometimes a hard negative. The real source has single photos.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        for f in range(int(rng.integers(1, 4)) if multi_face else 1):
            label = "incorrect" if rng.random() < 0.3 else "masked"
            mask_type = MASK_TYPES[int(rng.integers(3))]
            rows.append((f"/o/{label}/{g}_{f}.jpg", label, f"out:{g}", "out", mask_type, "output"))
            rows.append((f"/o/unmasked/{g}_{f}.jpg", "unmasked", f"out:{g}", "out", "", "original"))
            if rng.random() < 0.4:
                rows.append(
                    (f"/o/unmasked/{g}_{f}_neg.jpg", "unmasked", f"out:{g}", "out", "", "negative")
                )
    for i in range(n_groups // 4):
        label = "masked" if i % 3 else "unmasked"
        rows.append((f"/r/{i}.jpg", label, f"real:{i}.jpg", "real", "", "photo"))
    columns = ["abspath", "label", "group", "source", "mask_type", "kind"]
    return pd.DataFrame(rows, columns=columns).assign(wear="")


@pytest.mark.parametrize(
    "n, ratios, expected",
    [
        (10, (0.8, 0.1, 0.1), [8, 1, 1]),
        (15, (0.8, 0.1, 0.1), [12, 2, 1]),  # tie on the remainder: the earlier split
        (10, (0.7, 0.2, 0.1), [7, 2, 1]),  # 10 * 0.7 is 7.000000000000001
        (7, (0.5, 0.5, 0.0), [4, 3, 0]),
        (5, (0.8, 0.1, 0.1), [3, 1, 1]),  # small data: every split keeps one
        (3, (0.8, 0.1, 0.1), [1, 1, 1]),
        (2, (0.8, 0.1, 0.1), [1, 1, 0]),  # not enough: the last split stays empty
        (0, (0.8, 0.1, 0.1), [0, 0, 0]),
    ],
)
def test_allocate(n, ratios, expected):
    assert allocate(n, ratios) == expected


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.6, 0.4, 0.0)])
def test_allocate_is_exact_and_within_one(ratios):
    for n in range(10, 400):
        counts = allocate(n, ratios)
        assert sum(counts) == n
        assert all(abs(c - n * r) < 1 for c, r in zip(counts, ratios, strict=True)), n


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.8,0.1,0.1", (0.8, 0.1, 0.1)),
        (" 0.7, 0.15 ,0.15", (0.7, 0.15, 0.15)),
        ("0.8,0.2", (0.8, 0.2, 0.0)),
        ("1,0,0", (1.0, 0.0, 0.0)),
    ],
)
def test_parse_ratios(text, expected):
    assert parse_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.8,0.1", "they sum to 0.9, not 1"),
        ("0.9,-0.1,0.2", "must not be negative"),
        ("a,b", "expected comma-separated numbers"),
        ("0.8,,0.2", "expected comma-separated numbers"),
        ("1", "give 2 or 3 comma-separated numbers"),
        ("0.5,0.2,0.2,0.1", "give 2 or 3 comma-separated numbers"),
        ("0,0.5,0.5", "the train ratio must be above 0"),
        ("nan,0.5,0.5", "finite"),
    ],
)
def test_bad_ratios(text, message):
    with pytest.raises(ValueError, match=message):
        parse_ratios(text)


def _split(items, ratios=(0.8, 0.1, 0.1), seed=0, stratify=()):
    return assign_splits(items, ratios, np.random.default_rng(seed), stratify)


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.6, 0.4, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_stay_whole_and_class_ratios_hold_within_one_item(ratios, seed):
    items = synthetic_items(seed=seed)
    split = _split(items, ratios, seed)
    assert items.assign(split=split).groupby("group")["split"].nunique().max() == 1
    for label, rows in items.groupby("label"):
        counts = split[rows.index].value_counts()
        for name, ratio in zip(SPLITS, ratios, strict=True):
            assert abs(counts.get(name, 0) - ratio * len(rows)) <= 1, (label, name, counts)
    if ratios[2] == 0:
        assert "test" not in set(split)


def test_same_seed_same_split_whatever_the_row_order():
    items = synthetic_items()
    first = _split(items, seed=7)
    shuffled = items.sample(frac=1.0, random_state=3)
    again = _split(shuffled, seed=7)
    pd.testing.assert_series_equal(first, again.sort_index())
    other = _split(items, seed=8)
    assert (first != other).sum() > 50


def test_stratify_by_mask_type_keeps_each_mask_type_within_one_item():
    items = synthetic_items(n_groups=300, seed=4)
    split = _split(items, (0.7, 0.15, 0.15), seed=4, stratify=("mask_type",))
    keys = strata_keys(items, ("mask_type",))
    for key in keys[items["kind"] == "output"].unique():
        rows = items[keys == key]
        counts = split[rows.index].value_counts()
        for name, ratio in zip(SPLITS, (0.7, 0.15, 0.15), strict=True):
            assert abs(counts.get(name, 0) - ratio * len(rows)) <= 1, (key, counts)


def _few(n_masked_groups: int) -> pd.DataFrame:
    rows = [(f"/u/{i}.jpg", "unmasked", f"u{i}") for i in range(20)]
    rows += [(f"/m/{i}.jpg", "masked", f"m{i}") for i in range(n_masked_groups)]
    return pd.DataFrame(rows, columns=["abspath", "label", "group"])


def test_too_few_groups_is_a_clear_error_not_an_empty_split():
    with pytest.raises(ValueError) as info:
        _split(_few(2))
    assert str(info.value) == (
        "test would have no masked images: 2 groups of class masked cannot fill 3 splits at "
        "ratios 0.8,0.1,0.1; use --ratios 0.8,0.2,0 or add data."
    )
    with pytest.raises(ValueError, match=r"1 group of class masked .* use --ratios 1,0,0"):
        _split(_few(1), (0.8, 0.2))
    # Three groups fill three splits, one each, and two splits need only two.
    items = _few(3)
    split = _split(items)
    assert sorted(split[items["label"] == "masked"]) == ["test", "train", "val"]
    assert set(_split(_few(2), (0.8, 0.2))[20:]) == {"train", "val"}


def _balanced(mode, seed=0, strata=None):
    items = synthetic_items(seed=seed)
    frame = items.assign(split=_split(items, seed=seed)).sort_values("abspath")
    out, report = balance_splits(frame, mode, np.random.default_rng(seed), strata)
    return frame, out, report


def test_undersample_equalises_classes_within_each_split():
    frame, out, report = _balanced("undersample")
    before = frame.groupby(["split", "label"]).size().unstack()
    after = out.groupby(["split", "label"]).size().unstack()
    for split in SPLITS:
        assert set(after.loc[split]) == {before.loc[split].min()}
    assert not out["abspath"].duplicated().any()
    assert set(out["abspath"]) <= set(frame["abspath"])
    # No row changed split.
    assert (out["split"] == frame.set_index("abspath").loc[out["abspath"], "split"].values).all()
    assert report.after.loc["incorrect", "train"] == before.loc["train"].min()
    assert sum(report.groups_dropped.values()) > 0


def test_undersample_keeps_strata_shares_when_stratified():
    items = synthetic_items(n_groups=300, seed=5)
    frame = items.assign(split=_split(items, seed=5, stratify=("mask_type",)))
    keys = strata_keys(items, ("mask_type",))
    out, _ = balance_splits(frame, "undersample", np.random.default_rng(0), keys)
    train_before = frame[(frame["split"] == "train") & (frame["label"] == "masked")]
    train_after = out[(out["split"] == "train") & (out["label"] == "masked")]
    share = len(train_after) / len(train_before)
    for mask_type in MASK_TYPES:
        n_before = (train_before["mask_type"] == mask_type).sum()
        n_after = (train_after["mask_type"] == mask_type).sum()
        assert abs(n_after - share * n_before) <= 1


def test_oversample_repeats_rows_within_their_split_only():
    frame, out, report = _balanced("oversample")
    before = frame.groupby(["split", "label"]).size().unstack()
    for split in SPLITS:
        rows = out[out["split"] == split]
        assert set(rows["label"].value_counts()) == {before.loc[split].max()}
        original = frame[frame["split"] == split]
        assert set(rows["abspath"]) == set(original["abspath"])
        # Repeats are spread evenly: within a class, counts differ by at most one.
        for _, sub in rows.groupby("label"):
            repeats = sub["abspath"].value_counts()
            assert repeats.max() - repeats.min() <= 1
    assert out.groupby("abspath")["split"].nunique().max() == 1
    assert (report.after.loc[:, "train"] == before.loc["train"].max()).all()


def test_weights_balance_each_split():
    frame, out, report = _balanced("weights")
    assert len(out) == len(frame)
    for split in SPLITS:
        rows = out[out["split"] == split]
        totals = rows.groupby("label")["weight"].sum()
        np.testing.assert_allclose(totals, len(rows) / 3)
        n_masked = (rows["label"] == "masked").sum()
        assert report.weights[split]["masked"] == pytest.approx(len(rows) / (3 * n_masked))


def test_none_changes_nothing():
    frame, out, report = _balanced("none")
    assert len(out) == len(frame) and (out["weight"] == 1.0).all()
    pd.testing.assert_frame_equal(report.before, report.after)


def test_unknown_balance_and_stratify():
    items = synthetic_items(n_groups=20)
    with pytest.raises(ValueError, match="Invalid balance 'smote'. Only none, undersample"):
        balance_splits(items.assign(split="train"), "smote", np.random.default_rng(0))
    with pytest.raises(ValueError, match="Invalid stratify column 'color'"):
        _split(items, stratify=("color",))


def test_strata_keys_take_missing_cells_as_empty(tmp_path):
    # Items read the pandas way (empty cells are NaN): under pandas 3 astype(str) keeps NaN,
    # which factorize would put in no stratum at all.
    (tmp_path / "items.csv").write_text("label,mask_type\nmasked,cloth\nunmasked,\nmasked,\n")
    items = pd.read_csv(tmp_path / "items.csv")
    keys = strata_keys(items, ("mask_type",))
    assert list(keys) == ["masked|cloth", "unmasked|", "masked|"]
