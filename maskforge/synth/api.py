"""The public entry point for masking an image inside a user's own code: `mask_face`.

`from maskforge import mask_face` loads it lazily. It runs the same sampler and compositor as
`maskforge synthesize` (sampling.draw_look, render.apply_mask), one face at a time.
"""

from __future__ import annotations

import numpy as np

from maskforge.synth import compose, geometry
from maskforge.synth.faces import FaceFinder
from maskforge.synth.render import apply_mask, mask_shape
from maskforge.synth.sampling import FaceParams, draw_look

_FINDER: FaceFinder | None = None


def mask_face(
    image: np.ndarray,
    landmarks: np.ndarray | None = None,
    *,
    mask_type: str = "surgical",
    color: str | None = None,
    pattern: str | None = None,
    pattern_weight: float = 0.7,
    wear: str = "correct",
    seed: int = 0,
    finish: compose.Finish | None = None,
) -> np.ndarray:
    """Mask the face(s) in an RGB uint8 image; returns a new image of the same size.

    landmarks: (68, 2) dlib landmarks (x, y px) of one face; None detects every face (dlib
    cascade). color: a name or #rrggbb (None: a realistic colour for the mask type);
    pattern: a pattern name or image path; wear: correct, nose_out or chin. The same seed gives
    the same image.
    """
    from maskforge.synth.templates import load_templates, parse_color, sample_color

    global _FINDER
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}.")
    templates = load_templates()
    if mask_type not in templates:
        raise ValueError(f"Invalid mask type {mask_type!r}. Choose from: {', '.join(templates)}.")
    if landmarks is None:
        if _FINDER is None:
            _FINDER = FaceFinder("cascade")
        faces = [f.landmarks for f in _FINDER.find(image)]
    else:
        faces = [np.asarray(landmarks, dtype=np.float64).reshape(68, 2)]
    out = image
    for i, lm in enumerate(faces):
        rng = np.random.default_rng([seed, i])
        template = templates[mask_type]
        rgb_color = parse_color(color) if color else sample_color(template, rng)
        params = FaceParams(
            mask_type=mask_type,
            variant=geometry.choose_variant(geometry.estimate_yaw(lm)),
            color=rgb_color,
            pattern=pattern,
            pattern_weight=pattern_weight,
            wear=wear,
            negative=None,
            seed=seed,
        )
        look = draw_look(rng, template, params, mask_shape(lm, template, params))
        out = apply_mask(out, lm, template, params, look, finish or compose.Finish(), rng)
    return out
