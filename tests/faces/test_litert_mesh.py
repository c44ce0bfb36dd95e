"""MediaPipe's models run by LiteRT (faces/litert_mesh.py): the same points and pose as
MediaPipe's Face Landmarker task on real photos, rolled faces, no face in a grey box, the same
result twice, the pose's axes, and the fallback to the task without LiteRT."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskforge.core.imageio import read_image
from maskforge.faces import litert_mesh, mesh
from maskforge.faces.cascade import FaceFinder

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed")

PHOTOS = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0020.jpg", "0.jpg")
# MediaPipe's task runs in a child process: its runtime loaded in a test worker made a later
# ray.init segfault (see conftest.pytest_collection_modifyitems).
TASK_FITS = """
import json, sys
from maskforge.core.imageio import read_image
from maskforge.faces.landmarker import MeshLandmarker
jobs, out = json.loads(sys.argv[1]), sys.argv[2]
marker = MeshLandmarker()
fits = [marker.fit(read_image(path), box) for path, box in jobs]
json.dump([f and {"points": f.points.tolist(), "pose": list(f.pose)} for f in fits], open(out, "w"))
marker.close()
"""


def _68(points: np.ndarray) -> np.ndarray:
    return mesh.to_68(np.asarray(points)[:, :2])


def _shift(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean 68-point distance in the reference's eye distances (outer corners)."""
    a, b = _68(reference), _68(other)
    return float(np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(a[36] - a[45]))


@pytest.fixture(scope="module")
def lite() -> litert_mesh.LiteMeshLandmarker:
    marker = litert_mesh.LiteMeshLandmarker()
    yield marker
    marker.close()


@pytest.fixture(scope="module")
def faces(unmasked_dir: Path) -> list[tuple[Path, np.ndarray, tuple]]:
    """(path, photo, box the synthesis cascade finds) for PHOTOS."""
    finder = FaceFinder(landmarks="mediapipe")
    out = []
    for name in PHOTOS:
        rgb = read_image(unmasked_dir / name)
        out.append((unmasked_dir / name, rgb, finder.find(rgb)[0].box))
    return out


@pytest.fixture(scope="module")
def task_fits(faces, tmp_path_factory) -> list[dict | None]:
    out = tmp_path_factory.mktemp("task") / "fits.json"
    jobs = json.dumps([(str(path), [int(v) for v in box]) for path, _, box in faces])
    subprocess.run([sys.executable, "-c", TASK_FITS, jobs, str(out)], check=True, timeout=300)
    return json.loads(out.read_text())


def test_agrees_with_mediapipes_task(lite, faces, task_fits) -> None:
    for (path, rgb, box), task in zip(faces, task_fits):
        assert task is not None, path.name
        fit = lite.fit(rgb, box)
        assert fit is not None and fit.points.shape == (478, 3), path.name
        assert _shift(np.array(task["points"]), fit.points) < 0.05, path.name
        yaw, _, roll = np.subtract(fit.pose, task["pose"])
        assert abs(yaw) < 5 and abs(roll) < 5, (path.name, fit.pose, task["pose"])
        # z in the same units as x: the face is about as deep as in the task's fit.
        depth = np.ptp(fit.points[:, 2]) / np.ptp(np.array(task["points"])[:, 2])
        assert 0.85 < depth < 1.15, (path.name, depth)


@pytest.mark.parametrize("degrees", [30, 50, -50])
def test_rolled_face_gets_the_same_points(lite, faces, degrees: int) -> None:
    """A face turned in the image plane gets the upright fit's points, turned: the detector's
    eyes level the crop (the mesh alone, run on the unlevelled crop, misplaces faces turned
    by 50 degrees)."""
    for path, rgb, box in faces[:3]:
        upright = lite.fit(rgb, box)
        # Turned about the box centre, on a canvas big enough to keep the photo.
        pad = max(rgb.shape[:2]) // 2
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        left, top, right, bottom = (v + pad for v in box)
        centre = ((left + right) / 2, (top + bottom) / 2)
        turn = cv2.getRotationMatrix2D(centre, degrees, 1.0)
        rotated = cv2.warpAffine(padded, turn, padded.shape[1::-1])
        fit = lite.fit(rotated, (left, top, right, bottom))
        assert fit is not None, path.name
        back = cv2.invertAffineTransform(turn)
        points = fit.points[:, :2] @ back[:, :2].T + back[:, 2] - pad
        assert _shift(upright.points, points) < 0.05, path.name
        # cv2's positive angle turns the photo anticlockwise: the face's roll goes down.
        assert abs(fit.pose[2] - (upright.pose[2] - degrees)) < 5, (path.name, fit.pose)


def test_no_face_in_a_grey_box(lite) -> None:
    grey = np.full((300, 300, 3), 128, np.uint8)
    assert lite.fit(grey, (100, 100, 200, 200)) is None
    assert lite.fit(grey, (100, 100, 200, 200), scale=2.2) is None


def test_deterministic(lite, faces) -> None:
    _, rgb, box = faces[0]
    first, second = lite.fit(rgb, box), lite.fit(rgb, box)
    assert np.array_equal(first.points, second.points) and first.pose == second.pose


def _turned(points: np.ndarray, first: int, second: int, degrees: float) -> np.ndarray:
    """points rotated by degrees in the plane of two image axes (0 x right, 1 y down, 2 z
    away), from the first toward the second."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    turn = np.eye(3)
    turn[[first, first, second, second], [first, second, first, second]] = c, -s, s, c
    return points @ turn.T


def test_pose_axes_from_the_canonical_mesh() -> None:
    """The canonical mesh faces the camera (pose 0, any scale and place); its nose turned to
    larger x is a positive yaw, turned down a negative pitch, and the face turned clockwise on
    screen (x toward y) a positive roll, as the task's matrices read."""
    vertices = mesh.canonical_mesh().vertices
    assert np.allclose(litert_mesh.pose_from_points(vertices * 30 + 100), 0, atol=1e-6)
    nose_right = _turned(vertices, 2, 0, -20)  # the nose (-z) toward +x
    nose_down = _turned(vertices, 1, 2, 20)  # the nose (-z) toward +y
    clockwise = _turned(vertices, 0, 1, 20)
    for points, expected in (
        (nose_right, (20, 0, 0)),
        (nose_down, (0, -20, 0)),
        (clockwise, (0, 0, 20)),
    ):
        assert np.allclose(litert_mesh.pose_from_points(points), expected, atol=1e-6)
    assert math.degrees(litert_mesh.roll_of(clockwise)) == pytest.approx(20)


def test_falls_back_to_the_task_without_litert(monkeypatch) -> None:
    from maskforge.faces import landmarker

    made = []
    monkeypatch.setattr(landmarker, "MeshLandmarker", lambda: made.append(1) or "task")
    assert isinstance(litert_mesh.mesh_landmarker(), litert_mesh.LiteMeshLandmarker)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert litert_mesh.mesh_landmarker() == "task" and made == [1]
