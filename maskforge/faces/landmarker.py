"""MediaPipe Face Landmarker on a box our cascade found: 478 3D points and the head pose.

MediaPipe's own detector misses many faces (most masked ones), so the landmark model runs on a
square crop of the cascade's box, with margin and a black border where the crop leaves the photo
(landmarks on 99.4% of boxed unmasked faces of ../shared/faces, against 81.7% on whole photos).
One landmarker per process: it is not picklable, and a child forked from a process that made one
hangs, so worker pools that use it must spawn.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from maskforge.faces import mesh

# The landmark model's input is 256 px square; the crop is the box grown by CROP_SCALE (the model
# was trained on faces with a ~25% margin on each side).
INPUT_SIDE = 256
CROP_SCALE = 1.6
# MediaPipe's own face detection runs inside the crop (it must find the face before the mesh
# model runs); the crop is centred on a face, so a low threshold is safe.
MIN_DETECTION = 0.3
MIN_PRESENCE = 0.5


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 for a while: MediaPipe's C++ start-up logs (absl, TFLite) go
    straight to it, and a CLI must not print them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class MeshFit:
    """A fitted face mesh: points (478, 3) px (x, y in the photo; z px, away from the camera,
    relative to the face) and pose (yaw, pitch, roll) degrees from the transformation matrix."""

    points: np.ndarray
    pose: tuple[float, float, float]


def pose_from_matrix(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from MediaPipe's 4x4 facial transformation matrix.

    Yaw is positive when the face turns toward the image's right (its nose points to larger x),
    matching geometry.estimate_yaw's sign.
    """
    r = np.asarray(matrix, np.float64)[:3, :3]
    yaw = math.degrees(math.atan2(r[0, 2], r[2, 2]))
    pitch = math.degrees(math.asin(float(np.clip(r[1, 2], -1.0, 1.0))))
    roll = -math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


class MeshLandmarker:
    """MediaPipe Face Landmarker (IMAGE mode, one face per crop) from the verified bundle."""

    def __init__(self):
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise mesh.ModelBundleError(
                f"MediaPipe is not installed ({exc}): pip install mediapipe==0.10.31, "
                "or use --landmarks dlib"
            ) from None
        import mediapipe

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=mesh.load_bundle()),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=MIN_DETECTION,
            min_face_presence_confidence=MIN_PRESENCE,
            output_facial_transformation_matrixes=True,
        )
        self._mp = mediapipe
        with quiet_stderr():
            self._task = vision.FaceLandmarker.create_from_options(options)
            # The first call starts its graph threads, which log too.
            self._task.detect(self._image(np.zeros((INPUT_SIDE, INPUT_SIDE, 3), np.uint8)))
        # Closed before the interpreter tears MediaPipe's C bindings down (its __del__ otherwise
        # prints a TypeError at exit).
        atexit.register(self.close)

    def _image(self, rgb: np.ndarray):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)

    def close(self) -> None:
        """Free the task (idempotent)."""
        task, self._task = getattr(self, "_task", None), None
        if task is None:
            return
        try:
            task.close()
        except RuntimeError:
            pass  # at exit MediaPipe's own dispatcher may already be shut down
        # Its __del__ would close it again and print the same error.
        task.close = lambda: None

    def fit(self, rgb: np.ndarray, box: tuple, scale: float = CROP_SCALE) -> MeshFit | None:
        """The mesh of the face in box (l, t, r, b) of an RGB uint8 photo, or None (no face)."""
        left, top, right, bottom = (float(v) for v in box)
        side = max(right - left, bottom - top, 1.0) * scale
        x0 = (left + right) / 2 - side / 2
        y0 = (top + bottom) / 2 - side / 2
        k = INPUT_SIDE / side
        warp = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], np.float64)
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
        crop = cv2.warpAffine(
            np.ascontiguousarray(rgb[..., :3]),
            warp,
            (INPUT_SIDE, INPUT_SIDE),
            flags=interp,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        result = self._task.detect(self._image(crop))
        if not result.face_landmarks:
            return None
        points = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], np.float64)
        # Normalised crop coordinates -> photo px; z is in the same units as x.
        points = points * side + np.array([x0, y0, 0.0])
        pose = pose_from_matrix(result.facial_transformation_matrixes[0])
        return MeshFit(points, pose)
