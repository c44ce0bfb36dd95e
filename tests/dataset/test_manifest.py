"""Manifests: CSV reading/writing, class order, and missing files counted or dropped on request."""

from __future__ import annotations

import pandas as pd
import pytest

from maskforge.dataset.manifest import (
    class_order,
    missing_files,
    read_manifest,
    require_files,
    write_manifest,
)


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


def test_class_order_is_canonical_then_sorted():
    assert class_order(["masked", "unmasked"]) == ["unmasked", "masked"]
    assert class_order(["incorrect", "masked", "unmasked", "masked"]) == [
        "unmasked",
        "masked",
        "incorrect",
    ]
    assert class_order(["zebra", "masked", "apple"]) == ["masked", "apple", "zebra"]


def test_roundtrip_resolves_paths_against_csv_folder(tmp_path):
    (tmp_path / "data").mkdir()
    img = tmp_path / "data" / "a.jpg"
    img.write_bytes(b"x")
    df = pd.DataFrame({"abspath": [str(img)], "label": ["masked"], "group": ["g1"]})
    write_manifest(df, tmp_path / "manifests" / "train.csv")
    text = (tmp_path / "manifests" / "train.csv").read_text().splitlines()
    assert text[0] == "path,label,group,source,mask_type,wear,weight"
    assert text[1].startswith("../data/a.jpg,masked,g1,")
    back = read_manifest(tmp_path / "manifests" / "train.csv")
    assert back.loc[0, "abspath"] == str(img)
    assert back.loc[0, "weight"] == 1.0


def test_optional_columns_are_filled(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\nx.jpg,unmasked\n")
    df = read_manifest(tmp_path / "m.csv")
    assert df.loc[0, "group"] == "x.jpg" and df.loc[0, "source"] == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("path,label\n", "no rows"),
        ("file,class\na.jpg,masked\n", "lacks column"),
        ("path,label\n,masked\n", r"m\.csv row 2 has an empty path"),
        ("path,label\na.jpg,masked\n   ,masked\n", r"m\.csv row 3 has an empty path"),
        ("path,label\na.jpg,masked\nb.jpg,\n", r"m\.csv row 3 has an empty label"),
        ("path,label,weight\na.jpg,masked,1\nb.jpg,masked,inf\n", r"row 3: weight 'inf' is not"),
        ("path,label,weight\na.jpg,masked,nan\n", r"m\.csv row 2: weight 'nan' is not a fin"),
        ("path,label,weight\na.jpg,masked,-2\n", r"m\.csv row 2: weight '-2' is not a finite"),
        ("path,label,weight\na.jpg,masked,heavy\n", r"m\.csv row 2: weight 'heavy' is not a"),
        ("path,label\na.jpg,masked,7\n", r"m\.csv is not a valid CSV: row 2 has 3 fields"),
    ],
)
def test_malformed_manifests_raise_one_line_errors(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_manifest(tmp_path / "m.csv")
    assert "\n" not in str(info.value)


def test_special_files_are_left_to_the_reader_not_called_missing(tmp_path, fifo):
    # A FIFO is there, but no image: the reader refuses it with its reason (never opening it).
    fifo(tmp_path / "cam.jpg")
    (tmp_path / "dev.jpg").symlink_to("/dev/null")
    (tmp_path / "dangling.jpg").symlink_to("gone.jpg")
    paths = [tmp_path / n for n in ["cam.jpg", "dev.jpg", "dangling.jpg"]]
    assert missing_files(paths) == [str(tmp_path / "dangling.jpg")]


def test_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_a_fifo_manifest_is_named_as_one_unopened(tmp_path, fifo):
    with pytest.raises(ValueError, match=r"^Manifest .*m\.csv is not a regular file \(a FIFO\)"):
        read_manifest(fifo(tmp_path / "m.csv"))
