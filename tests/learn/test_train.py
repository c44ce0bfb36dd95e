"""`maskforge train`: learning on real photos, the run folder, checkpoints, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from maskforge.cli import cli
from maskforge.core.imageio import write_image
from maskforge.core.workspace import remember
from maskforge.dataset.manifest import class_order, file_sha256, read_manifest
from maskforge.learn.config import TrainConfig
from maskforge.learn.loaders import ManifestDataset
from maskforge.learn.models import load_checkpoint, probabilities, read_checkpoint
from maskforge.learn.stopping import TrainingInterrupted
from maskforge.learn.train import train
from maskforge.learn.transforms import eval_transform

STATS_MEAN = [0.55, 0.47, 0.43]
STATS_STD = [0.28, 0.26, 0.25]


def write_manifests(
    root: Path, train_items, val_items, *, stats: bool = True, **stats_extra
) -> Path:
    """root/manifests/{train,val}.csv (+ a stats.json matching train.csv); items: (path, label)."""
    out = root / "manifests"
    out.mkdir(parents=True, exist_ok=True)
    for name, items in (("train", train_items), ("val", val_items)):
        rows = [(os.path.relpath(p, out), label) for p, label in items]
        pd.DataFrame(rows, columns=["path", "label"]).to_csv(out / f"{name}.csv", index=False)
    if stats:
        doc = {
            "mean": STATS_MEAN,
            "std": STATS_STD,
            "size": 64,
            "count": len(train_items),
            "manifest": "train.csv",
            "manifest_sha256": file_sha256(out / "train.csv"),
            "classes": class_order(label for _, label in train_items),
        }
        doc.update(stats_extra)
        (out / "stats.json").write_text(json.dumps(doc))
    return out


def real_items(
    masked_dir: Path, unmasked_dir: Path, offset: int, count: int
) -> list[tuple[Path, str]]:
    """`count` masked and `count` unmasked real photos: every 4th file from `offset` (0..3).

    Different offsets give disjoint sets spread over each whole folder.
    """
    masked = sorted(masked_dir.glob("*.jpg"))[offset::4][:count]
    unmasked = sorted(unmasked_dir.glob("*.jpg"))[offset::4][:count]
    return [(p, "masked") for p in masked] + [(p, "unmasked") for p in unmasked]


def made_faces(folder: Path, count: int, rng: np.random.Generator) -> list[tuple[Path, str]]:
    """Drawn 48x48 'faces' of three classes: no mask, mask over nose and mouth, mask on the chin."""
    folder.mkdir(parents=True, exist_ok=True)
    palette = [(170, 210, 235), (240, 240, 240), (30, 30, 35), (90, 140, 200)]  # mask colours
    items = []
    for i in range(count):
        label = ("unmasked", "masked", "incorrect")[i % 3]
        img = np.clip(rng.normal(128, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
        skin = tuple(int(x) for x in rng.integers(140, 220) * np.array([1.0, 0.8, 0.65]))
        cx, cy = (int(x) for x in rng.integers(21, 28, 2))
        cv2.ellipse(img, (cx, cy), (15, 20), 0, 0, 360, skin, -1)
        top = {"unmasked": None, "masked": cy - 2, "incorrect": cy + 12}[label]
        if top is not None:
            cv2.rectangle(img, (cx - 14, top), (cx + 14, cy + 19), palette[i // 3 % 4], -1)
        path = folder / f"{label}_{i:03d}.png"
        write_image(path, img)
        items.append((path, label))
    return items


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, masked_real_dir, unmasked_dir):
    """One CLI training run on real photos (resnet18, 48 px, 4 epochs), shared by several tests."""
    root = tmp_path_factory.mktemp("real")
    manifests = write_manifests(
        root,
        real_items(masked_real_dir, unmasked_dir, 0, 64),
        real_items(masked_real_dir, unmasked_dir, 1, 30),
    )
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(
            cli,
            [
                "train",
                "--arch",
                "resnet18",
                "--img-size",
                "48",
                "--epochs",
                "4",
                "--batch-size",
                "16",
                "--weights",
                "none",
                "--workers",
                "0",
            ],
        )
    finally:
        os.chdir(cwd)
    runs = list((root / "runs").iterdir())
    return root, manifests, result, runs


def test_real_photos_loss_goes_down_and_val_beats_chance(real_run):
    root, manifests, result, runs = real_run
    assert result.exit_code == 0, result.output
    assert "Using manifests manifests/ (default)" in result.stdout
    assert len(runs) == 1 and runs[0].name.endswith("-resnet18")
    metrics = pd.read_csv(runs[0] / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    assert list(metrics.columns) == [
        "epoch",
        "phase",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "images_per_s",
        "train_seconds",
        "epoch_seconds",
        "best",
    ]
    assert metrics["train_loss"].iloc[-1] < 0.8 * metrics["train_loss"].iloc[0]
    assert metrics["train_acc"].iloc[-1] > metrics["train_acc"].iloc[0]
    # 60 balanced val images: 0.75 is almost 4 standard deviations above chance.
    assert metrics["val_acc"].iloc[-1] >= 0.75
    # Cosine schedule from the default lr over 4 epochs.
    np.testing.assert_allclose(
        metrics["lr"], 0.005 * (1 + np.cos(np.pi * np.arange(4) / 4)), rtol=1e-5
    )
    assert (metrics["images_per_s"] > 0).all()


def test_run_folder_contents_and_chaining(real_run):
    root, manifests, result, runs = real_run
    run = runs[0]
    for name in ("config.json", "metrics.csv", "curves.png", "best.pt", "last.pt", "train.log"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "resnet18" and config["img_size"] == 48 and config["lr"] == 0.01
    assert (
        config["optimizer"] == "sgd"
        and config["momentum"] == 0.9
        and config["weight_decay"] == 5e-4
    )
    assert config["data"]["classes"] == ["unmasked", "masked"]
    assert config["data"]["mean"] == STATS_MEAN and config["data"]["std"] == STATS_STD
    assert config["data"]["manifest_sha256"]["train"] == file_sha256(manifests / "train.csv")
    with Image.open(run / "curves.png") as png:
        assert png.size == (1000, 400)
    log = (run / "train.log").read_text()
    assert log.count("epoch 4/4 [full]") == 1 and "Normalisation from stats.json" in log
    state = json.loads((root / ".maskforge" / "state.json").read_text())
    assert state["run"] == f"runs/{run.name}"


def test_checkpoint_round_trip_reproduces_recorded_val_accuracy(real_run):
    root, manifests, result, runs = real_run
    run = runs[0]
    metrics = pd.read_csv(run / "metrics.csv")
    best_row = metrics.loc[metrics["val_loss"].idxmin()]
    ckpt = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["format"] == "maskforge-checkpoint-v1" and ckpt["epoch"] == best_row["epoch"]
    assert ckpt["num_outputs"] == 1 and ckpt["classes"] == ["unmasked", "masked"]
    assert "optimizer" not in ckpt
    model, info = load_checkpoint(run / "best.pt")
    assert (info.arch, info.img_size, info.mean, info.std) == (
        "resnet18",
        48,
        STATS_MEAN,
        STATS_STD,
    )
    # Evaluate the reloaded model the way `maskforge eval` would (from the original files).
    val = read_manifest(manifests / "val.csv")
    dataset = ManifestDataset(val, info.classes, eval_transform(info.img_size, info.mean, info.std))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        probs = probabilities(model(images))
    accuracy = float((probs.argmax(1).numpy() == dataset.targets).mean())
    assert accuracy == pytest.approx(best_row["val_acc"], abs=1e-6)  # one image would be 1/60
    p_true = probs[torch.arange(len(dataset)), torch.from_numpy(dataset.targets)]
    assert float(-p_true.log().mean()) == pytest.approx(best_row["val_loss"], rel=1e-4)
    last = read_checkpoint(run / "last.pt")
    assert last["epoch"] == 4 and last["finished"] and last["stop_reason"] == "completed"
    assert set(last) >= {"optimizer", "scheduler", "early_stopping", "rng"}


def test_three_classes_cross_entropy_with_frozen_then_unfrozen_backbone(tmp_path, rng):
    items = made_faces(tmp_path / "img", 90, rng)
    write_manifests(tmp_path, items[:60], items[60:], stats=False)
    result = train(
        TrainConfig(
            manifests=str(tmp_path / "manifests"),
            arch="resnet18",
            weights="none",
            freeze_backbone=True,
            unfreeze_after=4,
            epochs=8,
            batch_size=12,
            img_size=32,
            workers=0,
            cache_dir=str(tmp_path / "cache"),
            patience=0,
        ),
        tmp_path / "run",
    )
    assert result.classes == ["unmasked", "masked", "incorrect"]
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["phase"]) == ["frozen"] * 4 + ["full"] * 4
    assert metrics["train_loss"].iloc[3] < metrics["train_loss"].iloc[0]  # the head alone learns
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    assert metrics["val_acc"].max() >= 0.7  # chance is 1/3 on 30 images
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["num_outputs"] == 3 and ckpt["classes"] == ["unmasked", "masked", "incorrect"]
    # No stats.json: normalisation computed from the train images (drawn, so not ImageNet-like).
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(config["data"]["mean"]) == 3 and all(0.2 < m < 0.8 for m in config["data"]["mean"])


def _tiny_config(tmp_path: Path, **kw) -> TrainConfig:
    values = dict(
        manifests=str(tmp_path / "manifests"),
        arch="resnet18",
        weights="none",
        epochs=3,
        batch_size=8,
        img_size=32,
        workers=0,
        cache_dir=str(tmp_path / "cache"),
        seed=7,
    )
    values.update(kw)
    return TrainConfig(**values)


def test_interrupt_then_resume_gives_the_same_weights(tmp_path, rng, monkeypatch):
    items = made_faces(tmp_path / "img", 36, rng)
    write_manifests(tmp_path, items[:24], items[24:], stats=False)
    train(_tiny_config(tmp_path, workers=1), tmp_path / "straight")

    def interrupt(epoch: int, step: int) -> None:
        if (epoch, step) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(
            _tiny_config(tmp_path),
            Path("runs/stopped"),
            on_step=interrupt,
            on_start=lambda run: remember("run", run),
        )
    assert (stopped.value.epoch, stopped.value.step, stopped.value.steps) == (1, 2, 3)
    partial = read_checkpoint(tmp_path / "runs/stopped/last.pt")
    assert (
        partial["epoch"] == 1
        and partial["resume"]["totals"][0]["step"] == 2
        and not partial["finished"]
    )
    assert len(pd.read_csv(tmp_path / "runs/stopped/metrics.csv")) == 1

    result = CliRunner().invoke(cli, ["train", "--resume"])  # no value: the last run started here
    assert result.exit_code == 0, result.output
    assert "Resuming run runs/stopped/" in result.stdout

    a = read_checkpoint(tmp_path / "straight/last.pt")
    b = read_checkpoint(tmp_path / "runs/stopped/last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    ma = pd.read_csv(tmp_path / "straight/metrics.csv")
    mb = pd.read_csv(tmp_path / "runs/stopped/metrics.csv")
    for col in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        np.testing.assert_array_equal(ma[col], mb[col])

    again = CliRunner().invoke(cli, ["train", "--resume", "runs/stopped"])
    assert again.exit_code == 2 and "already finished" in again.output


def test_cli_prints_how_to_resume_when_interrupted(tmp_path, monkeypatch):
    import maskforge.learn.train as train_module

    def stopped(run, resume):
        raise TrainingInterrupted(run.run_dir, 2, 5, 10)

    write_manifests(
        tmp_path,
        [(tmp_path / "a.png", "masked"), (tmp_path / "b.png", "unmasked")],
        [(tmp_path / "a.png", "masked")],
    )
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(train_module._Run, "fit", stopped)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--run", "runs/r1", "--weights", "none"])
    assert result.exit_code == 130
    assert "after batch 5/10" in result.stderr
    assert "Resume with: maskforge train --resume runs/r1/" in result.stderr


def test_early_stopping_ends_the_run(tmp_path, rng, monkeypatch):
    import maskforge.learn.train as train_module

    items = made_faces(tmp_path / "img", 30, rng)
    write_manifests(tmp_path, items[:18], items[18:])
    losses = iter([0.9, 0.8, 0.85, 0.81, 0.95, 0.7])

    def fake_eval(*args, **kwargs):
        loss = next(losses)
        return {
            "loss": loss,
            "acc": 0.5,
            "count": 12,
            "sums": torch.tensor([loss * 12, 6.0, 12.0], dtype=torch.float64),
        }

    monkeypatch.setattr(train_module, "validate_epoch", fake_eval)
    result = train(
        _tiny_config(tmp_path, freeze_backbone=True, epochs=10, patience=2), tmp_path / "run"
    )
    assert result.stop_reason == "early_stopping" and result.epochs_completed == 4
    assert (result.best_epoch, result.best_val_loss) == (2, 0.8)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["best"]) == [True, True, False, False]
    assert read_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


# --- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def small_set(tmp_path, masked_real_dir, unmasked_dir):
    """Two real photos per class, copied nowhere: manifests point into ../shared/faces."""
    return real_items(masked_real_dir, unmasked_dir, 0, 2), real_items(
        masked_real_dir, unmasked_dir, 1, 1
    )


def _invoke(tmp_path: Path, *args: str):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(
            cli, ["train", "--weights", "none", "--cache-dir", str(tmp_path / "c"), *args]
        )
    finally:
        os.chdir(cwd)


def test_error_no_manifests_folder(tmp_path):
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert "Manifests folder not found: " in result.output and "maskforge split" in result.output


def test_error_empty_train_manifest(tmp_path, small_set):
    write_manifests(tmp_path, *small_set, stats=False)
    (tmp_path / "manifests" / "train.csv").write_text("path,label\n")
    result = _invoke(tmp_path)
    assert result.exit_code == 2 and "has no rows" in result.output


def test_error_single_class(tmp_path, small_set):
    train_items, val_items = small_set
    write_manifests(tmp_path, [i for i in train_items if i[1] == "masked"], val_items, stats=False)
    result = _invoke(tmp_path)
    assert result.exit_code == 2 and "has only one class (masked)" in result.output


def test_error_val_label_unknown_to_train(tmp_path, small_set):
    train_items, val_items = small_set
    write_manifests(
        tmp_path, train_items, val_items + [(val_items[0][0], "incorrect")], stats=False
    )
    result = _invoke(tmp_path)
    assert result.exit_code == 2 and "label(s) incorrect that train.csv lacks" in result.output


def test_error_missing_images(tmp_path, small_set):
    train_items, val_items = small_set
    write_manifests(
        tmp_path, train_items + [(tmp_path / "gone.jpg", "masked")], val_items, stats=False
    )
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert (
        "1 image(s) listed in " in result.output and "train.csv are missing, e.g. " in result.output
    )
    assert "gone.jpg" in result.output


def test_error_unreadable_image(tmp_path, small_set):
    train_items, val_items = small_set
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_manifests(
        tmp_path, train_items + [(tmp_path / "broken.jpg", "masked")], val_items, stats=False
    )
    result = _invoke(tmp_path, "--run", "r")
    assert result.exit_code == 2
    assert (
        "1 image(s) in train.csv cannot be read, e.g. " in result.output
        and "broken.jpg" in result.output
    )
    assert not list((tmp_path / "c").glob("*.npy"))  # no half-written cache is left behind


def test_error_stats_for_another_train_manifest(tmp_path, small_set):
    write_manifests(tmp_path, *small_set, manifest_sha256="0" * 64)
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert (
        "stats.json belongs to another train.csv" in result.output
        and "maskforge split" in result.output
    )


def test_error_stats_with_other_classes(tmp_path, small_set):
    write_manifests(tmp_path, *small_set, classes=["unmasked", "masked", "incorrect"])
    result = _invoke(tmp_path)
    assert result.exit_code == 2 and "lists classes" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--unfreeze-after", "2"], "--unfreeze-after needs --freeze-backbone"),
        (
            ["--weights", "no/such/file.pt"],
            "is not auto, imagenet, none or an existing weights file",
        ),
        (["--arch", "vgg16"], "'vgg16' is not one of"),
        (["--resume", "runs/x", "--lr", "0.1"], "--lr cannot be combined with --resume"),
        (
            ["--resume", "runs/nothing", "--workers", "0"],
            "Cannot resume: runs/nothing/config.json not found",
        ),
        (["--resume"], "No run to resume: none recorded here"),
        (["--workers", "100000"], "--workers 100000 is more than this machine can use"),
    ],
)
def test_error_bad_options(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_error_run_folder_taken(tmp_path, small_set):
    write_manifests(tmp_path, *small_set)
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "config.json").write_text("{}")
    result = _invoke(tmp_path, "--run", "runs/old")
    assert (
        result.exit_code == 2
        and "already holds a run; continue it with --resume runs/old" in result.output
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_error_cuda_without_gpu(tmp_path, small_set):
    write_manifests(tmp_path, *small_set)
    result = _invoke(tmp_path, "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU is available" in result.output


def test_weights_auto_offline_warns_and_trains_from_random_init(tmp_path, small_set, monkeypatch):
    import urllib.error

    import torchvision.models._api as weights_api

    import maskforge.learn.models as models

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(models, "imagenet_weights_cached", lambda arch: False)
    monkeypatch.setattr(weights_api, "load_state_dict_from_url", offline)
    write_manifests(tmp_path, *small_set)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--arch",
            "resnet18",
            "--img-size",
            "32",
            "--epochs",
            "1",
            "--freeze-backbone",
            "--run",
            str(tmp_path / "auto"),
            "--workers",
            "0",
            "--cache-dir",
            str(tmp_path / "c"),
            "--manifests",
            str(tmp_path / "manifests"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "RANDOM INITIALISATION" in result.stderr and "Name or service not known" in result.stderr
    assert "trains only the last layer on random features" in result.stderr
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["weights"] == "auto" and config["data"]["weights_resolved"] == "none"

    imagenet = CliRunner().invoke(
        cli,
        [
            "train",
            "--arch",
            "resnet18",
            "--img-size",
            "32",
            "--weights",
            "imagenet",
            "--run",
            str(tmp_path / "in"),
            "--workers",
            "0",
            "--cache-dir",
            str(tmp_path / "c"),
            "--manifests",
            str(tmp_path / "manifests"),
        ],
    )
    assert imagenet.exit_code == 2
    assert "Cannot load ImageNet weights for resnet18" in imagenet.output
    assert "--weights none or --weights PATH" in imagenet.output


def test_help_explains_every_option():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    for option in (
        "--manifests",
        "--run",
        "--resume",
        "--arch",
        "--weights",
        "--freeze-backbone",
        "--unfreeze-after",
        "--optimizer",
        "--lr",
        "--scheduler",
        "--epochs",
        "--patience",
        "--batch-size",
        "--img-size",
        "--workers",
        "--device",
        "--seed",
        "--cache-dir",
    ):
        assert option in result.output
    text = " ".join(result.output.split())
    assert (
        "[default: resnet50]" in text
        and "[default: 0.01; x>0]" in text
        and "[default: 50; x>=1]" in text
    )
    from maskforge.commands.train import ARCHS as CLI_ARCHS
    from maskforge.learn.models import ARCHS

    assert CLI_ARCHS == ARCHS


# --- one command at a time on a run folder; a full or read-only disk ---------------------------

LOCK = ".maskforge.lock"


def _tiny_train_args(tmp_path: Path, run: Path, *more: str) -> list[str]:
    return [
        "train",
        "--manifests",
        str(tmp_path / "manifests"),
        "--run",
        str(run),
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--img-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
        *more,
    ]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_two_trains_started_together_on_one_run_one_is_refused_at_once(tmp_path, rng, one_error):
    items = made_faces(tmp_path / "img", 36, rng)
    write_manifests(tmp_path, items[:24], items[24:], stats=False)
    run = tmp_path / "runs" / "same"
    command = [sys.executable, "-m", "maskforge"]
    command += _tiny_train_args(tmp_path, run, "--epochs", "500", "--patience", "0")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    both = [subprocess.Popen(command, cwd=tmp_path, **pipes) for _ in range(2)]
    try:
        deadline = time.monotonic() + 90
        while all(p.poll() is None for p in both) and time.monotonic() < deadline:
            time.sleep(0.2)
        ended = [p for p in both if p.poll() is not None]
        assert len(ended) == 1, "neither run was refused: both are writing runs/same/"
        (refused,) = ended
        (winner,) = [p for p in both if p is not refused]
        out, err = refused.communicate()
        assert refused.returncode == 2, out + err
        line = one_error(out + err)
        assert str(run) in line and "in use by another maskforge command" in line
        assert "maskforge train, pid" in line  # who holds it
        while not (run / "metrics.csv").exists() and winner.poll() is None:
            time.sleep(0.2)  # an epoch done: SIGTERM now stops it as Ctrl-C does
        winner.send_signal(signal.SIGTERM)
        out, err = winner.communicate(timeout=120)
        assert winner.returncode == 130, out + err
    finally:
        for p in both:
            if p.poll() is None:
                p.kill()
                p.wait()
    log = (run / "train.log").read_text()
    assert log.count("New run folder") == 1 and "Resuming" not in log  # one run's log only
    assert (run / "last.pt").is_file() and not (run / LOCK).exists()


def test_a_held_run_folder_is_refused_for_a_new_run_and_for_resume(
    tmp_path, rng, hold_lock, one_error
):
    items = made_faces(tmp_path / "img", 36, rng)
    write_manifests(tmp_path, items[:24], items[24:], stats=False)
    runner = CliRunner()
    done = runner.invoke(cli, _tiny_train_args(tmp_path, tmp_path / "runs/r", "--epochs", "1"))
    assert done.exit_code == 0, done.output
    before = _files(tmp_path / "runs/r")
    with hold_lock(tmp_path / "runs/r" / LOCK), hold_lock(tmp_path / "runs/new" / LOCK):
        resumed = runner.invoke(cli, ["train", "--resume", str(tmp_path / "runs/r")])
        new = runner.invoke(cli, _tiny_train_args(tmp_path, tmp_path / "runs/new"))
    for result, folder in ((resumed, "runs/r"), (new, "runs/new")):
        assert result.exit_code == 2, result.output
        line = one_error(result.output)
        assert str(tmp_path / folder) in line and "in use by another maskforge command" in line
        assert "pid 4242 on testhost" in line
    assert _files(tmp_path / "runs/r") == {
        **before,
        LOCK: (tmp_path / "runs/r" / LOCK).read_bytes(),
    }
    assert [p.name for p in (tmp_path / "runs/new").iterdir()] == [LOCK]


def test_a_read_only_or_full_run_folder_is_a_one_line_error_that_keeps_what_was_written(
    tmp_path, rng, in_namespace, one_error
):
    items = made_faces(tmp_path / "img", 36, rng)
    write_manifests(tmp_path, items[:24], items[24:], stats=False)
    (tmp_path / "ro").mkdir()
    (tmp_path / "disk").mkdir()
    args = " ".join(_tiny_train_args(tmp_path, Path("RUN"), "--epochs", "1"))
    script = f"""
    read_only "$RO" || exit 99
    $MF {args.replace("RUN", "$RO/r")} > "$LOGS/ro" 2>&1; echo $? > "$LOGS/ro.code"
    small_disk "$DISK" 256k || exit 99  # config.json and train.log fit, best.pt does not
    $MF {args.replace("RUN", "$DISK/r")} > "$LOGS/full" 2>&1; echo $? > "$LOGS/full.code"
    cp -a "$DISK/r" "$LOGS/r"
    """
    logs = tmp_path / "logs"
    logs.mkdir()
    done = in_namespace(script, RO=tmp_path / "ro", DISK=tmp_path / "disk", LOGS=logs)
    assert done.returncode == 0, done.stderr
    for name, folder in (("ro", tmp_path / "ro" / "r"), ("full", tmp_path / "disk" / "r")):
        output = (logs / name).read_text()
        assert (logs / f"{name}.code").read_text().strip() == "2", output
        line = one_error(output)
        assert line.startswith(f"Error: Cannot write to {folder}"), line
    assert "Read-only file system" in (logs / "ro").read_text()
    full = one_error((logs / "full").read_text())
    assert "No space left on device" in full and "best.pt" in full
    kept = logs / "r"  # what the full disk held: the run's config and log, no cut file
    assert json.loads((kept / "config.json").read_text())["arch"] == "resnet18"
    assert "New run folder" in (kept / "train.log").read_text()
    assert not [p.name for p in kept.iterdir() if p.suffix in (".tmp", ".pt") or p.name == LOCK]
