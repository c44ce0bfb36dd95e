"""MediaPipe's face models run directly with LiteRT on a box our cascade found.

MediaPipe's Face Landmarker task (landmarker.MeshLandmarker) costs ~11-19 ms a face on one CPU
core, ~5 ms of it outside its two models. LiteMeshLandmarker runs the bundle's two
models itself, on the same square crop of the box, the way the task does: the face detector
(face_detector.tflite, BlazeFace short range, 128 px, ~1.2 ms) finds the face and its eyes in
the crop, and the mesh model (face_landmarks_detector.tflite, 256 px, ~5 ms) runs once on the
detector's box grown 1.5 times, turned so the eyes are level. Where the detector finds nothing
(the task would give no mesh), the mesh model runs on the box crop itself, again on a crop cut
around its points and levelled where they are rolled or off centre (the mesh alone
underestimates roll past ~20 degrees, so this is the fallback, not the rule). The head pose
comes from a similarity fit of the canonical mesh to the points, not from MediaPipe's geometry
pipeline. scripts/compare_litert_mesh.py measures both against the task on ../shared/faces.

One landmarker per process: the interpreters are not picklable. Unlike the task, they start no
threads (num_threads=1), and a child forked after one was made runs it fine; worker pools spawn
anyway, as the task, the fallback where LiteRT is missing, needs it.
"""

from __future__ import annotations

import io
import math
import zipfile

import cv2
import numpy as np

from maskforge.faces import mesh
from maskforge.faces.landmarker import (
    CROP_SCALE,
    INPUT_SIDE,
    MIN_DETECTION,
    MIN_PRESENCE,
    MeshFit,
    pose_from_matrix,
    quiet_stderr,
)

MESH_FILE = "face_landmarks_detector.tflite"
DETECTOR_FILE = "face_detector.tflite"
POINTS = 478
DETECTOR_SIDE = 128
# MediaPipe's short-range BlazeFace: SSD anchors of fixed size on a 16x16 grid (2 a cell) and an
# 8x8 grid (6 a cell); each of the 896 rows is box (cx, cy, w, h) and six keypoints (x, y) in
# input px relative to its anchor (the first two keypoints: the right eye, then the left).
DETECTOR_GRIDS = ((16, 2), (8, 6))
DETECTOR_VALUES = 16
# Weighted non-maximum suppression (MediaPipe's): detections overlapping the best one by more
# than this IoU are averaged into it, weighted by score.
NMS_OVERLAP = 0.3
# The task's landmark crop: the detector's box grown this much, square on its long side.
ROI_SCALE = 1.5
# The eye corners the task levels the crop of its next video frame by (right outer, left outer).
EYE_CORNERS = (33, 263)
# Without a detection, a second mesh pass where the first pass's points are rolled by more than
# MAX_ROLL degrees, or the crop they call for (REFIT_SCALE times their extent, upright, centred
# on them) is more than MAX_SHIFT crop sides away or MAX_RESIZE times larger or smaller (tuned
# against the task on ../shared/faces/unmasked).
MAX_ROLL = 8.0
MAX_SHIFT = 0.10
MAX_RESIZE = 1.25
REFIT_SCALE = 1.4
# Image-like axes (x right, y down, z away) to MediaPipe's metric ones (y up, z toward).
_FLIP = np.diag([1.0, -1.0, -1.0])


def pose_from_points(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a fitted mesh: the rotation of the least-squares similarity
    (Umeyama) from the canonical mesh to the first 468 points, read as landmarker.pose_from_matrix
    reads MediaPipe's matrix (yaw positive when the nose points to larger x)."""
    canonical = mesh.canonical_mesh().vertices
    target = np.asarray(points, np.float64)[: len(canonical), :3]
    cross = (target - target.mean(axis=0)).T @ (canonical - canonical.mean(axis=0))
    u, _, vt = np.linalg.svd(cross)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u) * np.linalg.det(vt)))])
    matrix = np.eye(4)
    matrix[:3, :3] = _FLIP @ (u @ d @ vt) @ _FLIP
    return pose_from_matrix(matrix)


def roll_of(points: np.ndarray) -> float:
    """Roll in radians of mesh points: the angle of the line between the outer eye corners."""
    dx, dy = np.asarray(points)[EYE_CORNERS[1], :2] - np.asarray(points)[EYE_CORNERS[0], :2]
    return math.atan2(dy, dx)


