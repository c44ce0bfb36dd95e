"""Per-face compositing: warp an RGBA overlay onto a photo, match its light, feather, blend.

Deterministic functions of (image, landmarks, overlay, parameters); randomness is drawn by the
caller. Images are RGB uint8 (H, W, 3); overlays RGBA uint8 (h, w, 4) in their own pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskforge.faces import geometry
from maskforge.synth.sampling.params import Grain

# Typical skin chromaticity (r, g, b normalised to mean 1) under neutral light; a face's departure
# from it estimates the colour cast of the light falling on it.
SKIN_CHROMA = np.array([1.23, 0.95, 0.82])
# Skin luminance of a well-exposed face. Skin tone varies too much to read the light level from
# it exactly, so the overlay follows the face's level only partly (LEVEL_EXPONENT).
TYPICAL_SKIN = 0.62
LEVEL_EXPONENT = 0.8
# Where highlights start to roll off (tone_shoulder): a light blue surgical mask on a bright face
# of ../shared/faces/unmasked had half its pixels clipped in a channel; rolled off, 9 %, and it
# keeps its blue (median saturation 74 of 255, as real street masks: 75) and its pleats.
HIGHLIGHT_KNEE = 0.8


@dataclass(frozen=True)
class Finish:
    """How an overlay is matched to the photo (all strengths 0..1; 0 disables)."""

    light: float = 1.0  # brightness + shading gradient from the face
    cast: float = 0.6  # colour temperature of the face's light
    feather: float = 1.0  # soft alpha edge
    grain: float = 1.0  # photo-like noise and softness


def face_light(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[float, np.ndarray, bool]:
    """(skin luminance 0..1, colour cast (3,) mean 1, is_grayscale) measured on the face.

    The face region is the landmark hull above the mouth (eyes excluded roughly by taking the
    median), so backgrounds and clothes do not bias it.
    """
    h, w = rgb.shape[:2]
    hull = cv2.convexHull(
        np.round(landmarks[[0, 1, 2, 3, 13, 14, 15, 16, 26, 17]]).astype(np.int32)
    )
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    pixels = rgb[mask.astype(bool)]
    if len(pixels) < 16:
        pixels = rgb.reshape(-1, 3)
    med = np.median(pixels.astype(np.float64), axis=0) + 1.0
    luminance = float(med @ np.array([0.299, 0.587, 0.114])) / 255.0
    spread = float(np.abs(rgb[..., 0].astype(np.int16) - rgb[..., 2].astype(np.int16)).mean())
    chroma = med / med.mean()
    cast = chroma / SKIN_CHROMA
    cast = np.clip(cast / cast.mean(), 0.85, 1.15)
    return luminance, cast / cast.mean(), spread < 2.0


def light_gain(luminance: float) -> float:
    """How much brighter (or darker) than in its template an overlay is drawn on a face of this
    skin luminance (face_light): the face's level followed partly (LEVEL_EXPONENT)."""
    return float(np.clip((luminance / TYPICAL_SKIN) ** LEVEL_EXPONENT, 0.3, 1.2))


def region_around(points: np.ndarray, shape) -> tuple[int, int, int, int]:
    """The pixel rectangle (x0, y0, x1, y1) holding points (N, 2), with a few pixels to spare for
    antialiased edges, clipped to an image of this shape (it may come out empty)."""
    h, w = shape[:2]
    x0 = int(np.clip(np.floor(points[:, 0].min()) - 3, 0, w))
    y0 = int(np.clip(np.floor(points[:, 1].min()) - 3, 0, h))
    x1 = int(np.clip(np.ceil(points[:, 0].max()) + 4, 0, w))
    y1 = int(np.clip(np.ceil(points[:, 1].max()) + 4, 0, h))
    return x0, y0, x1, y1


def prescale_factor(matrix: np.ndarray, src_pts: np.ndarray) -> float:
    """How much to shrink an overlay before warping so it lands at about 1:1 (<= 1).

    Warping a large image straight to a small face aliases; shrinking it first with INTER_AREA
    and warping the rest does not, and every later step works on fewer pixels.
    """
    dst = geometry.apply_homography(matrix, src_pts)
    span_src = np.ptp(src_pts, axis=0).max()
    span_dst = np.ptp(dst, axis=0).max()
    scale = span_dst / max(span_src, 1e-6)
    # Headroom for perspective stretch: parts of the overlay land larger than the average.
    return 1.0 if scale >= 0.7 else max(scale * 1.4, 1e-3)


