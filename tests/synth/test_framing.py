"""`synthesize --framing`: where each framing cuts the photo, what its draws take from the face's
generator, --size per framing, and pairs that keep one framing on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from maskforge.faces import geometry
from maskforge.synth.render import framing
from maskforge.synth.sampling.draws import CLOSEUP_ZOOM, WIDE_ZOOM, draw_framing, draw_near_hand
from maskforge.synth.sampling.params import FramingParams
from maskforge.synth.sampling.specs import Choice

SHAPE = (600, 800, 3)  # a photo with room around the face


@pytest.fixture(scope="module")
def face() -> tuple[tuple[float, float, float, float], np.ndarray]:
    """The mean 68-point face, 120 px between the jaw's ends, at (400, 260) of SHAPE."""
    lm = geometry.mean_shape()
    lm = (lm - lm.mean(axis=0)) * (120 / np.ptp(lm[:, 0])) + (400, 260)
    return geometry.box_from_landmarks(lm), lm


def _draws(name: str, wear: str = "correct", n: int = 40) -> list[FramingParams]:
    return [
        draw_framing(np.random.default_rng(seed), Choice((name,), (1.0,)), None, wear)
        for seed in range(n)
    ]


def test_crop_is_the_square_crop_and_full_is_the_photo(face):
    box, lm = face
    crop = framing.frame_box(FramingParams("crop"), box, lm, SHAPE, 0.3)
    assert crop == geometry.square_crop(box, SHAPE, 0.3)
    assert framing.frame_box(FramingParams("full"), box, lm, SHAPE) == (0, 0, 800, 600)


@pytest.mark.parametrize("wear", ["correct", "chin"])
def test_closeup_cuts_into_the_face_box(face, wear):
    box, lm = face
    cuts = set()
    for params in _draws("closeup", wear):
        x0, y0, x1, y1 = framing.frame_box(params, box, lm, SHAPE)
        assert x1 - x0 == y1 - y0 > 0 and 0 <= x0 and 0 <= y0 and x1 <= 800 and y1 <= 600
        assert not framing.contains((x0, y0, x1, y1), box)
        cuts.add(params.cut)
        if params.cut == "chin":  # the bottom edge crosses the chin, below the mouth
            assert lm[geometry.LOWER_LIP, 1] < y1 < lm[geometry.CHIN, 1]
        else:  # the top edge crosses the forehead, the chin stays in
            assert y0 >= lm[17:27, 1].mean() and y1 > lm[geometry.CHIN, 1]
    # A chin-worn mask is never cut off with the chin.
    assert cuts == ({"forehead"} if wear == "chin" else {"chin", "forehead"})


def test_wide_contains_the_face_box_with_margin(face):
    box, lm = face
    side = max(box[2] - box[0], box[3] - box[1])
    for params in _draws("wide"):
        x0, y0, x1, y1 = framing.frame_box(params, box, lm, SHAPE)
        assert x1 - x0 == y1 - y0 >= WIDE_ZOOM[0] * side - 1
        margins = (box[0] - x0, box[1] - y0, x1 - box[2], y1 - box[3])
        assert min(margins) > 0.1 * side, margins
        assert y1 - box[3] > box[1] - y0  # more room below the face (shoulders) than above


def test_wide_in_a_tight_photo_is_cut_to_its_short_side_never_padded(face):
    box, lm = face
    tight = (250, 240, 3)  # 240 px wide: the face (x 340..460) falls off it, the square too
    for params in _draws("wide", n=10):
        x0, y0, x1, y1 = framing.frame_box(params, box, lm, tight)
        assert (x0, x1) == (0, 240) and x1 - x0 == y1 - y0 and 0 <= y0 and y1 <= 250


def test_resize_output_keeps_squares_square_and_a_full_photo_its_aspect():
    square = np.zeros((90, 90, 3), np.uint8)
    assert framing.resize_output(square, 64).shape == (64, 64, 3)
    assert framing.resize_output(square, None) is not None
    photo = np.zeros((300, 400, 3), np.uint8)
    assert framing.resize_output(photo, 112).shape == (84, 112, 3)
    assert framing.resize_output(photo[:, :150], 112).shape == (112, 56, 3)


def test_default_framing_and_no_hands_draw_nothing():
    """Today's outputs stay byte-identical: crop alone and a zero rate take nothing from the
    generator, so every draw made before them gives what it gave."""
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    crop = Choice(("crop",), (1.0,))
    assert draw_framing(rng, crop, None, "correct") == FramingParams("crop")
    assert draw_framing(rng, Choice(("full",), (1.0,)), None, "chin") == FramingParams("full")
    assert draw_near_hand(rng, ["hand_back"], 0.0) is None
    assert rng.bit_generator.state == ref.bit_generator.state


