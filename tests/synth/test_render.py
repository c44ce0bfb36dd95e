"""Compositing one face on real photos: where pixels change, wear styles, colours, light,
hard negatives; the compositor draws nothing but its grain."""

from __future__ import annotations

import numpy as np
import pytest

from maskforge.faces import geometry
from maskforge.synth.render import compose
from maskforge.synth.render.overlays import apply_mask, apply_occluder, mask_shape
from maskforge.synth.render.templates import load_occluders, load_templates
from maskforge.synth.sampling.draws import draw_look, draw_occluder
from maskforge.synth.sampling.params import Grain


@pytest.fixture(scope="module")
def faces(photo_faces) -> list[tuple[np.ndarray, object]]:
    return photo_faces()


def test_changes_lie_in_the_lower_face(faces, mask_on):
    for rgb, face in faces:
        out, alpha = mask_on(rgb, face)
        changed = np.abs(out.astype(int) - rgb.astype(int)).sum(axis=2) > 30
        ys, xs = np.nonzero(changed)
        assert len(ys) > 0.08 * rgb.shape[0] * rgb.shape[1]
        lm = face.landmarks
        nose_line = lm[27, 1] + 0.3 * (lm[30, 1] - lm[27, 1])  # upper third of the nose
        assert np.mean(ys > nose_line) > 0.97
        left, top, right, bottom = face.box
        w = right - left
        inside = (
            (xs > left - 0.2 * w) & (xs < right + 0.2 * w) & (ys > top) & (ys < bottom + 0.35 * w)
        )
        assert inside.mean() > 0.95
        # Eyes (with a margin of a quarter eye distance) are untouched, but for the faint tail
        # of the feathered top edge (at most a few grey levels).
        iod = geometry.interocular(lm)
        for eye in geometry.eye_centres(lm):
            x0, x1 = int(eye[0] - 0.25 * iod), int(eye[0] + 0.25 * iod)
            y0, y1 = int(eye[1] - 0.15 * iod), int(eye[1] + 0.15 * iod)
            diff = np.abs(out[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1].astype(int))
            assert diff.max() <= 3 and diff.mean() < 0.1


def _alpha_at(alpha, point):
    return float(alpha[int(round(point[1])), int(round(point[0]))])


@pytest.mark.parametrize(
    "wear, nose_covered, mouth_covered",
    [("correct", True, True), ("nose_out", False, True), ("chin", False, False)],
)
def test_wear_styles(faces, wear, nose_covered, mouth_covered, mask_on):
    for rgb, face in faces:
        _, alpha = mask_on(rgb, face, wear=wear)
        lm = face.landmarks
        nose_tip = _alpha_at(alpha, lm[30])
        mouth = _alpha_at(alpha, lm[62:67].mean(axis=0))
        assert (nose_tip > 0.9) if nose_covered else (nose_tip < 0.05), (wear, nose_tip)
        assert (mouth > 0.9) if mouth_covered else (mouth < 0.05), (wear, mouth)
        assert _alpha_at(alpha, lm[8] - [0, 0.1 * geometry.interocular(lm)]) > 0.9  # chin covered


def test_colour_changes_only_mask_pixels(faces, mask_on):
    rgb, face = faces[0]
    blue, alpha = mask_on(rgb, face, color=(40, 60, 200))
    red, _ = mask_on(rgb, face, color=(200, 40, 40))
    diff = np.abs(blue.astype(int) - red.astype(int)).sum(axis=2)
    assert (diff[alpha > 0.5] > 40).mean() > 0.9
    assert (diff[alpha == 0] == 0).all()
    # The mask reads as its colour: blue channel dominates under the blue mask.
    core = alpha > 0.99
    assert blue[core][:, 2].mean() > blue[core][:, 0].mean() + 50
    assert red[core][:, 0].mean() > red[core][:, 2].mean() + 50


