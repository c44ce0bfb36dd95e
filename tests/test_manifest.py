"""Manifest file checks: missing files counted, dropped on request."""

from __future__ import annotations

import pandas as pd
import pytest

from maskforge.dataset.manifest import missing_files, require_files


def _frame(tmp_path, names):
    return pd.DataFrame(
        {"abspath": [str(tmp_path / n) for n in names], "label": ["masked"] * len(names)}
    )


def test_missing_files_lists_each_once_in_order(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()  # a folder is not an image file
    paths = [tmp_path / n for n in ["c.jpg", "a.jpg", "b.jpg", "c.jpg", "dir.jpg"]]
    assert missing_files(paths) == [str(tmp_path / n) for n in ["c.jpg", "b.jpg", "dir.jpg"]]


def test_require_files_raises_with_counts_or_drops(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    frame = _frame(tmp_path, ["a.jpg", "b.jpg", "a.jpg", "c.jpg"])
    with pytest.raises(ValueError) as info:
        require_files(frame, "train.csv")
    assert str(info.value) == (
        "2 of 3 images listed in train.csv are missing (first: b.jpg); "
        "pass --drop-missing to leave them out."
    )
    kept, missing = require_files(frame, "train.csv", drop_missing=True)
    assert kept.index.tolist() == [0, 2]
    assert missing == [str(tmp_path / "b.jpg"), str(tmp_path / "c.jpg")]
    with pytest.raises(ValueError, match="All 1 images listed in x.csv are missing"):
        require_files(_frame(tmp_path, ["z.jpg"]), "x.csv", drop_missing=True)
    same, none = require_files(_frame(tmp_path, ["a.jpg"]), "x.csv")
    assert none == [] and len(same) == 1
