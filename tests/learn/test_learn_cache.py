"""The uint8 image cache: area-resized pixels, reuse by file contents, errors, seeded items."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch

from maskforge.core.imageio import read_image, write_image
from maskforge.learn.cache import (
    CachedImages,
    build_caches,
    cache_mean_std,
    train_cache_size,
)
from maskforge.learn.transforms import eval_transform, to_model_input, train_transform

MEAN, STD = [0.5, 0.45, 0.4], [0.25, 0.24, 0.23]


@pytest.fixture
def photos(unmasked_dir, masked_real_dir):
    """Three real photos of different sizes."""
    return [
        str(p)
        for p in sorted(unmasked_dir.glob("*.jpg"))[:2] + sorted(masked_real_dir.glob("*.jpg"))[:1]
    ]


def test_cache_holds_area_resized_pixels_that_normalise_like_eval_transform(tmp_path, photos):
    caches = build_caches(photos, [40, 46], tmp_path, workers=2, name="test.csv", progress=False)
    assert set(caches) == {40, 46}
    small = np.load(caches[40])
    assert small.shape == (3, 40, 40, 3) and small.dtype == np.uint8
    for i, path in enumerate(photos):
        expected = cv2.resize(read_image(path), (40, 40), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(small[i], expected)
    assert np.load(caches[46]).shape == (3, 46, 46, 3)
    # Training-time validation (cache + device normalisation) sees what `maskforge eval` sees.
    mean_t = torch.tensor(MEAN).view(1, 3, 1, 1)
    std_t = torch.tensor(STD).view(1, 3, 1, 1)
    ours = to_model_input(torch.from_numpy(small), mean_t, std_t)
    reference = torch.stack(
        [eval_transform(40, MEAN, STD)(image=read_image(p))["image"] for p in photos]
    )
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_cache_is_reused_and_keyed_by_file_contents(tmp_path, photos):
    image = tmp_path / "img" / "a.png"
    write_image(image, np.full((30, 20, 3), 200, np.uint8))
    paths = [*photos, str(image)]
    first = build_caches(paths, [32], tmp_path / "cache", progress=False)
    stamp = first[32].stat().st_mtime_ns
    assert build_caches(paths, [32], tmp_path / "cache", progress=False) == first
    assert first[32].stat().st_mtime_ns == stamp  # not rebuilt
    write_image(image, np.full((30, 20, 3), 10, np.uint8))  # same path, new contents
    second = build_caches(paths, [32], tmp_path / "cache", progress=False)
    assert second[32] != first[32]
    assert np.load(second[32])[3].max() == 10 and np.load(first[32])[3].min() == 200


def test_unreadable_images_are_named_and_leave_no_cache(tmp_path, photos):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    paths = [*photos, str(tmp_path / "empty.jpg"), str(tmp_path / "text.jpg")]
    with pytest.raises(
        ValueError, match=r"^2 image\(s\) in val.csv cannot be read, e.g. .*empty.jpg"
    ):
        build_caches(paths, [32], tmp_path / "cache", name="val.csv", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_mean_std(tmp_path):
    arr = np.zeros((2, 4, 4, 3), np.uint8)
    arr[0, ..., 0] = 255  # red: half the pixels 1.0, half 0.0
    arr[:, :, :, 1] = 51  # green: 0.2 everywhere
    np.save(tmp_path / "c.npy", arr)
    mean, std = cache_mean_std(tmp_path / "c.npy", chunk=1)
    np.testing.assert_allclose(mean, [0.5, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(std, [0.5, 0.0, 0.0], atol=1e-7)


def test_augmentation_depends_only_on_seed_epoch_and_index(tmp_path, photos):
    cache = build_caches(photos, [train_cache_size(48)], tmp_path, progress=False)[55]
    data = CachedImages(cache, np.array([0, 0, 1]), transform=train_transform(48), seed=3)
    first, target, weight = data[(0, 1)]
    assert first.shape == (48, 48, 3) and first.dtype == torch.uint8
    assert (target, weight) == (0, 1.0)
    data[(0, 2)], data[(5, 1)]  # other draws in between do not matter
    assert torch.equal(data[(0, 1)][0], first)
    assert not torch.equal(data[(1, 1)][0], first)  # next epoch: new augmentation
    other_seed = CachedImages(cache, np.array([0, 0, 1]), transform=train_transform(48), seed=4)
    assert not torch.equal(other_seed[(0, 1)][0], first)
    # What a DataLoader worker receives: the memory map is reopened there, results are equal.
    copy = pickle.loads(pickle.dumps(data))
    assert copy._array is None and torch.equal(copy[(0, 1)][0], first)


def test_plain_cached_items_are_the_cached_pixels(tmp_path, photos):
    cache = build_caches(photos, [32], tmp_path, progress=False)[32]
    data = CachedImages(cache, np.array([2, 1, 0]), weights=np.array([0.5, 1, 2]))
    image, target, weight = data[(0, 2)]
    np.testing.assert_array_equal(image.numpy(), np.load(cache)[2])
    assert (target, weight, len(data)) == (0, 2.0, 3)


def test_a_cache_folder_that_fills_up_is_a_one_line_error_not_a_crash(tmp_path, in_namespace):
    """The cache is a memory map: without its space reserved first, a full disk kills the
    process with SIGBUS when a page is written. Reserved, it is an error naming the folder."""
    rows = []
    for i in range(12):
        write_image(tmp_path / f"img/{i}.png", np.full((64, 64, 3), i * 20, np.uint8))
        rows.append(f"../img/{i}.png,{('masked', 'unmasked')[i % 2]}")
    (tmp_path / "manifests").mkdir()
    for split in ("train", "val"):
        (tmp_path / "manifests" / f"{split}.csv").write_text("path,label\n" + "\n".join(rows))
    (tmp_path / "disk").mkdir()
    script = """
    small_disk "$DISK" 256k || exit 99  # 12 images at 128 px take 576 KiB
    cd "$ROOT" && $MF train --arch resnet18 --weights none --img-size 128 --epochs 1 \
        --workers 0 --cache-dir "$DISK/c" --run runs/a
    code=$?; ls -A "$DISK/c" > "$ROOT/left"; exit $code
    """
    done = in_namespace(script, DISK=tmp_path / "disk", ROOT=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    (line,) = [line for line in output.splitlines() if line.startswith("Error")]
    assert line.startswith(f"Error: Cannot write to {tmp_path / 'disk/c'}: No space left on device")
    assert "Traceback" not in output and (tmp_path / "left").read_text() == ""  # no cut file
