#!/usr/bin/env python3
"""Fit maskforge/resources/mediapipe_68.json: dlib's 68 landmarks as mixes of MediaPipe mesh
vertices, and report how far MediaPipe's landmarks and mask anchors land from dlib's.

On photos where dlib's HOG detector finds exactly one face with a plausible 68-point fit, the
Face Landmarker runs on the same box (landmarker.MeshLandmarker). Coordinates are normalised
per photo (dlib's eye midpoint at 0, eye distance 1). Each of the 68 points is fitted, on the
even-numbered photos, as a non-negative mix of at most MAX_VERTICES vertices summing to 1
(non-negative least squares over the CANDIDATES nearest vertices, then the largest few
refitted); the odd-numbered photos measure it. Usage:
    scripts/calibrate_mediapipe.py [FOLDER] [--limit N] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import geometry
from maskforge.faces.cascade import FaceFinder
from maskforge.faces.landmarker import MeshLandmarker

CANDIDATES = 12
MAX_VERTICES = 4
SUM_WEIGHT = 100.0  # how hard the weights are held to sum to 1
OUT = Path(__file__).resolve().parents[1] / "maskforge" / "resources" / "mediapipe_68.json"


def collect(folder: Path, limit: int | None) -> tuple[list, list, list]:
    """(dlib 68 points, mesh points, names) normalised per photo, where both fit."""
    finder, marker = FaceFinder("hog"), MeshLandmarker()
    dlib_pts, mesh_pts, names = [], [], []
    for path in list(iter_image_files(folder))[:limit]:
        rgb = read_image(path)
        faces = finder.find(rgb)
        if len(faces) != 1 or not faces[0].plausible():
            continue
        fit = marker.fit(rgb, faces[0].box)
        if fit is None:
            continue
        lm = faces[0].landmarks
        left, right = geometry.eye_centres(lm)
        centre, iod = (left + right) / 2, geometry.interocular(lm)
        dlib_pts.append((lm - centre) / iod)
        mesh_pts.append((fit.points[:468, :2] - centre) / iod)
        names.append(path.name)
    return dlib_pts, mesh_pts, names


def fit_point(target: np.ndarray, vertices: np.ndarray) -> tuple[list, list]:
    """(vertex ids, weights) mixing vertices (N, 468, 2) into target (N, 2)."""
    mean_distance = np.linalg.norm(vertices - target[:, None, :], axis=2).mean(axis=0)
    ids = list(np.argsort(mean_distance)[:CANDIDATES])
    for keep in (CANDIDATES, MAX_VERTICES):
        a = vertices[:, ids, :].transpose(0, 2, 1).reshape(-1, len(ids))
        a = np.vstack([a, np.full((1, len(ids)), SUM_WEIGHT)])
        b = np.r_[target.reshape(-1), SUM_WEIGHT]
        w, _ = nnls(a, b)
        order = np.argsort(-w)[:keep]
        ids, w = [ids[i] for i in order], w[order]
    w = w / w.sum()
    return [int(i) for i in ids], [round(float(x), 5) for x in w]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    shared = Path(__file__).resolve().parents[2] / "shared" / "faces" / "unmasked"
    ap.add_argument("folder", type=Path, nargs="?", default=shared)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    dlib_pts, mesh_pts, names = collect(args.folder, args.limit)
    d, m = np.asarray(dlib_pts), np.asarray(mesh_pts)
    train, test = np.arange(0, len(d), 2), np.arange(1, len(d), 2)
    table = [fit_point(d[train, k], m[train]) for k in range(68)]
    ids = np.array([t[0] for t in table])
    weights = np.array([t[1] for t in table])
    mapped = np.einsum("kj,nkjd->nkd", weights, m[:, ids])
    error = np.linalg.norm(mapped[test] - d[test], axis=2)
    anchors_d = np.array([geometry.face_anchors(x) for x in d[test]])
    anchors_m = np.array([geometry.face_anchors(x) for x in mapped[test]])
    shift = np.linalg.norm(anchors_m - anchors_d, axis=2)
    print(f"{len(d)} photos with both fits ({len(train)} fit the table, {len(test)} measure it)")
    print(f"68 points: mean {error.mean():.4f}, median {np.median(error):.4f} eye distances")
    for name, column in zip(geometry.ANCHOR_NAMES, shift.T):
        print(
            f"  anchor {name:12s} median {np.median(column):.3f}  p90 "
            f"{np.percentile(column, 90):.3f}  mean {column.mean():.3f} eye distances"
        )
    result = {
        "source": f"{args.folder.name}: {len(train)} photos with HOG + MediaPipe fits",
        "test_error_iod": round(float(error.mean()), 4),
        "anchor_shift_median_iod": {
            n: round(float(np.median(c)), 4) for n, c in zip(geometry.ANCHOR_NAMES, shift.T)
        },
        "vertices": ids.tolist(),
        "weights": weights.tolist(),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