def _rotation(roll: float) -> np.ndarray:
    """Photo -> upright: the 2x2 rotation by -roll."""
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c, s], [-s, c]])


def _anchors() -> np.ndarray:
    """(896, 2) anchor centres of the face detector, in input sides."""
    centres = []
    for grid, per_cell in DETECTOR_GRIDS:
        ys, xs = np.mgrid[0:grid, 0:grid]
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres)


def _crop(rgb: np.ndarray, centre, side: float, roll: float, out: int):
    """(out x out crop of the square of this side around centre turned by -roll, black outside;
    the 2x3 photo -> crop matrix)."""
    forward = out / side * _rotation(roll)
    warp = np.c_[forward, out / 2 - forward @ np.asarray(centre, np.float64)]
    crop = cv2.warpAffine(
        np.ascontiguousarray(rgb[..., :3]),
        warp,
        (out, out),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return crop, warp


def _to_photo(points: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Crop px (..., 2) -> photo px through the inverse of the 2x3 photo -> crop warp."""
    return (np.asarray(points, np.float64) - warp[:, 2]) @ np.linalg.inv(warp[:, :2]).T


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (cx, cy, w, h) box with each of boxes (N, 4)."""
    low = np.maximum(box[:2] - box[2:] / 2, boxes[:, :2] - boxes[:, 2:] / 2)
    high = np.minimum(box[:2] + box[2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2)
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    return inter / (np.prod(box[2:]) + np.prod(boxes[:, 2:], axis=1) - inter)


class LiteMeshLandmarker:
    """MediaPipe's face detector and mesh models (LiteRT, one CPU thread each) on a square crop
    of a box; the same fit(rgb, box, scale) and close() as landmarker.MeshLandmarker."""

    def __init__(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise mesh.ModelBundleError(
                f"LiteRT is not installed ({exc}): pip install ai-edge-litert"
            ) from None
        try:
            with zipfile.ZipFile(io.BytesIO(mesh.load_bundle())) as bundle:
                models = {name: bundle.read(name) for name in (MESH_FILE, DETECTOR_FILE)}
        except (KeyError, zipfile.BadZipFile) as exc:
            raise mesh.ModelBundleError(f"the bundle's models are unreadable ({exc})") from None
        with quiet_stderr():  # "Created TensorFlow Lite XNNPACK delegate" goes to fd 2
            self._mesh = Interpreter(model_content=models[MESH_FILE], num_threads=1)
            self._detector = Interpreter(model_content=models[DETECTOR_FILE], num_threads=1)
            self._mesh.allocate_tensors()
            self._detector.allocate_tensors()
        # Outputs in the models' order: MediaPipe reads the mesh's landmarks from the first
        # and its face-presence logit from the second (the third is not used).
        self._mesh_io = self._io(self._mesh, INPUT_SIDE, (POINTS * 3, 1))
        self._detector_io = self._io(
            self._detector, DETECTOR_SIDE, (len(_anchors()) * DETECTOR_VALUES, len(_anchors()))
        )
        self._anchors = _anchors()

    @staticmethod
    def _io(interpreter, side: int, sizes: tuple) -> tuple[int, ...]:
        """(input index, output indices) after checking the model's shapes."""
        source = interpreter.get_input_details()[0]
        outputs = interpreter.get_output_details()[: len(sizes)]
        found = [int(np.prod(o["shape"])) for o in outputs]
        if tuple(source["shape"]) != (1, side, side, 3) or tuple(found) != sizes:
            raise mesh.ModelBundleError(
                f"unexpected model in the bundle: input {source['shape']}, outputs {found}"
            )
        return (source["index"], *(o["index"] for o in outputs))

    def close(self) -> None:
        """Free the interpreters (idempotent)."""
        self._mesh = self._detector = None

    def _detect(self, rgb: np.ndarray, centre, side: float):
        """The best face in the square crop: (box centre, box long side, roll radians from its
        eyes) in photo px, or None below MIN_DETECTION."""
        crop, warp = _crop(rgb, centre, side, 0.0, DETECTOR_SIDE)
        source, boxes_out, scores_out = self._detector_io
        self._detector.set_tensor(source, (crop.astype(np.float32) / 127.5 - 1.0)[None])
        self._detector.invoke()
        raw = self._detector.get_tensor(boxes_out).reshape(-1, DETECTOR_VALUES) / DETECTOR_SIDE
        logits = np.clip(self._detector.get_tensor(scores_out).ravel(), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        found = scores >= MIN_DETECTION
        if not found.any():
            return None
        boxes = np.c_[raw[found, :2] + self._anchors[found], raw[found, 2:4]]
        eyes = raw[found, 4:8].reshape(-1, 2, 2) + self._anchors[found, None, :]
        best = int(np.argmax(scores[found]))
        near = _iou(boxes[best], boxes) > NMS_OVERLAP
        weights = scores[found][near] / scores[found][near].sum()
        box = weights @ boxes[near]
        eyes = np.einsum("n,nkd->kd", weights, eyes[near])
        (rx, ry), (lx, ly) = _to_photo(eyes * DETECTOR_SIDE, warp)
        face_centre = _to_photo(box[:2] * DETECTOR_SIDE, warp)
        return face_centre, float(box[2:].max()) * side, math.atan2(ly - ry, lx - rx)

    def _run(self, rgb: np.ndarray, centre, side: float, roll: float) -> tuple[np.ndarray, float]:
        """(points (478, 3) photo px, presence score) of the mesh model on the square of this
        side around centre, turned by -roll radians (the upright crop of a face rolled by roll)."""
        crop, warp = _crop(rgb, centre, side, roll, INPUT_SIDE)
        source, landmarks_out, presence_out = self._mesh_io
        self._mesh.set_tensor(source, (crop.astype(np.float32) / 255.0)[None])
        self._mesh.invoke()
        raw = self._mesh.get_tensor(landmarks_out).reshape(POINTS, 3).astype(np.float64)
        logit = float(self._mesh.get_tensor(presence_out).ravel()[0])
        # z is in the same units as x.
        points = np.c_[_to_photo(raw[:, :2], warp), raw[:, 2] * side / INPUT_SIDE]
        return points, 1.0 / (1.0 + math.exp(-logit))

    def _refit(self, rgb: np.ndarray, centre: np.ndarray, side: float, points: np.ndarray):
        """Without a detection: the points again from a levelled crop around them, where they
        are rolled or off the crop (the better of the two by presence threshold)."""
        roll = roll_of(points)
        upright = points[:, :2] @ _rotation(roll).T
        low, high = upright.min(axis=0), upright.max(axis=0)
        refit_side = float((high - low).max()) * REFIT_SCALE
        refit_centre = _rotation(roll).T @ ((low + high) / 2)
        if (
            abs(math.degrees(roll)) > MAX_ROLL
            or np.linalg.norm(refit_centre - centre) > MAX_SHIFT * side
            or not 1 / MAX_RESIZE <= refit_side / side <= MAX_RESIZE
        ):
            refit, presence = self._run(rgb, refit_centre, refit_side, roll)
            if presence >= MIN_PRESENCE:
                return refit
        return points

    def fit(self, rgb: np.ndarray, box: tuple, scale: float = CROP_SCALE) -> MeshFit | None:
        """The mesh of the face in box (l, t, r, b) of an RGB uint8 photo, or None (no face)."""
        left, top, right, bottom = (float(v) for v in box)
        side = max(right - left, bottom - top, 1.0) * scale
        centre = np.array([(left + right) / 2, (top + bottom) / 2])
        found = self._detect(rgb, centre, side)
        if found is not None:
            face_centre, face_side, roll = found
            points, presence = self._run(rgb, face_centre, face_side * ROI_SCALE, roll)
        else:
            points, presence = self._run(rgb, centre, side, 0.0)
            if presence >= MIN_PRESENCE:
                points = self._refit(rgb, centre, side, points)
        if presence < MIN_PRESENCE:
            return None
        return MeshFit(points, pose_from_points(points))


def mesh_landmarker():
    """The landmarker --landmarks mediapipe uses: LiteMeshLandmarker where LiteRT imports, else
    MediaPipe's own task (landmarker.MeshLandmarker). Both have fit(rgb, box, scale), close()."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        from maskforge.faces.landmarker import MeshLandmarker

        return MeshLandmarker()
    return LiteMeshLandmarker()