def warp_overlay(
    overlay: np.ndarray, matrix: np.ndarray, image_shape: tuple[int, int], src_pts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Warp RGBA overlay by a 3x3 matrix into the photo; only the covered region is computed.

    Returns (rgb float32 (h, w, 3) 0..1, alpha float32 (h, w) 0..1, roi (x0, y0, x1, y1)).
    Colours are warped premultiplied by alpha so edges do not pick up a light or dark fringe.
    """
    factor = prescale_factor(matrix, src_pts)
    if factor < 1.0:
        overlay = cv2.resize(overlay, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([1 / factor, 1 / factor, 1.0])
    oh, ow = overlay.shape[:2]
    corners = geometry.apply_homography(
        matrix, np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], float)
    )
    height, width = image_shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, height))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32), (0, 0, 0, 0)
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
    alpha = overlay[..., 3:4].astype(np.float32) / 255.0
    premult = np.concatenate([overlay[..., :3].astype(np.float32) / 255.0 * alpha, alpha], axis=2)
    warped = cv2.warpPerspective(
        premult,
        shift @ matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    a = np.clip(warped[..., 3], 0.0, 1.0)
    rgb = warped[..., :3] / np.maximum(a, 1e-4)[..., None]
    # Extend colours a few pixels past the shape (normalised convolution), so that feathering,
    # which spreads alpha outward, blends with the overlay's own edge colour, not with black.
    spread_rgb = cv2.GaussianBlur(warped[..., :3], (0, 0), 2.0)
    spread_a = cv2.GaussianBlur(warped[..., 3], (0, 0), 2.0)
    extended = spread_rgb / np.maximum(spread_a, 1e-4)[..., None]
    rgb = np.where((a < 0.5)[..., None] & (spread_a > 1e-3)[..., None], extended, rgb)
    return np.clip(rgb, 0.0, 1.0), a, (x0, y0, x1, y1)


def _shading_field(
    rgb: np.ndarray, roi: tuple[int, int, int, int], face_width: float
) -> np.ndarray:
    """Low-frequency light field of the photo over roi, normalised to mean 1 (side light etc.)."""
    x0, y0, x1, y1 = roi
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) + 8.0
    sigma = max(face_width / 5.0, 2.0)
    field = cv2.GaussianBlur(gray, (0, 0), sigma)
    return field / max(float(field.mean()), 1e-3)


def finish_overlay(
    over_rgb: np.ndarray,
    alpha: np.ndarray,
    rgb: np.ndarray,
    roi: tuple[int, int, int, int],
    landmarks: np.ndarray,
    finish: Finish,
    grain: Grain,
    match_level: bool = True,
    light: tuple[float, np.ndarray, bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match a warped overlay to the photo: light level and gradient, cast, grayscale, softness.

    match_level: scale the overlay's brightness with the face's (off for overlays already
    coloured from the face itself, such as a hand tinted with the face's skin); light: the
    face's face_light, where the caller has it already.
    """
    face_width = float(np.ptp(landmarks[:, 0]))
    luminance, cast, grayscale = face_light(rgb, landmarks) if light is None else light
    out = over_rgb
    if finish.light > 0:
        gain = light_gain(luminance) if match_level else 1.0
        gain = gain**finish.light
        field = _shading_field(rgb, roi, face_width) ** (0.7 * finish.light)
        out = out * gain * field[..., None]
    if finish.cast > 0 and not grayscale:
        out = out * (cast**finish.cast)[None, None, :]
    if finish.light > 0:
        # Brightened to the face's light, a pale mask would clip to flat white-cyan.
        out = tone_shoulder(out, HIGHLIGHT_KNEE)
    if grayscale:
        out = np.repeat((out @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=2)
    if finish.grain > 0:
        out = _match_softness(out, alpha, rgb, roi, finish.grain, grain, grayscale)
    if finish.feather > 0:
        sigma = max(0.5, 0.006 * face_width) * finish.feather
        # Erode first so feathering softens inward and never paints a halo outside the shape.
        inner = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=1) if sigma > 1.0 else alpha
        alpha = cv2.GaussianBlur(inner, (0, 0), sigma)
    return np.clip(out, 0.0, 1.0).astype(np.float32), np.clip(alpha, 0.0, 1.0).astype(np.float32)


def tone_shoulder(rgb: np.ndarray, knee: float) -> np.ndarray:
    """Roll highlights off smoothly, as a camera's tone curve does, instead of clipping each
    channel: a pixel's brightest channel above knee is compressed towards 1 and its other
    channels scaled with it, so a light blue mask in bright light keeps its hue, saturation and
    folds where a per-channel clip would turn it flat white-cyan."""
    peak = rgb.max(axis=2)
    span = 1.0 - knee
    rolled = knee + span * np.tanh(np.maximum(peak - knee, 0.0) / span)
    scale = np.where(peak > knee, rolled / np.maximum(peak, 1e-6), 1.0)
    return (rgb * scale[..., None]).astype(np.float32)


def edge_blur_sigma(gray: np.ndarray, region: np.ndarray | None = None) -> float:
    """Estimated Gaussian blur (px) of the strongest edges of a grayscale image.

    For an edge blurred by sigma, gradient / Laplacian magnitude grows linearly with sigma;
    the ratio over the top 10% of gradients, with constants fitted on real photos blurred by known
    amounts, reads back sigma within about 0.3 px, whatever the contrast.
    """
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.sqrt(gx * gx + gy * gy)
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=1))
    if region is not None:
        grad, lap = grad[region], lap[region]
    if grad.size < 16 or float(grad.max()) <= 1e-6:
        return 0.0
    strong = grad >= np.percentile(grad, 90)
    ratio = float(grad[strong].mean() / (lap[strong].mean() + 1e-6))
    return float(np.sqrt(max((ratio / 1.9) ** 2 - 0.09, 0.0)))


