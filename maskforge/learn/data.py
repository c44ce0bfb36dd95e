"""Datasets over manifests: the resized uint8 image cache, albumentations pipelines, loaders."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
from maskforge.dataset.manifest import class_order, file_sha256, read_manifest

# Bump when the way cached pixels are computed changes, so stale caches are not reused.
CACHE_VERSION = 1
# Images decoded per chunk while building a cache (bounds the memory held by pending results).
_CACHE_CHUNK = 1024


def eval_transform(img_size: int, mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Resize to img_size x img_size (area), normalise (RGB, 0..1 stats), to a CHW float tensor."""
    return A.Compose(
        [
            A.Resize(img_size, img_size, interpolation=cv2.INTER_AREA),
            A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )


class ManifestDataset(Dataset):
    """Images of a manifest (read_manifest output) -> (float tensor (3, S, S), class index)."""

    def __init__(self, frame: pd.DataFrame, classes: Sequence[str], transform: A.Compose):
        unknown = sorted(set(frame["label"]) - set(classes))
        if unknown:
            raise ValueError(f"Labels {unknown} are not among the model's classes {list(classes)}.")
        self.paths = list(frame["abspath"])
        index = {c: i for i, c in enumerate(classes)}
        self.targets = np.array([index[x] for x in frame["label"]], dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = read_image(self.paths[i])
        return self.transform(image=image)["image"], int(self.targets[i])


# --- training inputs ---------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Checked manifests and normalisation (mean/std None: compute them from the train images)."""

    manifests: Path
    train: pd.DataFrame
    val: pd.DataFrame
    classes: list[str]
    mean: list[float] | None
    std: list[float] | None
    stats_size: int | None
    digests: dict[str, str]

    def targets(self, split: str) -> np.ndarray:
        """Class indices (N,) int64 of the train or val split, in class order."""
        index = {c: i for i, c in enumerate(self.classes)}
        frame = self.train if split == "train" else self.val
        return np.array([index[x] for x in frame["label"]], dtype=np.int64)


def load_training_data(manifests: Path) -> TrainingData:
    """Read and check train.csv, val.csv and stats.json of a manifests folder.

    Raises FileNotFoundError / ValueError with one line for: a missing folder or CSV, an empty
    or single-class train set, val labels unknown to train, missing image files, bad weights,
    a stats.json that belongs to another train.csv or other classes.
    """
    manifests = Path(manifests)
    if not manifests.is_dir():
        raise FileNotFoundError(
            f"Manifests folder not found: {manifests} "
            "(run `maskforge split` first, or pass --manifests)"
        )
    train = read_manifest(manifests / "train.csv")
    val = read_manifest(manifests / "val.csv")
    classes = class_order(train["label"])
    if len(classes) < 2:
        raise ValueError(
            f"{manifests / 'train.csv'} has only one class ({classes[0]}); a classifier needs at "
            "least two (e.g. masked and unmasked)."
        )
    unknown = sorted(set(val["label"]) - set(classes))
    if unknown:
        raise ValueError(
            f"{manifests / 'val.csv'} has label(s) {', '.join(unknown)} that train.csv lacks "
            f"(train classes: {', '.join(classes)})."
        )
    for name, frame in (("train.csv", train), ("val.csv", val)):
        missing = [p for p in frame["abspath"] if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in {manifests / name} are missing, "
                f"e.g. {missing[0]}"
            )
        weights = frame["weight"].to_numpy()
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError(f"{manifests / name} has negative, infinite or all-zero weights.")
    digests = {split: file_sha256(manifests / f"{split}.csv") for split in ("train", "val")}
    if (manifests / "test.csv").is_file():
        digests["test"] = file_sha256(manifests / "test.csv")
    mean, std, size = read_stats(manifests / "stats.json", digests["train"], classes)
    return TrainingData(manifests, train, val, classes, mean, std, size, digests)


def read_stats(
    path: Path, train_sha256: str, classes: list[str]
) -> tuple[list[float] | None, list[float] | None, int | None]:
    """(mean, std, size) from stats.json; (None, None, None) without one.

    A stats.json recorded for another train.csv (manifest_sha256) or other classes is an error.
    """
    if not path.is_file():
        return None, None, None
    try:
        stats = json.loads(path.read_text())
        mean = [float(x) for x in stats["mean"]]
        std = [float(x) for x in stats["std"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not valid stats (need mean and std lists): {exc}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"{path} needs 3 mean values and 3 positive std values (RGB).")
    recorded = stats.get("manifest_sha256")
    if recorded and recorded != train_sha256:
        raise ValueError(
            f"{path} belongs to another train.csv (manifest_sha256 {recorded[:12]}… but "
            f"{path.parent / 'train.csv'} is {train_sha256[:12]}…); rerun `maskforge split` so "
            "the stats match, or delete stats.json to compute them from the train images."
        )
    if stats.get("classes") and list(stats["classes"]) != classes:
        raise ValueError(
            f"{path} lists classes {stats['classes']} but train.csv has {classes}; "
            "rerun `maskforge split`."
        )
    size = stats.get("size")
    return mean, std, int(size) if isinstance(size, (int, float)) else None


# --- training pipeline -------------------------------------------------------------------------


def train_cache_size(img_size: int) -> int:
    """Side of the cached training images: a little above img_size, so random crops keep detail."""
    return int(round(img_size * 8 / 7))


def train_transform(img_size: int) -> A.Compose:
    """Augmentation of a cached RGB uint8 (H, W, 3) image -> RGB uint8 (img_size, img_size, 3).

    Normalisation is left to the device (see to_model_input) so workers ship uint8 (4x less data).
    The occlusion-style augmentations (coarse dropout, erasing) hide random patches so the model
    must rely on the mask itself rather than on background or hair; zooming out, blur,
    downscaling and JPEG artefacts imitate real photos, whose faces are smaller and softer than
    the synthetic crops (measured: recall on real masked photos 0.69 -> 0.71 at 0.5, and 0.75 ->
    0.81 at the validation threshold, resnet18 from scratch, 12 epochs).
    """
    return A.Compose(
        [
            A.RandomResizedCrop(
                size=(img_size, img_size),
                scale=(0.7, 1.0),
                ratio=(0.85, 1.18),
                interpolation=cv2.INTER_LINEAR,
            ),
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-12, 12), scale=(0.6, 1.1), border_mode=cv2.BORDER_REFLECT_101, p=0.6),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 5)),
                    A.Downscale(scale_range=(0.35, 0.7)),
                    A.ImageCompression(quality_range=(30, 80)),
                ],
                p=0.3,
            ),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=(-0.03, 0.03), p=0.8),
            A.ToGray(p=0.05),
            A.CoarseDropout(
                num_holes_range=(1, 3),
                hole_height_range=(0.08, 0.2),
                hole_width_range=(0.08, 0.2),
                fill="random_uniform",
                p=0.4,
            ),
            A.Erasing(scale=(0.02, 0.12), ratio=(0.5, 2.0), fill=0, p=0.2),
        ]
    )


