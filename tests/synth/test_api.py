"""The public mask_face: deterministic per seed, detects faces itself, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from maskforge import mask_face

PHOTO = "0_0_caiguoqing_0146.jpg"  # frontal, well lit: HOG finds the face


@pytest.fixture(scope="module")
def faces(photo_faces) -> list[tuple[np.ndarray, object]]:
    return photo_faces([PHOTO])


def test_public_mask_face_is_deterministic(faces):
    rgb, face = faces[0]
    a = mask_face(rgb, face.landmarks, mask_type="surgical", seed=3)
    b = mask_face(rgb, face.landmarks, mask_type="surgical", seed=3)
    c = mask_face(rgb, face.landmarks, mask_type="surgical", seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == rgb.shape and not np.array_equal(a, rgb)


def test_public_mask_face_detects_when_no_landmarks(faces):
    rgb, face = faces[0]
    out = mask_face(rgb, seed=1)
    lm = face.landmarks
    assert (
        np.abs(
            out[int(lm[62, 1]), int(lm[62, 0])].astype(int) - rgb[int(lm[62, 1]), int(lm[62, 0])]
        ).sum()
        > 0
    )
    with pytest.raises(ValueError, match="RGB uint8"):
        mask_face(rgb[..., 0])
    with pytest.raises(ValueError, match="Invalid mask type 'balaclava'"):
        mask_face(rgb, face.landmarks, mask_type="balaclava")


def test_mask_face_is_the_package_export():
    from maskforge.synth.api import mask_face as direct

    assert mask_face is direct
