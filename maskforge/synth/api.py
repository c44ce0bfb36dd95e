"""The public entry point for masking an image inside a user's own code: `mask_face`.

`from maskforge import mask_face` loads it lazily. It runs the same sampler and compositor as
`maskforge synthesize` (sampling.draws.FaceSampler, render.overlays.apply_mask), one face at a time.
"""

from __future__ import annotations

import numpy as np

from maskforge.choices import DEFAULT_DETECTOR, DEFAULT_LANDMARKS, DEFAULT_RENDERER, RENDERERS
from maskforge.faces import geometry
from maskforge.faces.cascade import FaceFinder
from maskforge.synth.render import compose
from maskforge.synth.render.overlays import apply_mask, mask_shape
from maskforge.synth.render.surface import mesh_from_68
from maskforge.synth.sampling.draws import FaceSampler
from maskforge.synth.sampling.params import FaceParams
from maskforge.synth.sampling.specs import parse_color

_FINDERS: dict[str, FaceFinder] = {}


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
    renderer: str = DEFAULT_RENDERER,
    landmark_model: str = DEFAULT_LANDMARKS,
) -> np.ndarray:
    """Mask the face(s) in an RGB uint8 image; returns a new image of the same size.

    landmarks: (68, 2) dlib-style landmarks (x, y px) of one face, or a (478, 3) MediaPipe mesh;
    None detects every face (the cascade, then landmark_model: "mediapipe" or "dlib").
    color: a name or #rrggbb (None: a realistic colour for the mask type); pattern: a pattern
    name or image path; wear: correct, nose_out or chin; renderer: "mesh" (laid on the 3D face)
    or "flat" (a 2D view warped by six anchors). The same seed gives the same image.
    """
    from maskforge.faces import mesh
    from maskforge.synth.render.templates import load_templates

    if renderer not in RENDERERS:
        raise ValueError(f"Invalid renderer {renderer!r}. Choose from: {', '.join(RENDERERS)}.")
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}.")
    templates = load_templates()
    if mask_type not in templates:
        raise ValueError(f"Invalid mask type {mask_type!r}. Choose from: {', '.join(templates)}.")
    if landmarks is None:
        if landmark_model not in _FINDERS:
            _FINDERS[landmark_model] = FaceFinder(DEFAULT_DETECTOR, landmarks=landmark_model)
        faces = [(f.landmarks, f.mesh) for f in _FINDERS[landmark_model].find(image)]
    else:
        given = np.asarray(landmarks, dtype=np.float64)
        if given.ndim == 2 and given.shape[0] >= mesh.MESH_VERTICES and given.shape[1] == 3:
            faces = [(mesh.to_68(given[:, :2]), given)]
        else:
            faces = [(given.reshape(68, 2), None)]
    out = image
    for i, (lm, face_mesh) in enumerate(faces):
        sampler = FaceSampler([seed, i])
        template = templates[mask_type]
        rgb_color = parse_color(color) if color else sampler.color(template)
        params = FaceParams(
            mask_type=mask_type,
            variant=(
                "front"
                if renderer == "mesh"
                else geometry.choose_variant(geometry.estimate_yaw(lm))
            ),
            color=rgb_color,
            pattern=pattern,
            pattern_weight=pattern_weight,
            wear=wear,
            negative=None,
            seed=seed,
        )
        look = sampler.look(template, params, mask_shape(lm, template, params))
        posed = None
        if renderer == "mesh":
            posed = face_mesh if face_mesh is not None else mesh_from_68(lm)
        out = apply_mask(
            out, lm, template, params, look, finish or compose.Finish(), sampler.grain, mesh=posed
        )
    return out
