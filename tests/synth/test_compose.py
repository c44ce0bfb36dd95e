"""compose: warping an overlay into a photo, matching its light and softness, blending."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskforge.core.imageio import read_image
from maskforge.synth.render import compose


def _overlay(h: int = 40, w: int = 60, color=(200, 30, 30)) -> np.ndarray:
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = color
    rgba[5:-5, 5:-5, 3] = 255
    return rgba


def test_warp_places_the_overlay_and_computes_only_its_region():
    shift = np.array([[1, 0, 30.5], [0, 1, 20], [0, 0, 1]], float)  # half-pixel: soft edges
    corners = np.array([[0, 0], [60, 0], [60, 40], [0, 40]], float)
    rgb, alpha, roi = compose.warp_overlay(_overlay(), shift, (200, 300, 3), corners)
    x0, y0, x1, y1 = roi
    assert (x0, y0, x1, y1) == (28, 18, 93, 62)  # 2 px beyond the corners, clipped to ints
    assert rgb.shape == (y1 - y0, x1 - x0, 3) and alpha.shape == (y1 - y0, x1 - x0)
    assert alpha[20, 30] == pytest.approx(1.0) and alpha[0, 0] == 0.0
    # Premultiplied warping: the colour at the soft edge is the overlay's, not darkened.
    edge = (alpha > 0.05) & (alpha < 0.95)
    np.testing.assert_allclose(rgb[edge].mean(axis=0), [200 / 255, 30 / 255, 30 / 255], atol=0.02)


def test_warp_off_the_photo_is_empty():
    far = np.array([[1, 0, 1000], [0, 1, 1000], [0, 0, 1]], float)
    corners = np.array([[0, 0], [60, 0], [60, 40], [0, 40]], float)
    rgb, alpha, roi = compose.warp_overlay(_overlay(), far, (100, 100, 3), corners)
    assert roi == (0, 0, 0, 0) and rgb.size == 0 and alpha.size == 0


@pytest.mark.parametrize("scale, expected", [(1.0, 1.0), (0.7, 1.0), (0.25, 0.35)])
def test_prescale_factor_shrinks_only_large_overlays(scale, expected):
    points = np.array([[0, 0], [100, 0], [100, 80], [0, 80]], float)
    matrix = np.diag([scale, scale, 1.0])
    assert compose.prescale_factor(matrix, points) == pytest.approx(expected)


def test_blend_leaves_pixels_outside_the_overlay_bit_identical(rng):
    photo = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    over = np.ones((10, 10, 3), np.float32)
    alpha = np.zeros((10, 10), np.float32)
    alpha[2:8, 2:8] = 1.0
    alpha[0, 0] = 1.0 / 1024  # below half a grey level: not applied
    out = compose.blend(photo, over, alpha, (20, 20, 30, 30))
    assert (out[22:28, 22:28] == 255).all()
    changed = np.any(out != photo, axis=2)
    assert changed.sum() == 36
    np.testing.assert_array_equal(compose.blend(photo, over, alpha, (0, 0, 0, 0)), photo)


def test_edge_blur_sigma_reads_back_a_known_blur(unmasked_dir):
    for name in ("120.jpg", "125.jpg"):
        gray = cv2.cvtColor(read_image(unmasked_dir / name), cv2.COLOR_RGB2GRAY)
        gray = gray.astype(np.float32)
        sharp = compose.edge_blur_sigma(gray)
        for sigma in (1.0, 2.0):
            found = compose.edge_blur_sigma(cv2.GaussianBlur(gray, (0, 0), sigma))
            assert found == pytest.approx(np.hypot(sharp, sigma), abs=0.35), (name, sigma)
    assert compose.edge_blur_sigma(np.full((40, 40), 90, np.float32)) == 0.0


def test_face_light_measures_level_cast_and_grayscale():
    landmarks = np.array([[20 + 60 * (i % 17) / 16, 30 + 40 * (i // 17) / 3] for i in range(68)])
    warm = np.zeros((100, 100, 3), np.uint8)
    warm[...] = (220, 150, 110)
    level, cast, gray = compose.face_light(warm, landmarks)
    assert 0.5 < level < 0.8 and not gray
    assert cast[0] > 1.0 > cast[2] and cast.mean() == pytest.approx(1.0)
    level, cast, gray = compose.face_light(np.full((100, 100, 3), 60, np.uint8), landmarks)
    assert gray and level == pytest.approx(61 / 255, abs=1e-3)


def test_finish_off_leaves_the_overlay_as_warped():
    landmarks = np.array([[20 + 60 * (i % 17) / 16, 30 + 40 * (i // 17) / 3] for i in range(68)])
    photo = np.full((100, 100, 3), (180, 120, 100), np.uint8)
    over = np.full((20, 20, 3), 0.5, np.float32)
    alpha = np.ones((20, 20), np.float32)
    off = compose.Finish(light=0, cast=0, feather=0, grain=0)
    out, a = compose.finish_overlay(over, alpha, photo, (40, 40, 60, 60), landmarks, off, None)
    np.testing.assert_array_equal(out, over)
    np.testing.assert_array_equal(a, alpha)
