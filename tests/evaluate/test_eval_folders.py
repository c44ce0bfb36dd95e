"""folder_frame: labels from --label or from subfolders named like the classes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import write_image
from maskforge.evaluate.folders import folder_frame

CLASSES = ["unmasked", "masked"]


def _photo(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)


@pytest.fixture
def photos(tmp_path, rng) -> Path:
    """photos/masked/{0,1}.png, photos/unmasked/0.png, photos/other/x.png, photos/.hidden/y.png"""
    for rel in ("masked/0.png", "masked/1.png", "unmasked/0.png", "other/x.png", ".hidden/y.png"):
        write_image(tmp_path / "photos" / rel, _photo(rng))
    return tmp_path / "photos"


def test_folder_of_symlinks_to_photos_elsewhere(tmp_path, monkeypatch, rng):
    for k in range(3):
        write_image(tmp_path / "store" / f"p{k}.jpg", _photo(rng))
    (tmp_path / "picked/sub").mkdir(parents=True)
    for k in range(3):
        (tmp_path / "picked/sub" / f"link{k}.jpg").symlink_to(tmp_path / "store" / f"p{k}.jpg")
    monkeypatch.chdir(tmp_path)
    frame, _ = folder_frame(Path("picked"), "unmasked", CLASSES)
    assert sorted(frame["path"]) == ["sub/link0.jpg", "sub/link1.jpg", "sub/link2.jpg"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in frame["abspath"])
    assert set(frame["source"]) == {"picked"}


def test_one_class_labels_every_image_below(photos):
    frame, note = folder_frame(photos, ["masked"], CLASSES)
    assert note == "all images labelled 'masked'"
    assert sorted(frame["path"]) == [
        "masked/0.png",
        "masked/1.png",
        "other/x.png",
        "unmasked/0.png",
    ]
    assert set(frame["label"]) == {"masked"} and set(frame["source"]) == {"photos"}
    assert list(frame["group"]) == list(frame["path"])
    assert list(frame.columns) == ["path", "label", "source", "abspath", "group"]


def test_subfolders_named_like_the_classes(photos):
    frame, note = folder_frame(photos, None, CLASSES)
    assert note == "labels masked/ = masked, unmasked/ = unmasked (ignored subfolders: other)"
    labels = dict(zip(frame["path"], frame["label"], strict=True))
    assert labels == {
        "masked/0.png": "masked",
        "masked/1.png": "masked",
        "unmasked/0.png": "unmasked",
    }
    assert set(frame["source"]) == {"photos/masked", "photos/unmasked"}


def test_subfolder_class_pairs(photos):
    frame, note = folder_frame(photos, ["other=masked", "unmasked=unmasked"], CLASSES)
    assert note == "labels other/ = masked, unmasked/ = unmasked (ignored subfolders: masked)"
    assert sorted(frame["path"]) == ["other/x.png", "unmasked/0.png"]
    assert frame.set_index("path").loc["other/x.png", "label"] == "masked"


@pytest.mark.parametrize(
    "labels, message",
    [
        (["masked", "x=masked"], "give one CLASS, or SUBFOLDER=CLASS pairs"),
        (["masked", "unmasked"], "give one CLASS, or SUBFOLDER=CLASS pairs"),
        (["hat"], "Invalid label 'hat'. The model's classes are unmasked, masked."),
        (["other=hat"], "Invalid label 'hat'"),
        (["nope=masked"], "has no subfolder nope"),
    ],
)
def test_bad_labels_are_value_errors(photos, labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        folder_frame(photos, labels, CLASSES)


def test_folder_without_class_subfolders_or_images(tmp_path, rng):
    write_image(tmp_path / "a/sub/x.png", _photo(rng))
    with pytest.raises(ValueError, match="has no subfolder named after the model's classes"):
        folder_frame(tmp_path / "a", [], CLASSES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images found"):
        folder_frame(tmp_path / "empty", "masked", CLASSES)
    with pytest.raises(NotADirectoryError, match="Not a folder"):
        folder_frame(tmp_path / "a/sub/x.png", "masked", CLASSES)
