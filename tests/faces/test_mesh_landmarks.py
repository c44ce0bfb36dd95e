"""MediaPipe landmarks: the vendored bundle and its checksum, the canonical mesh, mesh fits on
real photos (anatomical order, inside the box, head pose sign), the 478 -> 68 table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskforge.core.imageio import read_image
from maskforge.faces import geometry, mesh
from maskforge.faces.cascade import FaceFinder
from maskforge.synth.render import surface

PHOTOS = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0020.jpg")


@pytest.fixture(scope="module")
def finders():
    return FaceFinder("cascade", landmarks="mediapipe"), FaceFinder("cascade", landmarks="dlib")


@pytest.fixture(scope="module")
def photos(unmasked_dir: Path) -> list[np.ndarray]:
    return [read_image(unmasked_dir / name) for name in PHOTOS]


def test_bundle_checksum_is_verified(monkeypatch, tmp_path: Path) -> None:
    assert len(mesh.load_bundle()) == 3_758_596
    bad = tmp_path / "face_landmarker.task"
    data = bytearray(mesh.load_bundle())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv(mesh.BUNDLE_ENV, str(bad))
    with pytest.raises(mesh.ModelBundleError, match="damaged or a different version"):
        mesh.load_bundle()
    monkeypatch.setenv(mesh.BUNDLE_ENV, str(tmp_path / "missing.task"))
    with pytest.raises(mesh.ModelBundleError, match="missing"):
        mesh.load_bundle()


def test_corrupt_bundle_is_a_one_line_cli_error(monkeypatch, tmp_path: Path) -> None:
    from maskforge.cli import cli

    bad = tmp_path / "bad.task"
    bad.write_bytes(b"not a model")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jpg").write_bytes(b"x")
    monkeypatch.setenv(mesh.BUNDLE_ENV, str(bad))
    result = CliRunner().invoke(
        cli, ["synthesize", str(raw), str(tmp_path / "out"), "--landmarks", "mediapipe"]
    )
    assert result.exit_code == 2, result.output
    assert "damaged or a different version" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "synthesis.csv").exists()


def test_canonical_mesh() -> None:
    canonical = mesh.canonical_mesh()
    assert canonical.vertices.shape == (468, 3)
    assert canonical.triangles.shape == (898, 3)
    assert canonical.triangles.max() == 467
    assert ((canonical.uv >= 0) & (canonical.uv <= 1)).all()
    # z points away from the camera: the nose tip (vertex 1) is the nearest point.
    assert np.argmin(canonical.vertices[:, 2]) in (1, 4)
    # y points down: the chin (152) is below the forehead (10).
    assert canonical.vertices[152, 1] > canonical.vertices[10, 1]


def test_mesh_landmarks_in_anatomical_order(finders, photos) -> None:
    finder, _ = finders
    for rgb in photos:
        face = finder.find(rgb)[0]
        assert face.mesh.shape == (478, 3) and face.pose is not None
        lm = face.landmarks
        left, right = geometry.eye_centres(lm)
        assert left[0] < right[0]
        eye_y = (left[1] + right[1]) / 2
        assert eye_y < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]
        assert lm[48, 0] < lm[54, 0]  # mouth corners, image-left first
        x0, t, r, b = face.box
        grow = 0.15 * (r - x0)
        x, y = lm[27:68].T
        assert (x > x0 - grow).all() and (x < r + grow).all()
        assert (y > t - grow).all() and (y < b + grow).all()
        assert face.plausible()


def test_mesh_68_points_close_to_dlib(finders, photos) -> None:
    mp_finder, dlib_finder = finders
    for rgb in photos:
        mp_face = mp_finder.find(rgb)[0]
        dlib_face = dlib_finder.find(rgb)[0]
        iod = geometry.interocular(dlib_face.landmarks)
        error = np.linalg.norm(mp_face.landmarks - dlib_face.landmarks, axis=1).mean() / iod
        assert error < 0.12, error


def test_yaw_flips_sign_when_mirrored(finders, unmasked_dir: Path) -> None:
    finder, _ = finders
    checked = 0
    for name in ("0_0_aidai_0074.jpg", "0_0_benxi_0187.jpg", "0_0_caiyilin_0100.jpg"):
        rgb = read_image(unmasked_dir / name)
        yaw = finder.find(rgb)[0].pose[0]
        mirrored = finder.find(np.ascontiguousarray(rgb[:, ::-1]))[0].pose[0]
        assert abs(yaw) > 8, (name, yaw)
        assert np.sign(yaw) == -np.sign(mirrored), (name, yaw, mirrored)
        assert abs(abs(yaw) - abs(mirrored)) < 6
        checked += 1
    assert checked == 3


def test_mesh_from_68_reproduces_the_landmarks(finders, photos) -> None:
    _, dlib_finder = finders
    for rgb in photos:
        lm = dlib_finder.find(rgb)[0].landmarks
        posed = surface.mesh_from_68(lm)
        assert posed.shape == (468, 3)
        error = np.linalg.norm(mesh.to_68(posed[:, :2]) - lm, axis=1).mean()
        assert error / geometry.interocular(lm) < 0.06
        # The nose tip stands nearest to the camera.
        assert posed[1, 2] < np.median(posed[:, 2])


def test_no_mesh_in_a_box_without_a_face(finders, rng) -> None:
    finder, _ = finders
    noise = rng.integers(0, 255, (240, 240, 3), dtype=np.uint8)
    face = finder.from_box(noise, (40, 40, 200, 200))
    assert face.mesh is None and not face.plausible()
