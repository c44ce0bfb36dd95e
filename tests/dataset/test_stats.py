"""Streaming per-channel mean/std: analytic values, real photos, workers, manifests, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import maskforge.core.parallel as parallel
from maskforge.cli import cli
from maskforge.core.imageio import read_image, write_image
from maskforge.dataset.manifest import file_sha256, write_manifest
from maskforge.dataset.stats import Moments, channel_stats, manifest_stats, resize_for_stats
from maskforge.learn.transforms import eval_transform


def _constant(path: Path, rgb, shape=(30, 50)) -> Path:
    write_image(path, np.full((*shape, 3), rgb, dtype=np.uint8))
    return path


def test_constant_images_give_the_analytic_mean_and_std(tmp_path):
    # Two flat images of different sizes: resizing keeps them flat, so over all pixels each
    # channel takes value a or b half of the time: mean (a + b) / 2, std |a - b| / 2.
    a, b = np.array([10, 20, 30]), np.array([200, 100, 50])
    paths = [
        _constant(tmp_path / "a.png", a, (30, 50)),
        _constant(tmp_path / "b.png", b, (81, 17)),
    ]
    stats = channel_stats(paths, size=16)
    np.testing.assert_allclose(stats.mean, (a + b) / 2 / 255, atol=1e-6)
    np.testing.assert_allclose(stats.std, np.abs(a - b) / 2 / 255, atol=1e-6)
    assert stats.count == 2 and stats.size == 16 and stats.unreadable == ()


def test_weighted_counts_and_checkerboard(tmp_path):
    # A checkerboard at the target size is not resampled: values 0 and 255 in equal parts.
    board = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    write_image(tmp_path / "board.png", np.repeat(board[:, :, None], 3, axis=2))
    white = _constant(tmp_path / "white.png", (255, 255, 255), (8, 8))
    # board listed three times, white once: 3/4 of pixels have mean 0.5, 1/4 are 1.0.
    stats = channel_stats([tmp_path / "board.png"] * 3 + [white], size=8)
    values = np.concatenate([np.tile([0.0, 1.0], 96), np.ones(64)])
    np.testing.assert_allclose(stats.mean, [values.mean()] * 3, atol=1e-12)
    np.testing.assert_allclose(stats.std, [values.std()] * 3, atol=1e-12)
    assert stats.count == 4


def test_chan_merge_equals_direct_moments(rng):
    x = rng.random((1000, 3))
    parts = [x[:1], x[1:400], x[400:]]
    total = Moments.empty()
    for p in parts:
        mean = p.mean(axis=0)
        total = total.merge(Moments(float(len(p)), mean, ((p - mean) ** 2).sum(axis=0)))
    np.testing.assert_allclose(total.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(np.sqrt(total.m2 / total.n), x.std(axis=0), rtol=1e-12)


def test_resize_is_the_eval_transform_resize(unmasked_dir):
    image = read_image(sorted(unmasked_dir.glob("*.jpg"))[0])
    tensor = eval_transform(40, mean=(0, 0, 0), std=(1, 1, 1))(image=image)["image"]
    ours = resize_for_stats(image, 40).astype(np.float32) / 255.0
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), ours, atol=1e-7)


def test_real_photos_match_a_straightforward_numpy_computation(unmasked_dir, masked_real_dir):
    paths = sorted(unmasked_dir.glob("*.jpg"))[:40] + sorted(masked_real_dir.glob("*.jpg"))[:30]
    stack = np.stack(
        [cv2.resize(read_image(p), (48, 48), interpolation=cv2.INTER_AREA) for p in paths]
    ).astype(np.float64)
    expected_mean = stack.reshape(-1, 3).mean(axis=0) / 255
    expected_std = stack.reshape(-1, 3).std(axis=0) / 255
    stats = channel_stats(paths, size=48)
    np.testing.assert_allclose(stats.mean, expected_mean, atol=1e-10)
    np.testing.assert_allclose(stats.std, expected_std, atol=1e-10)
    assert stats.count == 70


def test_workers_give_identical_numbers(unmasked_dir, monkeypatch):
    # 150 images = 3 chunks; a pool even for so few, so that it really splits the work.
    monkeypatch.setattr(parallel, "MIN_POOL_ITEMS", 0)
    paths = sorted(unmasked_dir.glob("*.jpg"))[:150]
    one = channel_stats(paths, size=24, workers=1)
    two = channel_stats(list(reversed(paths)), size=24, workers=2)
    assert one.mean == two.mean and one.std == two.std and one.count == two.count == 150


def _manifest(tmp_path: Path, files: list[Path], name="train.csv") -> Path:
    frame = pd.DataFrame(
        {"abspath": [str(f) for f in files], "label": ["masked", "unmasked"] * (len(files) // 2)}
    )
    write_manifest(frame, tmp_path / "manifests" / name)
    return tmp_path / "manifests" / name


def test_manifest_with_missing_and_unreadable_files(tmp_path):
    good = [_constant(tmp_path / f"{i}.png", (i * 40, 0, 0)) for i in range(4)]
    (tmp_path / "broken.jpg").write_bytes(b"")
    files = good + [tmp_path / "gone.jpg", tmp_path / "broken.jpg"]
    manifest = _manifest(tmp_path, files)
    with pytest.raises(ValueError, match=r"1 of 6 images listed in train.csv are missing"):
        manifest_stats(manifest, size=4)
    (tmp_path / "gone.jpg").write_bytes(good[0].read_bytes())
    with pytest.raises(ValueError, match=r"1 of 6 images .* cannot be read .*broken.jpg"):
        manifest_stats(manifest, size=4)
    (tmp_path / "gone.jpg").unlink()
    stats, record = manifest_stats(manifest, size=4, drop_missing=True)
    assert stats.count == 4
    assert sorted(reason for _, reason in stats.unreadable) == [
        "file is empty (0 bytes)",
        "missing",
    ]
    np.testing.assert_allclose(stats.mean[0], np.mean([0, 40, 80, 120]) / 255)
    assert record["manifest_sha256"] == file_sha256(manifest)
    assert record["classes"] == ["unmasked", "masked"] and record["count"] == 4


def test_stats_cli_default_manifest_and_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = [_constant(tmp_path / f"{i}.png", (0, 100, 200 - i)) for i in range(2)]
    _manifest(tmp_path, files)
    runner = CliRunner()
    result = runner.invoke(cli, ["stats", "--workers", "1", "--json", "s.json", "--size", "8"])
    assert result.exit_code == 0, result.output
    assert "Using manifests/train.csv (default)" in result.output
    assert "mean 0.000000 0.392157 0.782353" in result.output
    record = json.loads(Path("s.json").read_text())
    assert record["count"] == 2 and record["size"] == 8 and record["manifest"] == "train.csv"
    np.testing.assert_allclose(record["std"], [0, 0, 0.5 / 255], atol=1e-12)


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope.csv"], "Manifest not found: nope.csv"),
        (["--size", "0", "m.csv"], "Invalid value for '--size'"),
    ],
)
def test_stats_cli_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["stats", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_stats_cli_missing_files_and_drop_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = [_constant(tmp_path / "a.png", (1, 2, 3)), tmp_path / "b.png"]
    manifest = _manifest(tmp_path, files)
    result = CliRunner().invoke(cli, ["stats", str(manifest), "--workers", "1"])
    assert result.exit_code == 2
    assert "Error: 1 of 2 images listed in train.csv are missing (first: b.png)" in result.output
    result = CliRunner().invoke(cli, ["stats", str(manifest), "--workers", "1", "--drop-missing"])
    assert result.exit_code == 0
    assert "Left out: 1 missing, 0 unreadable images" in result.output
    assert "1 images at 112x112" in result.output


def test_stats_json_into_a_read_only_folder_is_a_one_line_error(tmp_path, read_only_refusal):
    manifest = _manifest(tmp_path, [_constant(tmp_path / f"{i}.png", (i, 0, 0)) for i in range(2)])
    command = 'stats "$MANIFEST" --workers 1 --json "$RO/s.json"'
    ro, line = read_only_refusal(command, MANIFEST=manifest)
    assert line.startswith(f"Error: Cannot write to {ro / 's.json'}: Read-only file system")
    assert not list(ro.iterdir())


def test_a_fifo_in_the_manifest_is_unreadable_not_missing(tmp_path, unmasked_dir, fifo):
    photos = sorted(unmasked_dir.glob("*.jpg"))[:3]
    manifest = _manifest(tmp_path, [*photos, fifo(tmp_path / "cam.jpg")])
    with pytest.raises(ValueError, match=r"1 of 4 images .* cannot be read .*cam\.jpg: not a reg"):
        manifest_stats(manifest, size=8)
    stats, _ = manifest_stats(manifest, size=8, drop_missing=True)
    assert stats.count == 3
    assert stats.unreadable == ((str(tmp_path / "cam.jpg"), "not a regular file (a FIFO)"),)
