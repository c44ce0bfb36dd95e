"""Pure geometry: anchors, yaw, variants, wear, homography, crops, shape plausibility."""

from __future__ import annotations

import numpy as np
import pytest

from maskforge.faces import geometry


@pytest.fixture
def frontal() -> np.ndarray:
    """A frontal 68-point face: the mean shape scaled to ~60 px between the eyes, centred at 200."""
    shape = geometry.mean_shape()
    left, right = geometry.eye_centres(shape)
    scale = 60.0 / np.linalg.norm(right - left)
    return shape * scale + 200.0


def turned(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a frontal face about a vertical axis with a crude depth model (nose in front)."""
    lm = landmarks.copy()
    centre = lm[:, 0].mean()
    depth = np.zeros(68)
    depth[27:36] = np.linspace(0.1, 0.45, 9).clip(0, 0.45)  # nose bridge -> tip sticks out
    depth[30:36] = 0.45
    depth[48:68] = 0.2
    depth[0:17] = -0.25  # jaw contour lies behind
    width = np.ptp(lm[:, 0])
    t = np.radians(degrees)
    x = lm[:, 0] - centre
    lm[:, 0] = centre + x * np.cos(t) + depth * width * np.sin(t)
    return lm


def test_anchor_order_on_frontal_face(frontal):
    a = dict(zip(geometry.ANCHOR_NAMES, geometry.face_anchors(frontal)))
    assert a["cheek_left"][0] < a["nose"][0] < a["cheek_right"][0]
    assert a["jaw_left"][0] < a["chin"][0] < a["jaw_right"][0]
    assert a["nose"][1] < a["jaw_left"][1] < a["chin"][1]
    # The cheek points lie on the eye-parallel line through the nose anchor.
    left_eye, right_eye = geometry.eye_centres(frontal)
    across = (right_eye - left_eye) / np.linalg.norm(right_eye - left_eye)
    for name in ("cheek_left", "cheek_right"):
        offset = a[name] - a["nose"]
        assert abs(offset[0] * across[1] - offset[1] * across[0]) < 0.5
    np.testing.assert_allclose(a["nose"], frontal[29])
    np.testing.assert_allclose(a["chin"], frontal[8])
    # Symmetric face -> symmetric anchors.
    np.testing.assert_allclose(
        a["nose"][0] - a["cheek_left"][0], a["cheek_right"][0] - a["nose"][0], rtol=0.08
    )


def test_anchors_follow_in_plane_rotation(frontal):
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = frontal.mean(axis=0)
    rotated = (frontal - centre) @ rot.T + centre
    expected = (geometry.face_anchors(frontal) - centre) @ rot.T + centre
    np.testing.assert_allclose(geometry.face_anchors(rotated), expected, atol=1.5)


def test_yaw_sign_and_size(frontal):
    assert abs(geometry.estimate_yaw(frontal)) < 5
    right = geometry.estimate_yaw(turned(frontal, 35))
    left = geometry.estimate_yaw(turned(frontal, -35))
    assert right > 20 and left < -20
    np.testing.assert_allclose(right, -left, atol=2)
    mirrored = frontal.copy()
    mirrored[:, 0] = 400 - mirrored[:, 0]
    assert abs(geometry.estimate_yaw(mirrored)) < 5


@pytest.mark.parametrize(
    "yaw, variant",
    [(0, "front"), (25, "front"), (-29.9, "front"), (30, "right"), (55, "right"), (-31, "left")],
)
def test_choose_variant_only_beyond_threshold(yaw, variant):
    assert geometry.choose_variant(yaw, 30) == variant


def test_wear_styles_move_the_top_edge(frontal):
    anchors = geometry.face_anchors(frontal)
    np.testing.assert_array_equal(geometry.wear_anchors(anchors, frontal, "correct"), anchors)
    nose_out = geometry.wear_anchors(anchors, frontal, "nose_out")
    chin = geometry.wear_anchors(anchors, frontal, "chin")
    # nose_out: top edge between nose tip and upper lip; chin: below the lower lip.
    assert frontal[33, 1] < nose_out[0, 1] < frontal[51, 1]
    assert chin[0, 1] > frontal[57, 1]
    with pytest.raises(ValueError, match="Invalid wear style 'sideways'"):
        geometry.wear_anchors(anchors, frontal, "sideways")


def test_homography_recovers_a_known_mapping():
    truth = np.array([[1.2, 0.1, 30.0], [-0.05, 0.9, 12.0], [1e-4, 2e-4, 1.0]])
    src = np.array([[0, 0], [100, 0], [100, 80], [0, 80], [50, 40], [20, 70]], float)
    dst = geometry.apply_homography(truth, src)
    found = geometry.homography(src, dst)
    np.testing.assert_allclose(found / found[2, 2], truth, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="at least 4"):
        geometry.homography(src[:3], dst[:3])


@pytest.mark.parametrize(
    "box, shape, expected",
    [
        ((100, 100, 200, 200), (400, 400), (75, 75, 225, 225)),  # margin 0.25 each side
        ((0, 0, 100, 100), (400, 400), (0, 0, 150, 150)),  # shifted into the image
        ((-20, 10, 140, 150), (150, 140), (0, 10, 140, 150)),  # tight crop: the short side
        ((300, 300, 380, 390), (400, 400), (265, 265, 400, 400)),  # 135 px, shifted in
    ],
)
def test_square_crop(box, shape, expected):
    crop = geometry.square_crop(box, shape, 0.25)
    assert crop == expected
    x0, y0, x1, y1 = crop
    assert x1 - x0 == y1 - y0 and x0 >= 0 and y0 >= 0 and x1 <= shape[1] and y1 <= shape[0]


def test_shape_residual_separates_faces_from_noise(frontal, rng):
    assert geometry.shape_residual(frontal) < 1e-6
    assert geometry.shape_residual(frontal * 3 + 17) < 1e-6  # similarity-invariant
    assert geometry.shape_residual(rng.uniform(0, 300, (68, 2))) > 0.3


def test_box_from_landmarks_contains_the_face(frontal):
    left, top, right, bottom = geometry.box_from_landmarks(frontal)
    assert left <= frontal[:, 0].min() + 2 and right >= frontal[:, 0].max() - 2
    assert top < frontal[19, 1] and bottom >= frontal[8, 1] - 6
