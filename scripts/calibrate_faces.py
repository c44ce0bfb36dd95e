#!/usr/bin/env python3
"""Fit the constants in maskforge/resources/face_calibration.json from real photos.

On photos where dlib's HOG detector finds exactly one face, fit
  - cnn_to_hog: how dlib's CNN (mmod) box edges differ from the HOG box (in CNN box widths/heights),
  - mtcnn_to_hog: a least-squares map from an MTCNN box and its five points (normalised by the box)
    to the HOG box (an outlier-trimmed refit),
  - landmarks_to_box: how the HOG box edges differ from the landmarks' extent,
  - mean_shape: the generalised-Procrustes mean of the 68 landmarks (centred, unit norm),
  - residual percentiles of each fit against that mean (for the plausibility threshold).
The landmark predictor was trained on HOG boxes, so mapping other boxes to HOG-like ones keeps
its fits accurate. Usage: scripts/calibrate_faces.py [FOLDER] (default ../shared/faces/unmasked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dlib
import numpy as np
from scipy.spatial import procrustes

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces.cascade import FaceFinder, find_model_file, mtcnn_features


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/faces/unmasked")
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(find_model_file("landmarks")))
    finder = FaceFinder("cascade")
    cnn_rel, lm_rel, shapes = [], [], []
    mt_x, mt_y = [], []
    for path in iter_image_files(folder):
        rgb = read_image(path)
        rects = hog(rgb, 0)
        if len(rects) != 1:
            continue
        r = rects[0]
        hb = np.array([r.left(), r.top(), r.right(), r.bottom()], float)
        lm = np.array([(p.x, p.y) for p in predictor(rgb, r).parts()], float)
        shapes.append(lm)
        x0, x1 = lm[:, 0].min(), lm[:, 0].max()
        y0, y1 = lm[17:27, 1].min(), lm[:, 1].max()
        w, h = x1 - x0, y1 - y0
        lm_rel.append([(hb[0] - x0) / w, (hb[1] - y0) / h, (hb[2] - x1) / w, (hb[3] - y1) / h])
        dets = finder._cnn_boxes(rgb, raw=True)
        if len(dets) == 1:
            cb = np.array(dets[0][0], float)
            cw, ch = cb[2] - cb[0], cb[3] - cb[1]
            cnn_rel.append(
                [
                    (hb[0] - cb[0]) / cw,
                    (hb[1] - cb[1]) / ch,
                    (hb[2] - cb[2]) / cw,
                    (hb[3] - cb[3]) / ch,
                ]
            )
        mt = finder._mtcnn_run(rgb)
        if len(mt) == 1:
            features, centre, size = mtcnn_features(mt[0][0], mt[0][1])
            mt_x.append(features)
            mt_y.append((hb - centre) / size)
    mt_x, mt_y = np.array(mt_x), np.array(mt_y)
    mt_w = np.linalg.lstsq(mt_x, mt_y, rcond=None)[0]
    err = np.abs(mt_x @ mt_w - mt_y).max(axis=1)
    keep = err < np.percentile(err, 95)  # a few HOG boxes sit on a different part of the head
    mt_w = np.linalg.lstsq(mt_x[keep], mt_y[keep], rcond=None)[0]
    shapes = np.array(shapes)
    # Generalised Procrustes: align to the running mean a few times.
    mean = shapes[0] - shapes[0].mean(0)
    mean /= np.linalg.norm(mean)
    for _ in range(5):
        aligned = [procrustes(mean, s)[1] for s in shapes]
        mean = np.mean(aligned, axis=0)
        mean -= mean.mean(0)
        mean /= np.linalg.norm(mean)
    residuals = np.array([procrustes(mean, s)[2] for s in shapes])
    result = {
        "source": (
            f"{folder.name}: {len(shapes)} HOG faces, {len(cnn_rel)} with a CNN box, "
            f"{len(mt_x)} with an MTCNN box"
        ),
        "cnn_to_hog": np.round(np.median(cnn_rel, axis=0), 4).tolist(),
        "mtcnn_to_hog": np.round(mt_w, 5).tolist(),
        "landmarks_to_box": np.round(np.median(lm_rel, axis=0), 4).tolist(),
        "residual_percentiles": {
            str(q): round(float(np.percentile(residuals, q)), 5) for q in (50, 90, 99, 100)
        },
        "mean_shape": np.round(mean, 5).tolist(),
    }
    out = Path(__file__).resolve().parents[1] / "maskforge" / "resources" / "face_calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "mean_shape"}, indent=1))
    print("mtcnn residual (std, box sizes):", np.round((mt_x @ mt_w - mt_y).std(axis=0), 3))
    print(
        "cnn spread (std):",
        np.round(np.std(cnn_rel, axis=0), 3),
        " landmark spread:",
        np.round(np.std(lm_rel, axis=0), 3),
    )


if __name__ == "__main__":
    main()
