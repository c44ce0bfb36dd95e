"""`maskforge export`: exported models match PyTorch on the same inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import iter_image_files, read_image
from maskforge.dataset.manifest import write_manifest
from maskforge.deploy import export as export_module
from maskforge.deploy.export import ExportWrapper, export_run, preprocess
from maskforge.learn.models import (
    CheckpointInfo,
    build_model,
    checkpoint_dict,
    load_checkpoint,
    probabilities,
)
from maskforge.learn.transforms import eval_transform


def make_run(root: Path, arch: str, classes: list[str], img_size: int = 32, images=()) -> Path:
    """An untrained run folder (random weights, non-trivial BatchNorm statistics), with a
    test manifest of the given images when any are given."""
    torch.manual_seed(1)
    model = build_model(arch, 1 if len(classes) == 2 else len(classes))
    # Put the BatchNorm running statistics somewhere other than (0, 1) so that errors in the
    # exported graph's normalisation would show.
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, img_size, img_size) * 0.7 + 0.2)
    info = CheckpointInfo(arch, classes, img_size, [0.52, 0.43, 0.39], [0.27, 0.25, 0.26])
    run = root / "runs" / f"{arch}-{len(classes)}"
    run.mkdir(parents=True)
    torch.save(checkpoint_dict(model.eval(), info), run / "best.pt")
    if images:
        rows = [
            {"abspath": str(p), "label": classes[i % len(classes)]} for i, p in enumerate(images)
        ]
        write_manifest(pd.DataFrame(rows), root / "manifests" / "test.csv")
        (run / "config.json").write_text(json.dumps({"manifests": str(root / "manifests")}))
    return run


def _reference(run: Path, images: list[np.ndarray]) -> np.ndarray:
    """PyTorch pipeline probabilities: the eval transform, the model, probabilities()."""
    model, info = load_checkpoint(run / "best.pt")
    tf = eval_transform(info.img_size, info.mean, info.std)
    with torch.inference_mode():
        return probabilities(model(torch.stack([tf(image=im)["image"] for im in images]))).numpy()


@pytest.fixture(scope="module")
def real_photos(unmasked_dir) -> list[Path]:
    return list(iter_image_files(unmasked_dir))[:5]


def test_onnx_matches_pytorch_on_real_photos(tmp_path, real_photos):
    import onnx
    import onnxruntime as ort

    run = make_run(tmp_path, "resnet18", ["unmasked", "masked"], 48, real_photos)
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "onnx", "--verify", "4"])
    assert result.exit_code == 0, result.output
    path = run / "export/model.onnx"
    assert path.is_file()
    assert (
        "Verified on 4 images from" in result.output and "max abs diff vs PyTorch" in result.output
    )
    assert "float32 (N, 3, 48, 48) RGB in 0..1" in result.output
    # Independent check with onnxruntime, on every photo and another batch size.
    images = [read_image(p) for p in real_photos]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.stack([preprocess(im, 48) for im in images])
    got = session.run(["probabilities"], {"image": batch})[0]
    expected = _reference(run, images)
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    single = session.run(["probabilities"], {"image": batch[:1]})[0]
    np.testing.assert_allclose(single, expected[:1], atol=1e-4, rtol=0)
    # The file describes itself.
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["classes"]) == ["unmasked", "masked"]
    meta = json.loads((run / "export/model.onnx.json").read_text())
    assert meta["img_size"] == 48 and meta["positive_class"] == "masked"
    assert meta["max_abs_diff"] <= 1e-4 and meta["verified_on"].startswith("4 images")


def test_onnx_lite0_matches_pytorch(tmp_path, real_photos):
    import onnxruntime as ort

    run = make_run(tmp_path, "efficientnet_lite0", ["unmasked", "masked"], 64, real_photos)
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "onnx", "--verify", "3"])
    assert result.exit_code == 0, result.output
    images = [read_image(p) for p in real_photos]
    path = str(run / "export/model.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    batch = np.stack([preprocess(im, 64) for im in images])
    got = session.run(["probabilities"], {"image": batch})[0]
    np.testing.assert_allclose(got, _reference(run, images), atol=1e-4, rtol=0)


def test_torchscript_three_classes_matches_pytorch(tmp_path, rng):
    classes = ["unmasked", "masked", "incorrect"]
    run = make_run(tmp_path, "resnet18", classes, 40)
    result = export_run(run, "torchscript", verify=3)
    assert result.path == run / "export/model.torchscript.pt"
    assert result.verify_source == "3 random images (no manifest of the run found)"
    assert result.max_abs_diff <= 1e-5
    images = [rng.integers(0, 256, (70, 50, 3), dtype=np.uint8) for _ in range(4)]
    extra = {"maskforge.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(result.path), _extra_files=extra)
    with torch.inference_mode():
        got = module(torch.from_numpy(np.stack([preprocess(im, 40) for im in images]))).numpy()
    np.testing.assert_allclose(got, _reference(run, images), atol=1e-5, rtol=0)
    assert json.loads(extra["maskforge.json"])["classes"] == classes


def test_wrapper_bakes_in_normalisation(rng):
    model = build_model("resnet18", 1).eval()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    x = torch.from_numpy(rng.random((2, 3, 32, 32)).astype(np.float32))
    norm = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = probabilities(model(norm))
        got = ExportWrapper(model, mean, std)(x)
    torch.testing.assert_close(got, expected)


def test_export_refuses_a_model_that_does_not_match(tmp_path, monkeypatch):
    run = make_run(tmp_path, "resnet18", ["unmasked", "masked"])
    real = export_module.run_exported
    monkeypatch.setattr(export_module, "run_exported", lambda *a: real(*a) + 0.01)
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "torchscript"])
    assert result.exit_code == 2
    assert "Exported model differs from PyTorch by 1.00e-02" in result.output
    assert "nothing written" in result.output
    assert not (run / "export").exists()  # no file, no temporary, not even the folder made


def test_export_help_and_bad_format():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--format", "--out", "--checkpoint", "--verify", "--atol", "--opset", "--seed"):
        assert option in result.output
    assert "RGB images (N, 3, S, S) with values 0..1" in " ".join(result.output.split())
    bad = CliRunner().invoke(cli, ["export", "--format", "tflite"])
    assert bad.exit_code == 2 and "'tflite' is not one of" in bad.output


def test_preprocess_is_the_eval_resize(rng):
    image = rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)
    tf = eval_transform(32, [0.0] * 3, [1.0] * 3)  # identity normalisation: just /255
    np.testing.assert_allclose(preprocess(image, 32), tf(image=image)["image"].numpy(), atol=1e-6)


# --- one command at a time on an exported file; a read-only or full disk -------------------------


def test_export_to_a_file_another_command_writes_is_refused(tmp_path, hold_lock, one_error):
    run = make_run(tmp_path, "resnet18", ["unmasked", "masked"])
    out = tmp_path / "exported" / "model.onnx"
    with hold_lock(out.parent / ".model.onnx.lock"):
        result = CliRunner().invoke(cli, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = one_error(result.output)
    assert str(out) in line and "in use by another maskforge command" in line
    assert [p.name for p in out.parent.iterdir()] == [".model.onnx.lock"]  # nothing written


def test_export_to_a_read_only_folder_or_a_full_disk_is_a_one_line_error(
    tmp_path, in_namespace, one_error
):
    run = make_run(tmp_path, "resnet18", ["unmasked", "masked"])
    (tmp_path / "ro").mkdir()
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "kept.txt").write_text("here before\n")
    script = """
    read_only "$RO" || exit 99
    $MF export "$RUN" --out "$RO/model.onnx" > "$LOGS/ro" 2>&1; echo $? > "$LOGS/ro.code"
    small_disk "$DISK" 256k || exit 99
    echo "here before" > "$DISK/kept.txt"
    $MF export "$RUN" --format torchscript --out "$DISK/model.pt" > "$LOGS/full" 2>&1
    echo $? > "$LOGS/full.code"; ls -A "$DISK" > "$LOGS/full.files"
    """
    logs = tmp_path / "logs"
    logs.mkdir()
    done = in_namespace(script, RUN=run, RO=tmp_path / "ro", DISK=tmp_path / "disk", LOGS=logs)
    assert done.returncode == 0, done.stderr
    for name, target, why in (
        ("ro", tmp_path / "ro" / "model.onnx", "Read-only file system"),
        ("full", tmp_path / "disk" / "model.pt", "No space left on device"),
    ):
        output = (logs / name).read_text()
        assert (logs / f"{name}.code").read_text().strip() == "2", output
        line = one_error(output)
        assert line.startswith(f"Error: Cannot write to {target}") and why in line, line
    assert (logs / "full.files").read_text().split() == ["kept.txt"]  # no cut file left
