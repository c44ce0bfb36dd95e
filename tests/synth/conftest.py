"""Fixtures the synth tests share: real faces found on ../shared/faces/unmasked photos, face
parameters as the sampler would draw them, and one mask composited on a face."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import read_image
from maskforge.faces.cascade import FaceFinder
from maskforge.synth.render import compose
from maskforge.synth.render.overlays import apply_mask, mask_shape
from maskforge.synth.render.templates import load_templates
from maskforge.synth.sampling.draws import draw_look
from maskforge.synth.sampling.params import FaceParams, Grain

# Frontal, well-lit photos from ../shared/faces/unmasked where HOG finds the face.
FRONTAL_PHOTOS = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg")

Faces = list[tuple[np.ndarray, object]]


@pytest.fixture(scope="session")
def photo_faces(unmasked_dir: Path) -> Callable[..., Faces]:
    """find(names=FRONTAL_PHOTOS): (RGB image, its first plausible cascade face) per photo."""
    finder = FaceFinder("cascade", landmarks="dlib")
    found: dict[str, tuple[np.ndarray, object]] = {}

    def find(names: Sequence[str] = FRONTAL_PHOTOS) -> Faces:
        for name in names:
            if name not in found:
                rgb = read_image(unmasked_dir / name)
                faces = [f for f in finder.find(rgb) if f.plausible()]
                assert faces, name
                found[name] = (rgb, faces[0])
        return [found[name] for name in names]

    return find


def make_params(**kw) -> FaceParams:
    """A light-blue plain surgical mask worn correctly, front view, with kw replaced."""
    base = dict(
        mask_type="surgical",
        variant="front",
        color=(120, 170, 210),
        pattern=None,
        pattern_weight=0.7,
        wear="correct",
        negative=None,
        seed=0,
    )
    return FaceParams(**{**base, **kw})


@pytest.fixture
def face_params() -> Callable[..., FaceParams]:
    """make_params: FaceParams for a test, as keyword overrides of a plain surgical mask."""
    return make_params


@pytest.fixture
def mask_on() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """mask(rgb, face, finish=None, rng=None, **params): (photo, coverage) after the sampler's
    draw_look and apply_mask, both from one generator (seed 0 unless rng is given)."""

    def mask(rgb, face, finish=None, rng=None, **kw):
        p = make_params(**kw)
        template = load_templates()[p.mask_type]
        rng = rng or np.random.default_rng(0)
        look = draw_look(rng, template, p, mask_shape(face.landmarks, template, p))
        finish = finish or compose.Finish()
        return apply_mask(rgb, face.landmarks, template, p, look, finish, Grain(rng), True)

    return mask
