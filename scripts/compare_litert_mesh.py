#!/usr/bin/env python3
"""Compare the LiteRT mesh landmarker (faces/litert_mesh.py) with MediaPipe's Face Landmarker
task (faces/landmarker.py) on the boxes the synthesis cascade finds.

Boxes: FaceFinder (the default detector, --landmarks mediapipe) with MediaPipe's task as its
landmarker, as synthesize ran before LiteRT. On every box both landmarkers fit as the cascade
fits (the box, then a wider crop where that finds no face), timed around the fit calls only.
Reported: faces each fits, the shift between the two fits' 68 points (mesh.to_68) and between
their mask anchors (nose 27-35, jaw 2-14, mouth 48-67), as per-face mean point distances over
the task fit's eye distance (outer corners 36-45), the pose difference, and ms a face. Usage:
    scripts/compare_litert_mesh.py [FOLDER] [--limit N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from maskforge.choices import DEFAULT_DETECTOR
from maskforge.core.imageio import iter_image_files, read_image
from maskforge.faces import mesh
from maskforge.faces.cascade import MESH_RETRY_SCALE, FaceFinder
from maskforge.faces.landmarker import MeshLandmarker
from maskforge.faces.litert_mesh import LiteMeshLandmarker, pose_from_points

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "faces" / "unmasked"
ANCHORS = np.r_[27:36, 2:15, 48:68]
POSE = ("yaw", "pitch", "roll")


def timed_fit(marker, rgb: np.ndarray, box: tuple) -> tuple[object, float]:
    """The cascade's fit (box, then the wider retry crop) and its seconds."""
    start = time.perf_counter()
    fit = marker.fit(rgb, box) or marker.fit(rgb, box, scale=MESH_RETRY_SCALE)
    return fit, time.perf_counter() - start


def shift(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Mean 68-point and mask-anchor distance between two meshes, in eye distances."""
    a, b = mesh.to_68(reference[:, :2]), mesh.to_68(other[:, :2])
    distance = np.linalg.norm(a - b, axis=1) / max(float(np.linalg.norm(a[36] - a[45])), 1.0)
    return float(distance.mean()), float(distance[ANCHORS].mean())


def collect(folder: Path, limit: int | None, detector: str) -> list[dict]:
    """One row per box the cascade finds: both fits' shift, poses and seconds."""
    task, lite = MeshLandmarker(), LiteMeshLandmarker()
    finder = FaceFinder(detector, landmarks="mediapipe")
    finder._mesh.close()
    finder._mesh = task  # the boxes synthesize found with MediaPipe's task
    rows = []
    for path in list(iter_image_files(folder))[:limit]:
        rgb = read_image(path)
        for face in finder.find(rgb):
            fit_task, s_task = timed_fit(task, rgb, face.box)
            fit_lite, s_lite = timed_fit(lite, rgb, face.box)
            row = {
                "photo": str(path.relative_to(folder)),
                "box": [int(v) for v in face.box],
                "task": fit_task is not None,
                "lite": fit_lite is not None,
                "ms_task": s_task * 1000,
                "ms_lite": s_lite * 1000,
            }
            if fit_task is not None:
                # The pose method alone: the similarity fit on the task's own points.
                row["pose_task"] = list(fit_task.pose)
                row["pose_task_points"] = list(pose_from_points(fit_task.points))
            if fit_task is not None and fit_lite is not None:
                row["shift_68"], row["shift_anchors"] = shift(fit_task.points, fit_lite.points)
                row["pose_lite"] = list(fit_lite.pose)
            rows.append(row)
    task.close()
    lite.close()
    return rows


def spread(values) -> dict:
    values = np.asarray(values, np.float64)
    if not len(values):
        return {"mean": None, "p95": None, "max": None}
    return {
        "mean": float(values.mean()),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def summarise(rows: list[dict]) -> dict:
    both = [r for r in rows if "shift_68" in r]
    fitted = [r for r in rows if "pose_task" in r]
    pose = {}
    for label, key, subset in (
        ("lite_vs_task", "pose_lite", both),
        ("points_vs_task_matrix", "pose_task_points", fitted),
    ):
        diff = np.array([np.subtract(r[key], r["pose_task"]) for r in subset]).reshape(-1, 3)
        pose[label] = {
            name: {
                "mean_abs": float(np.abs(diff[:, i]).mean()) if len(diff) else None,
                "p95_abs": float(np.percentile(np.abs(diff[:, i]), 95)) if len(diff) else None,
                "bias": float(diff[:, i].mean()) if len(diff) else None,
            }
            for i, name in enumerate(POSE)
        }
    return {
        "photos": len({r["photo"] for r in rows}),
        "boxes": len(rows),
        "fitted": {
            "task": sum(r["task"] for r in rows),
            "lite": sum(r["lite"] for r in rows),
            "both": len(both),
            "task_only": sum(r["task"] and not r["lite"] for r in rows),
            "lite_only": sum(r["lite"] and not r["task"] for r in rows),
        },
        "shift_68": spread([r["shift_68"] for r in both]),
        "shift_anchors": spread([r["shift_anchors"] for r in both]),
        "pose": pose,
        "ms_per_face": {
            "task": float(np.mean([r["ms_task"] for r in rows])) if rows else None,
            "lite": float(np.mean([r["ms_lite"] for r in rows])) if rows else None,
        },
    }


def table(summary: dict) -> str:
    f, ms = summary["fitted"], summary["ms_per_face"]
    lines = [
        f"{summary['photos']} photos, {summary['boxes']} boxes",
        f"fitted: task {f['task']}, LiteRT {f['lite']}, both {f['both']}, "
        f"task only {f['task_only']}, LiteRT only {f['lite_only']}",
        f"{'shift (eye distances)':<26}{'mean':>8}{'p95':>8}{'max':>8}",
    ]
    for key, label in (("shift_68", "68 points"), ("shift_anchors", "mask anchors")):
        s = summary[key]
        lines.append(f"{label:<26}" + "".join(f"{s[k] or 0:>8.4f}" for k in ("mean", "p95", "max")))
    lines.append(f"{'pose (deg, mean |diff|)':<26}" + "".join(f"{n:>8}" for n in POSE))
    for key, label in (("lite_vs_task", "LiteRT vs task"), ("points_vs_task_matrix", "task pts")):
        p = summary["pose"][key]
        lines.append(f"{label:<26}" + "".join(f"{p[n]['mean_abs'] or 0:>8.2f}" for n in POSE))
    lines.append(f"ms/face: task {ms['task'] or 0:.1f}, LiteRT {ms['lite'] or 0:.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=FOLDER)
    parser.add_argument("--limit", type=int, default=None, help="first N photos only")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--json", type=Path, default=None, help="write summary and rows here")
    args = parser.parse_args()
    rows = collect(args.folder, args.limit, args.detector)
    summary = summarise(rows)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
