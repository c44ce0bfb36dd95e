"""`maskforge train` under torchrun: two CPU processes (gloo) write one consistent run folder."""

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

from maskforge.core.imageio import write_image
from maskforge.learn.distributed import DistContext, gather_strided, weights_digest
from maskforge.learn.models import build_model, read_checkpoint

REPO = Path(__file__).resolve().parents[2]


def two_class_set(root: Path, n_train: int, n_val: int, rng: np.random.Generator) -> None:
    """Drawn 40x40 faces, with (masked) or without (unmasked) a mask, and their manifests."""
    rows = {"train": [], "val": []}
    for i in range(n_train + n_val):
        label = ("unmasked", "masked")[i % 2]
        img = np.clip(rng.normal(128, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
        cv2.ellipse(img, (20, 20), (13, 17), 0, 0, 360, (200, 160, 130), -1)
        if label == "masked":
            cv2.rectangle(img, (8, 20), (32, 36), (170, 210, 235), -1)
        write_image(root / "img" / f"{i:03d}.png", img)
        rows["train" if i < n_train else "val"].append((f"../img/{i:03d}.png", label))
    (root / "manifests").mkdir()
    for split, items in rows.items():
        frame = pd.DataFrame(items, columns=["path", "label"])
        frame.to_csv(root / "manifests" / f"{split}.csv", index=False)


def test_torchrun_two_cpu_processes_write_one_checkpoint_equal_across_ranks(tmp_path, rng):
    two_class_set(tmp_path, 16, 8, rng)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # "--" stops torchrun's own parser: it would take --run for an abbreviation of --run-path.
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "maskforge",
        "--",
        "train",
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--img-size",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--freeze-backbone",
        "--unfreeze-after",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--run",
        "runs/ddp",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "runs" / "ddp"
    # Rank 0 alone prints, logs and writes; every rank trained.
    assert done.stdout.count("Trained 2 epoch(s)") == 1
    log = (run / "train.log").read_text()
    assert log.count("epoch 1/2 [frozen]") == 1 and log.count("epoch 2/2 [full]") == 1
    assert "2 process(es)" in log and "disagree" not in log
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["world_size"] == 2
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["phase"]) == ["frozen", "full"]
    # 16 images over 2 processes with batch 4: 2 steps of 4 per process = 16 images per epoch.
    for name in ("last.pt", "best.pt"):
        ckpt = read_checkpoint(run / name)
        digests = ckpt["ddp"]["weights_sha256"]
        assert ckpt["ddp"]["world_size"] == 2 and len(digests) == 2
        assert digests[0] == digests[1] == weights_digest(ckpt["model"]), name
    last = read_checkpoint(run / "last.pt")
    assert last["epoch"] == 2 and last["finished"] and len(last["rng"]["torch"]) == 2
    state = json.loads((tmp_path / ".maskforge" / "state.json").read_text())
    assert state["run"] == "runs/ddp"


def test_weights_digest_tracks_every_tensor():
    torch.manual_seed(0)
    a = build_model("resnet18", 1)
    torch.manual_seed(0)
    b = build_model("resnet18", 1)
    assert weights_digest(a) == weights_digest(b) == weights_digest(a.state_dict())
    with torch.no_grad():
        b.layer3[0].bn1.running_var[5] += 1e-6
    assert weights_digest(a) != weights_digest(b)


def test_gather_strided_is_identity_in_one_process():
    rows = torch.arange(12.0).view(6, 2)
    assert torch.equal(gather_strided(DistContext(), rows, 6), rows)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_torchrun_environment_is_read(monkeypatch, world):
    from maskforge.learn.distributed import launched_by_torchrun

    monkeypatch.setenv("WORLD_SIZE", str(world))
    assert launched_by_torchrun() is (world > 1)


def _torchrun(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "maskforge",
        "--",
        "train",
        *args,
    ]
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.slow
def test_torchrun_ctrl_c_then_resume_matches_an_uninterrupted_run(tmp_path, rng):
    two_class_set(tmp_path, 48, 16, rng)
    options = [
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--img-size",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        "3",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]
    straight = _torchrun(tmp_path, *options, "--run", "runs/straight")
    assert straight.wait(timeout=600) == 0, straight.stdout.read()

    stopped = _torchrun(tmp_path, *options, "--run", "runs/stopped")
    log = tmp_path / "runs" / "stopped" / "train.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "epoch 1/3" in log.read_text()):
        assert time.monotonic() < deadline and stopped.poll() is None
        time.sleep(0.1)
    stopped.send_signal(signal.SIGINT)  # what Ctrl-C does to torchrun
    output = stopped.communicate(timeout=120)[0]
    assert "Resume with: the same torchrun command" in output
    partial = read_checkpoint(tmp_path / "runs" / "stopped" / "last.pt")
    assert not partial["finished"] and partial["epoch"] >= 1

    resumed = _torchrun(tmp_path, "--resume", "runs/stopped")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    a = read_checkpoint(tmp_path / "runs" / "straight" / "last.pt")
    b = read_checkpoint(tmp_path / "runs" / "stopped" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    ma = pd.read_csv(tmp_path / "runs" / "straight" / "metrics.csv")
    mb = pd.read_csv(tmp_path / "runs" / "stopped" / "metrics.csv")
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        np.testing.assert_array_equal(ma[column], mb[column])


def test_torchrun_into_a_run_folder_another_command_holds_stops_every_rank(
    tmp_path, rng, hold_lock
):
    # Rank 0 takes the lock; the refusal reaches rank 1 too, so no rank waits on the other.
    two_class_set(tmp_path, 16, 8, rng)
    with hold_lock(tmp_path / "runs/held/.maskforge.lock"):
        run = _torchrun(tmp_path, "--run", "runs/held", "--weights", "none", "--epochs", "1")
        output, _ = run.communicate(timeout=300)
    assert run.returncode != 0, output
    assert output.count("in use by another maskforge command") == 2, output  # both ranks
    assert [p.name for p in (tmp_path / "runs/held").iterdir()] == [".maskforge.lock"]
