"""The uint8 image cache: each image decoded once, stored resized as .npy, read as a Dataset."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image

# Bump when the way cached pixels are computed changes, so stale caches are not reused.
CACHE_VERSION = 1
# Images decoded per chunk while building a cache (bounds the memory held by pending results).
_CACHE_CHUNK = 1024


def train_cache_size(img_size: int) -> int:
    """Side of the cached training images: a little above img_size, so random crops keep detail."""
    return int(round(img_size * 8 / 7))


def cache_key(paths: Sequence[str], size: int) -> str:
    """Digest of the images (path, byte size, mtime) and the cache size: the cache file's name."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, int(size)]).encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"\0{p}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _load_resized(path: str, sizes: tuple[int, ...]) -> list[np.ndarray] | str:
    try:
        image = read_image(Path(path))
    except (UnreadableImageError, ImageTooLargeError) as exc:
        return str(exc)
    return [cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA) for s in sizes]


def build_caches(
    paths: Sequence[str],
    sizes: Sequence[int],
    cache_dir: Path,
    *,
    workers: int = 2,
    name: str = "images",
    progress: bool | None = None,
) -> dict[int, Path]:
    """Decode each image once and store it resized (area) at every size as uint8 (N, s, s, 3) .npy.

    Files are named by cache_key (paths, byte sizes, mtimes) and written via a temporary name
    and a rename, so an existing file is complete and reused. Resizing matches eval_transform
    exactly. Raises ValueError naming the unreadable images of `name` (e.g. "train.csv").
    """
    cache_dir = Path(cache_dir)
    sizes = tuple(sorted({int(s) for s in sizes}))
    targets = {s: cache_dir / f"{cache_key(paths, s)}-{s}.npy" for s in sizes}
    todo = tuple(s for s in sizes if not targets[s].is_file())
    if not todo:
        return targets
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmps, arrays = {}, {}
    errors: list[tuple[str, str]] = []
    try:
        for s in todo:
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{targets[s].name}.", suffix=".tmp")
            os.close(fd)
            tmps[s] = Path(tmp)
            arrays[s] = np.lib.format.open_memmap(
                tmps[s], mode="w+", dtype=np.uint8, shape=(len(paths), s, s, 3)
            )
            _reserve(tmps[s], cache_dir)
        bar = tqdm(
            total=len(paths),
            desc=f"caching {name}",
            unit="img",
            disable=None if progress is None else not progress,
        )
        # Decoding (PIL) and resizing (OpenCV) release the GIL, so threads scale.
        with bar, ThreadPoolExecutor(max(1, workers)) as pool:
            for start in range(0, len(paths), _CACHE_CHUNK):
                chunk = paths[start : start + _CACHE_CHUNK]
                for i, result in enumerate(pool.map(_load_resized, chunk, [todo] * len(chunk))):
                    if isinstance(result, str):
                        errors.append((chunk[i], result))
                    else:
                        for s, img in zip(todo, result, strict=True):
                            arrays[s][start + i] = img
                bar.update(len(chunk))
        for s in todo:
            arrays[s].flush()
        arrays.clear()
        if errors:
            path, reason = errors[0]
            raise ValueError(
                f"{len(errors)} image(s) in {name} cannot be read, e.g. {path}: {reason} "
                "(fix or remove them from the manifest)"
            )
        for s in todo:
            os.replace(tmps[s], targets[s])
    finally:
        arrays.clear()
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return targets


def _reserve(path: Path, cache_dir: Path) -> None:
    """Allocate the disk space of a memory-mapped file now: a page written to a full disk
    through a map kills the process (SIGBUS); here it is an OSError naming the cache folder."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no such call
        return
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return  # a file system that cannot say: write as before
            raise OSError(exc.errno, exc.strerror, str(cache_dir)) from None


def cache_mean_std(cache_path: Path, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (RGB, 0..1) of a uint8 cache, streamed in chunks."""
    arr = np.load(cache_path, mmap_mode="r")
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(arr), chunk):
        block = np.asarray(arr[start : start + chunk], dtype=np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        squares += (block**2).sum(axis=(0, 1, 2))
    n = arr.shape[0] * arr.shape[1] * arr.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean.tolist(), std.tolist()


class CachedImages(Dataset):
    """Images of a uint8 cache, keyed by (epoch, index) -> (uint8 (S, S, 3), target, weight).

    With a transform, sample `index` of `epoch` is augmented from its own generator seeded by
    (seed, epoch, index), so results do not depend on worker count, order or resumption.
    """

    def __init__(
        self,
        cache_path: Path,
        targets: np.ndarray,
        weights: np.ndarray | None = None,
        transform: A.Compose | None = None,
        seed: int = 0,
    ):
        self.cache_path = Path(cache_path)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.weights = (
            np.ones(len(self.targets), np.float32)
            if weights is None
            else np.asarray(weights, np.float32)
        )
        self.transform = transform
        self.seed = int(seed)
        self._array: np.ndarray | None = None

    def __getstate__(self) -> dict:
        # The memory map is reopened in each worker process instead of being pickled (a copy).
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def array(self) -> np.ndarray:
        """The cache as a read-only memory map (N, S, S, 3) uint8."""
        if self._array is None:
            self._array = np.load(self.cache_path, mmap_mode="r")
        return self._array

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, float]:
        epoch, i = key
        image = self.array[i]
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, i])
            self.transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
            image = self.transform(image=image)["image"]
        return (
            torch.from_numpy(np.array(image, copy=True)),
            int(self.targets[i]),
            float(self.weights[i]),
        )
