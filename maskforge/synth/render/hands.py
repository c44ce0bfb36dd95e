"""A hand raised near (never over) a masked face: `synthesize --hands-near-mask`.

Without it every hand in the data covers a mouth and is labelled unmasked (the hand-over-mouth
hard negatives), so a classifier learns "hand near the face = no mask". Here a hand sprite of
mask_templates/occluders, tinted with the face's skin, is raised beside the temple, the cheek or
the jaw (fingers up), then pushed outward until none of it lies on the mask, the mouth, the nose
or the eyes; the label stays the face's. The same overlay goes
on the masked output and on its unmasked original, so the pair still differs only by the mask.
Deterministic given sampling.NearHandParams; the generator supplies only the grain.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskforge.faces import geometry
from maskforge.synth.render import compose
from maskforge.synth.render.overlays import skin_colour
from maskforge.synth.sampling.params import Grain, NearHandParams

Overlay = tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]
# How far each try pushes the hand outward, and for at most how many tries (face widths).
PUSH_STEP = 0.08
PUSH_TRIES = 12
# A hand covering less than MIN_HAND_SHARE of the output frame would be a sliver of skin at an
# edge (3% still looked like one): no hand is added. Its forearm may leave the frame.
MIN_HAND_SHARE = 0.04
# Mask coverage above which a pixel is the mask's; the keep-out zone grows by KEEP_OUT_GROW face
# widths so that the hand's soft edge stays off the mask's.
MASK_ALPHA = 0.02
KEEP_OUT_GROW = 0.02
# The facial features a hand never covers (68-landmark indices): the mouth, the nose, each eye
# with its brow.
FEATURES = (
    range(48, 60),
    range(27, 36),
    (*range(17, 22), *range(36, 42)),
    (*range(22, 27), *range(42, 48)),
)
# At the jaw the hand comes from below and outside, its fingers leaning this many degrees in.
JAW_LEAN = 30.0


def keep_out(landmarks: np.ndarray, mask_alpha: np.ndarray) -> np.ndarray:
    """Where a near hand may not be (H, W) bool: the mask, the mouth, the nose and each eye
    with its brow, grown by KEEP_OUT_GROW face widths. Cheeks, temples and the jaw's side
    outside the mask stay free: a raised hand often rests there."""
    lm = np.asarray(landmarks, dtype=np.float64)
    zone = (mask_alpha > MASK_ALPHA).astype(np.uint8)
    for part in FEATURES:
        hull = cv2.convexHull(np.round(lm[list(part)]).astype(np.int32))
        cv2.fillConvexPoly(zone, hull, 1)
    grow = max(2, int(round(KEEP_OUT_GROW * float(np.ptp(lm[:, 0])))))
    return cv2.dilate(zone, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)


def place(
    landmarks: np.ndarray, occluder, params: NearHandParams, forbidden: np.ndarray
) -> np.ndarray | None:
    """The 3x3 similarity taking the (mirrored) sprite beside the face, off `forbidden`; None
    when no push of up to PUSH_TRIES steps clears it."""
    lm = np.asarray(landmarks, dtype=np.float64)
    anchors = geometry.face_anchors(lm)
    face_width = float(np.linalg.norm(anchors[2] - anchors[1]))
    left_eye, right_eye = geometry.eye_centres(lm)
    across = (right_eye - left_eye) / max(float(np.linalg.norm(right_eye - left_eye)), 1e-9)
    up = np.array([across[1], -across[0]])
    outward = params.side * across
    if params.spot == "jaw":
        base = anchors[3 if params.side < 0 else 4]
        push = outward
        reach = _turn(up, params.tilt - JAW_LEAN, outward)
    else:
        contour = anchors[1 if params.side < 0 else 2] if params.spot == "cheek" else None
        base = lm[0 if params.side < 0 else 16] if contour is None else contour
        push = outward
        reach = _turn(up, params.tilt, outward)
    alpha = _sprite(occluder, params.mirrored)[0][..., 3]
    anchor = _anchor(occluder, params.mirrored)
    ys, xs = np.nonzero(alpha > 127)
    own = anchor - np.array([xs.mean(), ys.mean()])  # the way the sprite's fingers point
    angle = np.arctan2(reach[1], reach[0]) - np.arctan2(own[1], own[0])
    scale = face_width / occluder.face_width * params.scale
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = base + params.gap * face_width * push
    for _ in range(PUSH_TRIES + 1):
        matrix = np.eye(3)
        matrix[:2, :2], matrix[:2, 2] = rot, target - rot @ anchor
        if not _touches(alpha, matrix, forbidden):
            return matrix
        target = target + PUSH_STEP * face_width * push
    return None


def near_hand_overlay(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    occluder,
    params: NearHandParams,
    mask_alpha: np.ndarray,
    frame: tuple[int, int, int, int],
    finish: compose.Finish,
    grain: Grain,
) -> Overlay | None:
    """The hand as (rgb float 0..1, alpha, roi) for compose.blend, or None when it cannot be
    placed off the face or would cover less than MIN_HAND_SHARE of `frame`.

    occluder: a templates.Occluder of kind hand; mask_alpha: the mask's coverage (H, W) 0..1 in
    photo pixels; grain: the face's grain (drawn from only when a hand is added).
    """
    from maskforge.synth.render.templates import render_appearance

    forbidden = keep_out(landmarks, mask_alpha)
    matrix = place(landmarks, occluder, params, forbidden)
    if matrix is None:
        return None
    rgba, variant = _sprite(occluder, params.mirrored)
    appearance = render_appearance(variant, skin_colour(rgb, landmarks))
    corners = np.array(
        [[0, 0], [rgba.shape[1], 0], [rgba.shape[1], rgba.shape[0]], [0, rgba.shape[0]]], float
    )
    over, alpha, roi = compose.warp_overlay(appearance, matrix, rgb.shape, corners)
    fx0, fy0, fx1, fy1 = frame
    x0, y0, x1, y1 = roi
    inside = alpha[max(fy0 - y0, 0) : max(fy1 - y0, 0), max(fx0 - x0, 0) : max(fx1 - x0, 0)]
    if float(inside.sum()) < MIN_HAND_SHARE * (fx1 - fx0) * (fy1 - fy0):
        return None
    over, alpha = compose.finish_overlay(
        over, alpha, rgb, roi, landmarks, finish, grain, match_level=False
    )
    # The placement already clears the zone; this cut only trims a feathered fringe.
    alpha = alpha * ~forbidden[y0:y1, x0:x1]
    return over, alpha.astype(np.float32), roi


def _turn(direction: np.ndarray, degrees: float, towards: np.ndarray) -> np.ndarray:
    """direction turned by degrees towards the perpendicular `towards` (negative: away)."""
    t = np.radians(degrees)
    return np.cos(t) * direction + np.sin(t) * towards


def _sprite(occluder, mirrored: bool):
    """(rgba, the sprite as a TemplateVariant for render_appearance), mirrored if asked."""
    from maskforge.synth.render.templates import TemplateVariant

    rgba, tint = occluder.rgba, occluder.tint
    if mirrored:
        rgba, tint = rgba[:, ::-1].copy(), tint[:, ::-1].copy()
    return rgba, TemplateVariant(rgba=rgba, tint=tint, anchors=np.zeros((6, 2)))


def _anchor(occluder, mirrored: bool) -> np.ndarray:
    anchor = np.asarray(occluder.mouth, dtype=np.float64)
    if mirrored:
        anchor = np.array([occluder.rgba.shape[1] - 1 - anchor[0], anchor[1]])
    return anchor


def _touches(alpha: np.ndarray, matrix: np.ndarray, forbidden: np.ndarray) -> bool:
    """Whether the sprite's alpha, warped by matrix, lands on any forbidden pixel."""
    h, w = alpha.shape
    corners = geometry.apply_homography(matrix, np.array([[0, 0], [w, 0], [w, h], [0, h]], float))
    height, width = forbidden.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return False
    shift = np.array([[1, 0, -x0], [0, 1, -y0]], float)
    warped = cv2.warpAffine(
        alpha, shift @ matrix, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR
    )
    return bool((forbidden[y0:y1, x0:x1] & (warped > 0)).any())