def to_model_input(
    batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """uint8 images (N, H, W, 3) RGB -> normalised float32 (N, 3, H, W); mean/std: (1, 3, 1, 1).

    The NHWC -> NCHW permute is free and already channels_last-strided, which is what CUDA
    convolutions want; on CPU the result is made contiguous.
    """
    x = batch.permute(0, 3, 1, 2).float().div_(255.0).sub_(mean).div_(std)
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


# --- the uint8 cache ---------------------------------------------------------------------------


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
    for s in todo:
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{targets[s].name}.", suffix=".tmp")
        os.close(fd)
        tmps[s] = Path(tmp)
        arrays[s] = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(paths), s, s, 3)
        )
    errors: list[tuple[str, str]] = []
    try:
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


class EpochSampler(Sampler):
    """One rank's shard of the indices for the current epoch, as (epoch, index) keys.

    Shuffling is torch's DistributedSampler (a generator seeded with seed + epoch), which also
    pads every rank to the same length. `set_epoch(epoch, skip)` drops the first `skip` keys, to
    continue an interrupted epoch exactly.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.inner = DistributedSampler(
            range(n),
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch whose order to produce, skipping its first `skip` samples."""
        self.epoch = int(epoch)
        self.skip = int(skip)
        self.inner.set_epoch(self.epoch)

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch (after the skip)."""
        return list(self.inner)[self.skip :]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        return max(0, self.inner.num_samples - self.skip)


class ShardSampler(Sampler):
    """Indices rank, rank + world_size, ... (each item exactly once over all ranks), as (0, i)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.keys = [(0, i) for i in range(rank, n, world_size)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _worker_init(_worker_id: int) -> None:
    # The main process decides when to stop (it saves a checkpoint first). Do not call
    # cv2.setNumThreads here: in a forked child it deadlocks on the parent's thread pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: Dataset,
    sampler: Sampler,
    batch_size: int,
    *,
    drop_last: bool,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over (epoch, index) keys; persistent workers that ignore Ctrl-C."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )


def default_workers(device_type: str, local_world_size: int = 1) -> int:
    """DataLoader workers per process: most cores on CUDA; on CPU 1-2 (the model needs the rest)."""
    cpus = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    per_process = max(1, cpus // max(1, local_world_size))
    if device_type == "cuda":
        return max(1, min(12, per_process - 1))
    return min(2, max(0, per_process - 1))
