"""Composite one face: a mask, or a hard-negative occluder, warped onto a photo and blended.

Deterministic functions of (image, landmarks, template or occluder, parameters): every choice is
drawn beforehand by the sampler (sampling/params.py: FaceParams, MaskLook, OccluderParams). The
generator they take supplies only the photo-matched grain (compose.finish_overlay), whose size
and strength depend on the photo's pixels; it is drawn last. Images are RGB uint8 (H, W, 3);
landmarks (68, 2) float, x, y in pixels of the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskforge.faces import geometry
from maskforge.synth.render import compose, loops
from maskforge.synth.sampling.params import FaceParams, Grain, MaskLook, OccluderParams

MAX_SKIN_SATURATION = 110  # of 255 (OpenCV HSV)
# Standard deviation of a hard negative's offset from the mouth, in face widths.
OCCLUDER_SHIFT = 0.04


def mask_placement(landmarks: np.ndarray, template, params: FaceParams):
    """(template view at its working size, 3x3 homography from it into the photo).

    template: a templates.MaskTemplate; params give the view (variant) and the wear style. A
    view much larger than the face is shrunk first (compose.prescale_factor).
    """
    variant = template.variants[params.variant]
    anchors = geometry.wear_anchors(geometry.face_anchors(landmarks), landmarks, params.wear)
    matrix = geometry.homography(variant.anchors, anchors)
    factor = compose.prescale_factor(matrix, variant.anchors)
    if factor < 1.0:
        variant = variant.shrunk(factor)
        matrix = geometry.homography(variant.anchors, anchors)
    return variant, matrix


def mask_shape(landmarks: np.ndarray, template, params: FaceParams) -> tuple[int, int]:
    """(h, w) of the template view as it is drawn on this face: the size of MaskLook.texture."""
    variant, _ = mask_placement(landmarks, template, params)
    return variant.rgba.shape[:2]


def apply_mask(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    template,
    params: FaceParams,
    look: MaskLook,
    finish: compose.Finish,
    grain: Grain,
    return_alpha: bool = False,
    mesh: np.ndarray | None = None,
):
    """The photo with a mask warped onto the face of `landmarks` (RGB uint8, same size).

    template: a templates.MaskTemplate; params say variant, colour, pattern weight and wear;
    look holds the pattern's texture and the accent colour (sampling.draws.draw_look); grain:
    the face's grain (sampling.params.Grain).
    With return_alpha, also the mask's coverage (H, W) float32 0..1 in photo pixels.
    mesh: the face's posed mesh (468+, 3) px: the mask is laid on it in 3D (mesh_render.py)
    instead of warped flat.
    """
    from maskforge.synth.render.templates import recolour_accents, render_appearance

    variant, matrix = mask_placement(landmarks, template, params)
    if mesh is not None:
        from maskforge.synth.render.mesh_render import apply_mask_mesh

        out, full = apply_mask_mesh(
            rgb, mesh, landmarks, template, params, look, variant, finish, grain
        )
        return (out, full) if return_alpha else out
    appearance = render_appearance(variant, params.color, look.texture, params.pattern_weight)
    if look.accent is not None:
        appearance = recolour_accents(appearance, variant.tint, look.accent)
    over, alpha, roi = compose.warp_overlay(appearance, matrix, rgb.shape, variant.anchors)
    light = compose.face_light(rgb, landmarks)
    over, alpha = compose.finish_overlay(
        over, alpha, rgb, roi, landmarks, finish, grain, light=light
    )
    out = compose.blend(rgb, over, alpha, roi)
    gain = compose.light_gain(light[0]) ** finish.light
    loops.add_flat_loops(
        out, landmarks, template, params, variant, matrix, alpha, roi, gain, grayscale=light[2]
    )
    if not return_alpha:
        return out
    full = np.zeros(rgb.shape[:2], np.float32)
    x0, y0, x1, y1 = roi
    full[y0:y1, x0:x1] = alpha
    return out, full


def apply_occluder(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    occluder,
    params: OccluderParams,
    finish: compose.Finish,
    grain: Grain,
) -> np.ndarray:
    """The photo with a non-mask occluder (hand, object, scarf) over the mouth (hard negative).

    occluder: a templates.Occluder; params from sampling.draws.draw_occluder; grain: the face's
    grain.
    """
    from maskforge.synth.render.templates import TemplateVariant, render_appearance

    anchors = geometry.face_anchors(landmarks)
    face_width = float(np.linalg.norm(anchors[2] - anchors[1]))
    left_eye, right_eye = geometry.eye_centres(landmarks)
    roll = np.degrees(np.arctan2(*(right_eye - left_eye)[::-1]))
    mouth = landmarks[48:68].mean(axis=0)
    rgba, tint, anchor = occluder.rgba, occluder.tint, np.asarray(occluder.mouth, float)
    if params.mirrored:
        rgba, tint = rgba[:, ::-1].copy(), tint[:, ::-1].copy()
        anchor = np.array([rgba.shape[1] - 1 - anchor[0], anchor[1]])
    scale = face_width / occluder.face_width * params.scale
    angle = roll + params.turn
    target = mouth + (OCCLUDER_SHIFT * face_width) * np.asarray(params.shift)
    matrix = np.vstack([cv2.getRotationMatrix2D(tuple(anchor), -angle, scale), [0, 0, 1]])
    matrix[:2, 2] += target - anchor
    color = skin_colour(rgb, landmarks) if params.color is None else params.color
    variant = TemplateVariant(rgba=rgba, tint=tint, anchors=np.zeros((6, 2)))
    texture = params.texture
    appearance = render_appearance(variant, color, texture, 0.0 if texture is None else 1.0)
    corners = np.array(
        [[0, 0], [rgba.shape[1], 0], [rgba.shape[1], rgba.shape[0]], [0, rgba.shape[0]]], float
    )
    over, alpha, roi = compose.warp_overlay(appearance, matrix, rgb.shape, corners)
    # A hand, tinted with the face's own skin, is already at the face's light level.
    over, alpha = compose.finish_overlay(
        over, alpha, rgb, roi, landmarks, finish, grain, match_level=occluder.kind != "hand"
    )
    return compose.blend(rgb, over, alpha, roi)


def skin_colour(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[int, int, int]:
    """Median colour of the cheeks and nose (RGB), to tint a hand like the face's own skin."""
    h, w = rgb.shape[:2]
    region = np.zeros((h, w), np.uint8)
    for idx in ([1, 2, 3, 31, 29], [15, 14, 13, 35, 29]):
        cv2.fillConvexPoly(region, np.round(landmarks[idx]).astype(np.int32), 1)
    pixels = rgb[region.astype(bool)]
    if len(pixels) < 8:
        return (200, 160, 140)
    median = np.median(pixels, axis=0).astype(np.uint8).reshape(1, 1, 3)
    # A strong colour cast on the cheeks would give a yellow or green hand: cap the saturation.
    hsv = cv2.cvtColor(median, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.minimum(hsv[..., 1], MAX_SKIN_SATURATION)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