def _match_softness(
    out: np.ndarray,
    alpha: np.ndarray,
    rgb: np.ndarray,
    roi: tuple[int, int, int, int],
    strength: float,
    grain: Grain,
    grayscale: bool,
) -> np.ndarray:
    """Blur and add noise so the overlay is no sharper or cleaner than the photo around it."""
    x0, y0, x1, y1 = roi
    patch = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    inside = alpha > 0.95
    if inside.sum() >= 16:
        photo_sigma = edge_blur_sigma(patch)
        over_gray = out @ np.array([0.299, 0.587, 0.114], np.float32)
        over_sigma = edge_blur_sigma(over_gray, inside)
        extra = np.sqrt(max(photo_sigma**2 - over_sigma**2, 0.0)) * strength
        if extra > 0.15:
            out = cv2.GaussianBlur(out, (0, 0), min(extra, 3.0))
    # Noise level: robust std of the finest detail (median absolute deviation of a Laplacian).
    detail = cv2.Laplacian(patch, cv2.CV_32F, ksize=1)
    noise = float(np.median(np.abs(detail - np.median(detail)))) * 1.4826 / 2.0
    noise = min(noise, 0.04) * strength
    if noise > 1e-4:
        shape = out.shape[:2] + ((1,) if grayscale else (3,))
        out = out + grain.noise(noise, shape)
    return out


def blend(
    rgb: np.ndarray, over_rgb: np.ndarray, alpha: np.ndarray, roi: tuple[int, int, int, int]
) -> np.ndarray:
    """Alpha-blend an overlay (float 0..1) into a copy of the photo over roi; RGB uint8 out."""
    out = rgb.copy()
    x0, y0, x1, y1 = roi
    if x1 <= x0 or y1 <= y0:
        return out
    base = rgb[y0:y1, x0:x1]
    a = alpha[..., None]
    mixed = base.astype(np.float32) / 255.0 * (1.0 - a) + over_rgb * a
    mixed = np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # Pixels the overlay does not reach (below half a grey level) stay bit-identical.
    out[y0:y1, x0:x1] = np.where(a > 1.0 / 512, mixed, base)
    return out