def test_later_faces_of_a_photo_never_draw_full_and_those_of_a_full_photo_draw_nothing():
    mix = Choice(("crop", "closeup", "full"), (1.0, 1.0, 5.0))
    later = {draw_framing(np.random.default_rng(s), mix, False, "correct").name for s in range(60)}
    assert later == {"crop", "closeup"}
    first = {draw_framing(np.random.default_rng(s), mix, None, "correct").name for s in range(60)}
    assert first == {"crop", "closeup", "full"}
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    assert draw_framing(rng, mix, True, "correct") == FramingParams("full")
    assert rng.bit_generator.state == ref.bit_generator.state


def test_closeup_draw_order_is_pinned():
    for seed in range(10):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        p = draw_framing(rng, Choice(("crop", "closeup"), (1.0, 1.0)), None, "correct")
        name = ("crop", "closeup")[int(ref.choice(2, p=[0.5, 0.5]))]
        assert p.name == name
        if name == "closeup":
            assert p.zoom == ref.uniform(*CLOSEUP_ZOOM)
            assert p.cut == ("chin" if ref.random() < 0.6 else "forehead")
            assert p.depth == ref.random() and p.shift == np.clip(ref.standard_normal(), -1.5, 1.5)
        assert rng.bit_generator.state == ref.bit_generator.state


# -- on real photos ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(photo_faces):
    return photo_faces()


def _synth(name: str, **options):
    """Surgical masks in one framing, at the photo's resolution (no far camera)."""
    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer

    options.setdefault("far_camera", 0.0)
    return Synthesizer(
        SynthesisOptions(
            mask_types=Choice(("surgical",), (1.0,)), framing=Choice((name,), (1.0,)), **options
        )
    )


@pytest.mark.parametrize("name", ["crop", "closeup", "wide", "full"])
def test_masked_and_unmasked_of_a_pair_share_one_framing(photos, name):
    for i, (rgb, face) in enumerate(photos):
        (r,) = _synth(name).process(rgb, f"p{i}.jpg", [face.box])
        assert r.status == "ok" and r.framing.name == name
        x0, y0, x1, y1 = r.frame
        assert r.masked.shape == r.original.shape == (y1 - y0, x1 - x0, 3)
        # The original is the photo's own pixels in that very rectangle.
        np.testing.assert_array_equal(r.original, rgb[y0:y1, x0:x1])
        # The masked output differs from it only where the mask is: below the brows between
        # the eyes' outer corners (its ear loops run outward from there to the ears).
        rows, cols = np.nonzero((r.masked != r.original).any(axis=2))
        lm = face.landmarks
        middle = (cols + x0 > lm[36, 0]) & (cols + x0 < lm[45, 0])
        assert (rows[middle] + y0).min() > lm[17:27, 1].max()
        if name == "full":
            assert r.frame == (0, 0, rgb.shape[1], rgb.shape[0])
        if name == "closeup":
            assert not framing.contains(r.frame, face.box)
        if name == "wide":  # at least the crop's context, as far as the photo goes
            crop = geometry.square_crop(face.box, rgb.shape)
            assert x1 - x0 >= crop[2] - crop[0]


def test_rows_record_the_framing_and_size_resizes_every_framing(unmasked_dir, tmp_path):
    from maskforge.core.imageio import read_image

    photo = unmasked_dir / "120.jpg"
    shape = read_image(photo).shape
    for name in ("crop", "closeup", "wide", "full"):
        (row,) = _synth(name, size=96).run_file(photo, "120.jpg", tmp_path / name, "120")
        assert row["status"] == "ok" and row["framing"] == name
        frame = tuple(int(v) for v in row["frame"].split())
        masked = read_image(tmp_path / name / row["output"])
        original = read_image(tmp_path / name / row["original"])
        assert masked.shape == original.shape
        if name == "full":
            assert frame == (0, 0, shape[1], shape[0]) and row["output"] == "masked/120.jpg"
            assert max(masked.shape[:2]) == 96
            assert masked.shape[1] / masked.shape[0] == pytest.approx(shape[1] / shape[0], 0.02)
        else:
            assert masked.shape == (96, 96, 3) and row["output"] == "masked/120_0.jpg"
