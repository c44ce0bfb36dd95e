"""The surgical mask as a camera sees it: pleats, light from the photo's side, loops, highlights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskforge.synth.render import compose

PHOTO = "120.jpg"


def _lit(rgb: np.ndarray, side: str) -> np.ndarray:
    """The photo under a light from one side: a left-to-right ramp of 1.25 to 0.55 (or back)."""
    ramp = np.linspace(1.25, 0.55, rgb.shape[1])
    if side == "right":
        ramp = ramp[::-1]
    return np.clip(rgb * ramp[None, :, None], 0, 255).astype(np.uint8)


@pytest.fixture
def surgical(photo_faces, mask_on):
    """(photo, face, {side: (masked photo, coverage)}) for a plain light-blue surgical mask
    without grain, lit from the left, from the right and as photographed."""
    ((rgb, face),) = photo_faces([PHOTO])
    finish = compose.Finish(grain=0)
    out = {"none": mask_on(rgb, face, finish, color=(168, 212, 236))}
    for side in ("left", "right"):
        out[side] = mask_on(_lit(rgb, side), face, finish, color=(168, 212, 236))
    return rgb, face, out


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _folds(image: np.ndarray, coverage: np.ndarray) -> int:
    """Pleat shadows down the mask's centre: rows darker than those a few pixels away."""
    inside = coverage > 0.99
    ys, xs = np.nonzero(inside)
    centre = int(np.median(xs))
    gray = _gray(image)
    profile = np.array(
        [gray[y, centre - 3 : centre + 4].mean() for y in range(ys.min() + 2, ys.max() - 2)]
    )
    # A fold's shadow: a row darker than the rows a few pixels above and below it.
    around = np.array(
        [
            np.median(np.r_[profile[max(i - 6, 0) : i - 2], profile[i + 3 : i + 7]])
            for i in range(len(profile))
        ]
    )
    dips = profile < around - 10
    return int(np.count_nonzero(dips[1:] & ~dips[:-1]) + dips[0])


def test_pleats_show_as_shaded_rows(surgical):
    _, _, out = surgical
    assert _folds(*out["none"]) >= 3


def test_the_mask_follows_the_photos_light(surgical):
    _, _, out = surgical

    def left_minus_right(side: str) -> float:
        image, coverage = out[side]
        inside = coverage > 0.99
        xs = np.nonzero(inside)[1]
        middle = (xs.min() + xs.max()) // 2
        columns = np.arange(image.shape[1])[None, :]
        gray = _gray(image)
        return float(
            gray[inside & (columns < middle)].mean() - gray[inside & (columns >= middle)].mean()
        )

    assert left_minus_right("left") - left_minus_right("right") > 15
    assert left_minus_right("left") > left_minus_right("none") > left_minus_right("right")


def test_a_light_mask_in_bright_light_keeps_its_hue_and_folds(surgical):
    _, _, out = surgical
    image, coverage = out["left"]  # the bright side of this photo is brighter still
    inside = coverage > 0.99
    pixels = image[inside].astype(int)
    # No washed-out plateau: few pixels with a clipped channel, the mask stays blue and its
    # folds still show (a per-channel clip turns half of it flat white-cyan here).
    assert (pixels.max(axis=1) >= 254).mean() < 0.15
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[inside]
    assert np.median(hsv[:, 1]) > 40 and 85 < np.median(hsv[:, 0]) < 115
    assert _folds(image, coverage) >= 3


def test_ear_loops_run_from_the_mask_to_the_ears(surgical, photo_faces, mask_on):
    rgb, face, out = surgical
    image, coverage = out["none"]
    near = cv2.dilate((coverage > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    changed = (np.abs(image.astype(int) - rgb.astype(int)).max(axis=2) > 25) & ~near
    lm = face.landmarks
    mid = lm[27, 0]
    # Both sides of a frontal face: light pixels off the mask, between its side and the ear.
    for side in (changed[:, : int(mid)], changed[:, int(mid) :]):
        assert side.sum() >= 8
    gaiter, _ = mask_on(rgb, face, compose.Finish(grain=0), mask_type="gaiter")
    g_cov = mask_on(rgb, face, compose.Finish(grain=0), mask_type="gaiter")[1]
    g_near = cv2.dilate((g_cov > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not ((np.abs(gaiter.astype(int) - rgb.astype(int)).max(axis=2) > 25) & ~g_near).any()


def test_loops_on_a_black_and_white_photo_are_grey(photo_faces, mask_on):
    ((rgb, face),) = photo_faces([PHOTO])
    gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    for mask_type in ("cloth", "n95"):
        out, _ = mask_on(
            gray, face, compose.Finish(grain=0), mask_type=mask_type, color=(200, 30, 40)
        )
        spread = out.astype(int).max(axis=2) - out.astype(int).min(axis=2)
        assert spread.max() <= 2, mask_type  # no colour anywhere: not the mask, not its loops


def test_head_straps_reach_past_the_ear_uncut(photo_faces, mask_on):
    ((rgb, face),) = photo_faces([PHOTO])
    out, coverage = mask_on(rgb, face, compose.Finish(grain=0), mask_type="n95")
    near = cv2.dilate((coverage > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    rows = np.nonzero(
        ((np.abs(out.astype(int) - rgb.astype(int)).max(axis=2) > 25) & ~near).any(axis=1)
    )[0]
    # The straps' upper ends lie well above the eyes (0.18 face widths above the ears).
    assert rows.min() < face.landmarks[36:48, 1].min() - 5
