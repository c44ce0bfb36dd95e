"""Ear loops and head straps: the thin bands from a mask's sides to the ears, in either renderer.

At camera distance a surgical mask's white loops across the cheeks to the ears are one of the
few things that still tell it apart from a lower face in shadow, so the flat renderer draws them
too (the mesh renderer always did). Where each loop goes round its ear comes from the canonical
face posed on the landmarks (surface.ear_points), the side it leaves the mask from the template's
outline, and a side turned away from the camera gets none.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskforge.faces import geometry
from maskforge.synth.render import compose, surface
from maskforge.synth.sampling.params import FaceParams

LOOP_WIDTH = 0.007  # loop thickness in face widths
# The template's loops: "ear" (loops round the ears), "head" (straps round the head) or none.
LOOP_KINDS = {
    "surgical": "ear",
    "cloth": "ear",
    "kn95": "ear",
    "n95": "head",
    "n95_valve": "head",
    "sports": "ear",
}
SURGICAL_LOOP = (0.93, 0.93, 0.92)  # white elastic whatever the mask's colour
# How far above or below its ear a loop or strap may end, in face widths (loop_layer).
STRAP_REACH = 0.25
# Kept clear of loops round each eye centre: half-width, half-height in eye distances.
EYE_CLEAR = (0.3, 0.2)


def loop_layer(ears, attach: np.ndarray, roi, face_width: float, kind: str) -> np.ndarray:
    """Alpha (h, w) float32 over roi of the loops (or straps) from the mask's sides to the ears.

    ears: surface.ear_points (where each loop goes round its ear, whether that side shows);
    attach: (4, 2) px where loops leave the mask (left top, left bottom, right top, right
    bottom)."""
    x0, y0, x1, y1 = roi
    layer = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if kind == "none":
        return layer.astype(np.float32)
    ears, visible = ears
    thickness = max(1, int(round(LOOP_WIDTH * face_width)))
    for side in (0, 1):
        if not visible[side]:
            continue
        ear = ears[side, :2]
        top, bottom = attach[2 * side], attach[2 * side + 1]
        if kind == "head":  # straps run past the ear, above and below it
            ends = (ear + (0, -0.18 * face_width), ear + (0, 0.22 * face_width))
        else:
            ends = (ear + (0, -0.08 * face_width), ear + (0, 0.1 * face_width))
        for start, end in zip((top, bottom), ends):
            sag = -0.04 if start is top else 0.03
            bulge = (start + end) / 2 + (0, sag * face_width)
            t = np.linspace(0, 1, 24)[:, None]
            curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * bulge + t**2 * end
            points = np.round((curve - (x0, y0)) * 4).astype(np.int32)
            cv2.polylines(layer, [points], False, 255, thickness, cv2.LINE_AA, shift=2)
    return layer.astype(np.float32) / 255.0


def loop_colour(template, params: FaceParams) -> tuple[float, float, float]:
    """The loops' colour 0..1: white elastic on a surgical mask, the mask's own fabric else."""
    if template.name == "surgical":
        return SURGICAL_LOOP
    return tuple(c / 255.0 for c in params.color)


def add_flat_loops(
    out: np.ndarray,
    landmarks: np.ndarray,
    template,
    params: FaceParams,
    variant,
    matrix: np.ndarray,
    mask_alpha: np.ndarray,
    roi: tuple[int, int, int, int],
    gain: float,
    grayscale: bool = False,
) -> None:
    """Draw the template's loops into out (the photo with a flat-warped mask, RGB uint8, in
    place) from the warped outline's sides to the ears, under the mask (never over it).

    variant, matrix: the warped view and its homography (overlays.mask_placement); mask_alpha:
    the mask's coverage over roi; gain: the mask's light level (compose.light_gain), which the
    loops share; grayscale: the photo is black and white (the loops too, as the mask is)."""
    kind = LOOP_KINDS.get(template.name, "none")
    if kind == "none" or mask_alpha.size == 0:
        return
    attach = geometry.apply_homography(matrix, surface.outline_attach(variant.rgba[..., 3]))
    ears = surface.ear_points(surface.face_frame(surface.mesh_from_68(landmarks)))
    face_width = float(np.ptp(landmarks[:, 0]))
    # The loops' box: from where they leave the mask to where they end above and below each ear
    # (loop_layer's ends reach 0.18 / 0.22 face widths off the ear for head straps).
    reach = np.array([0.0, STRAP_REACH * face_width])
    extent = np.vstack([attach, ears[0][:, :2] - reach, ears[0][:, :2] + reach])
    big = compose.region_around(extent, out.shape)
    if big[2] <= big[0] or big[3] <= big[1]:
        return
    layer = loop_layer(ears, attach, big, face_width, kind)
    # Under the mask: its coverage, placed into the loops' box, hides them.
    x0, y0, x1, y1 = roi
    bx0, by0 = max(x0, big[0]), max(y0, big[1])
    bx1, by1 = min(x1, big[2]), min(y1, big[3])
    if bx1 > bx0 and by1 > by0:
        layer[by0 - big[1] : by1 - big[1], bx0 - big[0] : bx1 - big[0]] *= (
            1.0 - mask_alpha[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
        )
    # A loop never runs over an eye: on a turned or narrow face the straight-line estimate of
    # its path can graze the outer corner, where a real one goes round behind.
    iod = geometry.interocular(landmarks)
    for eye in geometry.eye_centres(landmarks):
        ex0, ex1 = (
            int(eye[0] - EYE_CLEAR[0] * iod) - big[0],
            int(eye[0] + EYE_CLEAR[0] * iod) - big[0],
        )
        ey0, ey1 = (
            int(eye[1] - EYE_CLEAR[1] * iod) - big[1],
            int(eye[1] + EYE_CLEAR[1] * iod) - big[1],
        )
        layer[max(ey0, 0) : max(ey1 + 1, 0), max(ex0, 0) : max(ex1 + 1, 0)] = 0.0
    ys, xs = np.nonzero(layer > 1.0 / 512)
    if len(ys) == 0:
        return
    # Only the loops' own pixels are touched (a whole-box blend would copy the photo again).
    colour = np.asarray(loop_colour(template, params), np.float32) * gain
    if grayscale:
        colour = np.full(3, colour @ np.array([0.299, 0.587, 0.114], np.float32), np.float32)
    colour = np.clip(colour, 0.0, 1.0)
    a = layer[ys, xs][:, None]
    yy, xx = ys + big[1], xs + big[0]
    mixed = out[yy, xx].astype(np.float32) / 255.0 * (1.0 - a) + colour * a
    out[yy, xx] = np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)