def test_pattern_changes_fabric_only(faces, mask_on):
    rgb, face = faces[0]
    plain, alpha = mask_on(rgb, face)
    striped, _ = mask_on(rgb, face, pattern="stripes")
    diff = np.abs(plain.astype(int) - striped.astype(int)).sum(axis=2)
    assert (diff[alpha > 0.99] > 20).mean() > 0.2
    assert (diff[alpha == 0] == 0).all()


def test_grayscale_photo_gets_a_gray_mask(faces, mask_on):
    rgb, face = faces[1]
    gray = np.repeat(rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    out, alpha = mask_on(gray, face, color=(40, 60, 200))
    core = out[alpha > 0.5].astype(int)
    assert np.abs(core[:, 0] - core[:, 2]).max() <= 2


def test_light_follows_the_photo(faces, mask_on):
    rgb, face = faces[1]
    dark = (rgb.astype(np.float32) * 0.35).astype(np.uint8)
    bright, alpha = mask_on(rgb, face, color=(230, 230, 230))
    dim, _ = mask_on(dark, face, color=(230, 230, 230))
    core = alpha > 0.99
    assert dim[core].mean() < 0.75 * bright[core].mean()


def test_scarves_vary_in_colour_and_stay_on_the_lower_face(faces):
    scarf = next(o for o in load_occluders().values() if o.kind == "scarf")
    rgb, face = faces[0]
    nose_y = face.landmarks[30, 1]
    means = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        drawn = draw_occluder(rng, scarf)
        out = apply_occluder(rgb, face.landmarks, scarf, drawn, compose.Finish(), Grain(rng))
        changed = np.abs(out.astype(int) - rgb.astype(int)).sum(axis=2) > 30
        ys = np.nonzero(changed)[0]
        assert changed.sum() > 0.05 * changed.size
        assert np.mean(ys > nose_y) > 0.97  # nothing drawn over the eyes or nose
        means.append(out[changed].mean(axis=0))
    # Colour is drawn per face: the mean colour of the scarf differs between seeds.
    spread = np.ptp(np.array(means), axis=0).max()
    assert spread > 60, means


def test_without_grain_the_generator_is_not_touched(faces, face_params):
    # Every choice comes from the sampler: with the grain off, the compositor draws nothing,
    # so any generator gives the same image and is left as it was.
    rgb, face = faces[0]
    template = load_templates()["gas"]
    p = face_params(mask_type="gas")
    look = draw_look(np.random.default_rng(0), template, p, mask_shape(face.landmarks, template, p))
    assert look.texture is None and look.accent is not None
    no_grain = compose.Finish(grain=0.0)
    outputs = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        before = rng.bit_generator.state
        outputs.append(apply_mask(rgb, face.landmarks, template, p, look, no_grain, Grain(rng)))
        assert rng.bit_generator.state == before
    np.testing.assert_array_equal(*outputs)
    hand = next(o for o in load_occluders().values() if o.kind == "hand")
    drawn = draw_occluder(np.random.default_rng(0), hand)
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    a = apply_occluder(rgb, face.landmarks, hand, drawn, no_grain, Grain(rng))
    b = apply_occluder(rgb, face.landmarks, hand, drawn, no_grain, Grain(np.random.default_rng(6)))
    assert rng.bit_generator.state == before
    np.testing.assert_array_equal(a, b)


def test_accent_colour_recolours_the_cartridges_only(faces, face_params):
    rgb, face = faces[0]
    template = load_templates()["gas"]
    p = face_params(mask_type="gas")
    shape = mask_shape(face.landmarks, template, p)
    no_grain = compose.Finish(grain=0.0)
    looks = [draw_look(np.random.default_rng(s), template, p, shape) for s in range(12)]
    first = next(look for look in looks if look.accent != looks[0].accent)
    a, alpha = apply_mask(
        rgb, face.landmarks, template, p, looks[0], no_grain, None, return_alpha=True
    )
    b = apply_mask(rgb, face.landmarks, template, p, first, no_grain, None)
    changed = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0
    assert changed.any() and not changed[alpha == 0].any()
    assert changed.sum() < 0.5 * (alpha > 0.5).sum()  # the cartridges, not the whole mask
