"""`synthesize --hands-near-mask`: a hand raised beside a masked face, never on the mask or the
mouth, on both images of the pair, the label unchanged (real photos)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskforge.synth.render import compose, hands
from maskforge.synth.render.templates import load_occluders
from maskforge.synth.sampling.draws import NEAR_SPOTS
from maskforge.synth.sampling.params import Grain, NearHandParams
from maskforge.synth.sampling.specs import Choice

# Photos of people with room beside the face (320 x 428).
ROOMY = ("120.jpg", "125.jpg")


@pytest.fixture(scope="module")
def faces(photo_faces):
    return photo_faces(ROOMY)


def _mouth(shape, landmarks) -> np.ndarray:
    region = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(np.round(landmarks[48:60]).astype(np.int32)), 1)
    return region.astype(bool)


def test_near_hands_stay_off_the_mask_and_the_mouth(faces, mask_on):
    hand_sprites = sorted(n for n, o in load_occluders().items() if o.kind == "hand")
    placed = 0
    for rgb, face in faces:
        out, alpha = mask_on(rgb, face)
        mouth = _mouth(rgb.shape, face.landmarks)
        whole = (0, 0, rgb.shape[1], rgb.shape[0])
        for spot in NEAR_SPOTS:
            for side in (-1, 1):
                for name in hand_sprites:
                    params = NearHandParams(name, spot, side, 0.1, 10.0, 0.85, side > 0)
                    overlay = hands.near_hand_overlay(
                        rgb, face.landmarks, load_occluders()[name], params, alpha, whole,
                        compose.Finish(), Grain(np.random.default_rng(0)),
                    )  # fmt: skip
                    if overlay is None:
                        continue
                    placed += 1
                    with_hand = compose.blend(out, *overlay)
                    changed = (with_hand != out).any(axis=2)
                    assert changed.sum() > 0.03 * changed.size  # a visible hand
                    assert not (changed & (alpha > hands.MASK_ALPHA)).any()
                    assert not (changed & mouth).any()
    # Beside a face with room around it, a good share of the spots and sides finds a place.
    assert placed >= 0.3 * len(faces) * len(NEAR_SPOTS) * 2 * len(hand_sprites)


def test_no_room_off_the_mask_gives_no_hand(faces):
    """A mask over the whole photo leaves no place: the hand is pushed out of it, so none."""
    rgb, face = faces[0]
    everywhere = np.ones(rgb.shape[:2], np.float32)
    params = NearHandParams("hand_back", "cheek", 1, 0.1, 0.0, 0.85, False)
    whole = (0, 0, rgb.shape[1], rgb.shape[0])
    overlay = hands.near_hand_overlay(
        rgb, face.landmarks, load_occluders()["hand_back"], params, everywhere, whole,
        compose.Finish(), Grain(np.random.default_rng(0)),
    )  # fmt: skip
    assert overlay is None


@pytest.mark.parametrize("framing", ["crop", "full"])
def test_the_pair_gets_the_same_hand_and_keeps_its_label(faces, framing):
    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer

    options = SynthesisOptions(
        mask_types=Choice(("surgical",), (1.0,)),
        patterns=Choice(("none",), (1.0,)),
        framing=Choice((framing,), (1.0,)),
        hands_near_mask=1.0,
        landmarks="dlib",  # the faces' boxes get the 68 points these placements were set on
    )
    synth = Synthesizer(options)
    for i, (rgb, face) in enumerate(faces):
        (r,) = synth.process(rgb, f"p{i}.jpg", [face.box])
        assert r.status == "ok" and r.near_hand in load_occluders() and r.params.label == "masked"
        x0, y0, x1, y1 = r.frame
        photo = rgb[y0:y1, x0:x1]
        hand = (r.original != photo).any(axis=2)
        assert hand.sum() > 0.03 * hand.size  # the unmasked original shows the hand too
        np.testing.assert_array_equal(r.masked[hand], r.original[hand])  # the very same hand
        assert not (hand & _mouth(rgb.shape, face.landmarks)[y0:y1, x0:x1]).any()


def test_rows_name_the_hand_and_outputs_stay_in_masked(unmasked_dir, tmp_path):
    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer

    options = SynthesisOptions(
        mask_types=Choice(("surgical",), (1.0,)),
        framing=Choice(("full",), (1.0,)),
        hands_near_mask=1.0,
        far_camera=0.0,  # outputs the photo's size
    )
    synth, named = Synthesizer(options), []
    for key in "abcdefgh":  # keys seed the draws; a jaw too close to the edge fails
        (row,) = synth.run_file(unmasked_dir / ROOMY[0], f"{key}.jpg", tmp_path, key)
        assert row["label"] == "masked" and row["output"] == f"masked/{key}.jpg"
        assert "negative" not in row  # a hand near a mask is no hard negative
        named += [row["near_hand"]] if row["near_hand"] else []
    assert named and set(named) <= set(load_occluders())
