"""Face geometry from dlib's 68 landmarks: mask anchors, yaw, homography, crops, plausibility.

Landmarks are (68, 2) float arrays of (x, y) pixels in the original image, 0-indexed as in dlib's
iBUG 300-W scheme (jaw 0..16, brows 17..26, nose 27..35, eyes 36..47, mouth 48..67). "Left" and
"right" always mean the image's left and right (smaller / larger x), never the subject's.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
from scipy.spatial import procrustes

from maskforge.choices import CROP_MARGIN, VARIANTS, WEAR_STYLES  # noqa: F401 - re-exported

ANCHOR_NAMES = ("nose", "cheek_left", "cheek_right", "jaw_left", "jaw_right", "chin")
NOSE_BRIDGE, NOSE_TIP, UPPER_LIP, LOWER_LIP, CHIN = 29, 33, 51, 57, 8
LEFT_CONTOUR, RIGHT_CONTOUR = np.arange(0, 9), np.arange(16, 7, -1)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left (36..41) and image-right (42..47) eyes, each (2,)."""
    return landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres in pixels."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def _line_polyline_intersection(
    point: np.ndarray, direction: np.ndarray, polyline: np.ndarray
) -> np.ndarray | None:
    """First crossing of the infinite line (point + t*direction) with a polyline (N, 2), or None."""
    normal = np.array([-direction[1], direction[0]])
    side = (polyline - point) @ normal
    for i in range(len(polyline) - 1):
        a, b = side[i], side[i + 1]
        if a == 0:
            return polyline[i].astype(float)
        if a * b < 0:
            t = a / (a - b)
            return polyline[i] + t * (polyline[i + 1] - polyline[i])
    return None


def box_iou(a, b) -> float:
    """Intersection over union of two boxes (left, top, right, bottom); 0 for empty boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return float(ix * iy / union) if union > 0 else 0.0


def face_anchors(landmarks: np.ndarray) -> np.ndarray:
    """The six mask anchors (6, 2), in ANCHOR_NAMES order, from 68 landmarks.

    nose: landmark 29 (mid nose bridge); cheeks: the jaw contour crossed by the eye-parallel line
    through the nose anchor; jaws: the same at mouth height; chin: landmark 8. Where the contour
    does not reach a line (unusual fits), the nearest fixed landmark (1/15, 4/12) stands in.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye = eye_centres(lm)
    across = right_eye - left_eye
    across /= max(np.linalg.norm(across), 1e-9)
    nose = lm[NOSE_BRIDGE]
    mouth = (lm[UPPER_LIP] + lm[LOWER_LIP]) / 2
    points = [nose]
    for level, fallback in ((nose, (1, 15)), (mouth, (4, 12))):
        for contour, index in ((LEFT_CONTOUR, fallback[0]), (RIGHT_CONTOUR, fallback[1])):
            hit = _line_polyline_intersection(level, across, lm[contour])
            points.append(lm[index] if hit is None else hit)
    # Order so far: nose, cheek_left, cheek_right, jaw_left, jaw_right; then the chin.
    points.append(lm[CHIN])
    return np.array(points, dtype=np.float64)


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Approximate yaw in degrees from the nose tip's place between the jaw sides.

    0 = frontal; positive = nose towards the image's right. Uses the contour at nose-tip height,
    measured along the eye line, so in-plane roll does not read as yaw.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye = eye_centres(lm)
    across = right_eye - left_eye
    across /= max(np.linalg.norm(across), 1e-9)
    tip = lm[30]
    left = _line_polyline_intersection(tip, across, lm[LEFT_CONTOUR])
    right = _line_polyline_intersection(tip, across, lm[RIGHT_CONTOUR])
    left = lm[2] if left is None else left
    right = lm[14] if right is None else right
    d_left = float((tip - left) @ across)
    d_right = float((right - tip) @ across)
    total = d_left + d_right
    if total <= 1e-9:
        return 90.0 if d_left > d_right else -90.0
    ratio = np.clip((d_left - d_right) / total, -1.0, 1.0)
    return float(np.degrees(np.arcsin(ratio)))


def choose_variant(yaw: float, threshold: float = 30.0) -> str:
    """Template variant for a yaw: 'left'/'right' only beyond +-threshold degrees, else 'front'."""
    if yaw <= -threshold:
        return "left"
    if yaw >= threshold:
        return "right"
    return "front"


def wear_anchors(anchors: np.ndarray, landmarks: np.ndarray, wear: str) -> np.ndarray:
    """Face anchors moved for a wear style: correct (as is), nose_out, chin.

    nose_out: the top edge drops to just below the nose tip, so the nose is uncovered while
    the mouth stays covered; chin: the top edge drops below the lower lip, covering the chin only.
    The whole mask slides down the face axis; the chin anchor moves less, as a real mask
    bunches under the chin rather than sliding off it.
    """
    if wear not in WEAR_STYLES:
        raise ValueError(
            f"Invalid wear style {wear!r}. Only {', '.join(WEAR_STYLES)} are supported."
        )
    anchors = np.asarray(anchors, dtype=np.float64).copy()
    if wear == "correct":
        return anchors
    lm = np.asarray(landmarks, dtype=np.float64)
    if wear == "nose_out":
        target = lm[NOSE_TIP] + 0.45 * (lm[UPPER_LIP] - lm[NOSE_TIP])
        chin_share = 0.5
    else:
        target = lm[LOWER_LIP] + 0.2 * (lm[CHIN] - lm[LOWER_LIP])
        chin_share = 0.8
    shift = target - anchors[0]
    anchors[:5] += shift
    anchors[5] += chin_share * shift
    return anchors


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 least-squares homography mapping src points (N, 2) onto dst points (N, 2), N >= 4."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if len(src) != len(dst) or len(src) < 4:
        raise ValueError(f"Need at least 4 point pairs, got {len(src)} and {len(dst)}.")
    matrix, _ = cv2.findHomography(src, dst, 0)
    if matrix is None:
        raise ValueError("Degenerate anchor points: no homography fits them.")
    return matrix


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points (N, 2) through a 3x3 homography."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, matrix).reshape(-1, 2)


def square_crop(
    box: tuple[float, float, float, float],
    image_shape: tuple[int, int],
    margin: float = CROP_MARGIN,
) -> tuple[int, int, int, int]:
    """A square (left, top, right, bottom) around a face box, grown by margin, kept in the image.

    The square is centred on the box and shifted (not shrunk) to stay inside the image; only
    when the image is smaller than the square is it cut to the image's short side.
    """
    height, width = image_shape[:2]
    left, top, right, bottom = box
    side = max(right - left, bottom - top) * (1 + 2 * margin)
    side = int(round(min(side, width, height)))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def box_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The box dlib's frontal detector would draw around these landmarks (approximation).

    Fitted on ../shared/faces photos where dlib's HOG detector succeeded (see
    scripts/calibrate_faces.py): the box spans the jaw horizontally and brows-to-chin vertically.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    c = _calibration()["landmarks_to_box"]
    x0, x1 = lm[:, 0].min(), lm[:, 0].max()
    y0, y1 = lm[17:27, 1].min(), lm[:, 1].max()
    w, h = x1 - x0, y1 - y0
    return (
        x0 + c[0] * w,
        y0 + c[1] * h,
        x1 + c[2] * w,
        y1 + c[3] * h,
    )


@lru_cache(maxsize=1)
def _calibration() -> dict:
    text = resources.files("maskforge.resources").joinpath("face_calibration.json").read_text()
    return json.loads(text)


def mean_shape() -> np.ndarray:
    """The mean 68-point shape (68, 2), centred and unit-scaled (see scripts/calibrate_faces.py)."""
    return np.asarray(_calibration()["mean_shape"], dtype=np.float64)


def shape_residual(landmarks: np.ndarray) -> float:
    """Procrustes disparity between landmarks and the mean shape: 0 = same shape, larger = odder."""
    _, _, disparity = procrustes(mean_shape(), np.asarray(landmarks, dtype=np.float64))
    return float(disparity)
