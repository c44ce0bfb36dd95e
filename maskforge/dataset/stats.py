"""Streaming per-channel mean/std of images (float64, chunks on a process pool or Ray, progress:
core.parallel.map_chunks)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskforge.core.imageio import (
    ImageTooLargeError,
    UnreadableImageError,
    atomic_write_text,
    read_image,
)
from maskforge.core.parallel import chunked, map_chunks

# Fixed chunk size (not derived from the worker count) so that the merge order, and therefore
# every floating-point rounding, is the same for any --workers.
CHUNK_SIZE = 64
STATS_SPACE = "RGB, 0..1, after resizing to size x size"


@dataclass(frozen=True)
class Moments:
    """Pixel count, per-channel mean and sum of squared deviations (M2), all float64, RGB."""

    n: float
    mean: np.ndarray  # (3,) float64
    m2: np.ndarray  # (3,) float64

    @staticmethod
    def empty() -> Moments:
        return Moments(0.0, np.zeros(3), np.zeros(3))

    def merge(self, other: Moments) -> Moments:
        """Chan et al.'s pairwise update: exact combination of two partial moments."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, mean, m2)

    def repeated(self, times: int) -> Moments:
        """The moments of `times` identical copies of the same pixels."""
        return Moments(self.n * times, self.mean, self.m2 * times)


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean/std (population, RGB, 0..1) of `count` images resized to size x size."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    count: int
    size: int
    unreadable: tuple[tuple[str, str], ...] = ()  # (path, reason) of images left out


def resize_for_stats(image: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (size, size, 3): the resize of learn.transforms.eval_transform."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def image_moments(image: np.ndarray, size: int) -> Moments:
    """Moments of one RGB uint8 (H, W, 3) image after resizing, values scaled to 0..1."""
    x = resize_for_stats(image, size).reshape(-1, 3).astype(np.float64) / 255.0
    mean = x.mean(axis=0)
    return Moments(float(x.shape[0]), mean, ((x - mean) ** 2).sum(axis=0))


def _chunk_moments(task: tuple[list[tuple[str, int]], int]) -> tuple[Moments, list]:
    items, size = task
    total = Moments.empty()
    bad = []
    for path, times in items:
        try:
            total = total.merge(image_moments(read_image(path), size).repeated(times))
        except (UnreadableImageError, ImageTooLargeError) as exc:
            bad.append((path, str(exc)))
    return total, bad


def channel_stats(
    paths: Iterable[str | Path],
    size: int = 112,
    workers: int | None = 1,
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
) -> ChannelStats:
    """Mean/std per RGB channel over all pixels of the images, each resized to size x size.

    A path listed k times counts k times (an oversampled manifest) but is read once.
    Accumulates in float64 with Chan's merge; unreadable images are left out and listed.
    engine="ray" computes the same chunks on Ray actors (core.parallel.map_chunks) and merges
    them in the same order, so the numbers are identical. Raises ValueError if no image could be
    read.
    """
    if size < 1:
        raise ValueError(f"Invalid stats size {size}: must be a positive number of pixels.")
    counts = Counter(str(p) for p in paths)
    if not counts:
        raise ValueError("No images to compute statistics on.")
    # Sorted so that the result does not depend on row order.
    items = sorted(counts.items())
    chunks = chunked(items, CHUNK_SIZE)
    tasks = [(chunk, size) for chunk in chunks]
    if engine == "ray":  # actors run in other folders, or on other machines
        tasks = [([(os.path.abspath(p), k) for p, k in chunk], size) for chunk in chunks]
    total = Moments.empty()
    bad: list[tuple[str, str]] = []
    results = map_chunks(
        _chunk_moments,
        tasks,
        [len(c) for c in chunks],
        workers=workers,
        desc="stats",
        progress=progress,
        engine=engine,
        address=address,
    )
    for moments, chunk_bad in results:
        total = total.merge(moments)
        bad.extend(chunk_bad)
    if engine == "ray":
        given = {os.path.abspath(p): p for p, _ in items}
        bad = [(given[p], reason) for p, reason in bad]
    if total.n == 0:
        raise ValueError(f"None of the {len(items)} images could be read (first: {bad[0][0]}).")
    std = np.sqrt(total.m2 / total.n)
    n_images = int(round(total.n / (size * size)))
    return ChannelStats(
        mean=tuple(float(v) for v in total.mean),
        std=tuple(float(v) for v in std),
        count=n_images,
        size=size,
        unreadable=tuple(bad),
    )


def stats_record(stats: ChannelStats, manifest: str, manifest_sha256: str, classes) -> dict:
    """The stats.json dict of docs/formats.md."""
    return {
        "mean": list(stats.mean),
        "std": list(stats.std),
        "size": stats.size,
        "count": stats.count,
        "space": STATS_SPACE,
        "manifest": manifest,
        "manifest_sha256": manifest_sha256,
        "classes": list(classes),
    }


def write_stats_json(path: Path, record: dict) -> None:
    """Write a stats.json atomically."""
    atomic_write_text(Path(path), json.dumps(record, indent=2) + "\n")


def manifest_stats(
    manifest: Path,
    size: int = 112,
    workers: int | None = 1,
    drop_missing: bool = False,
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
) -> tuple[ChannelStats, dict]:
    """Channel stats of a manifest's images, and its stats.json record.

    Missing or unreadable files raise ValueError with counts unless drop_missing, in which
    case they are left out (and counted in the returned stats' `unreadable`). engine and
    address: see channel_stats (with Ray, the image paths must be valid on every node).
    """
    from maskforge.dataset.manifest import class_order, file_sha256, read_manifest, require_files

    frame = read_manifest(manifest)
    frame, missing = require_files(frame, f"{Path(manifest).name}", drop_missing)
    stats = channel_stats(
        frame["abspath"],
        size=size,
        workers=workers,
        progress=progress,
        engine=engine,
        address=address,
    )
    if stats.unreadable and not drop_missing:
        raise ValueError(unreadable_message(stats.unreadable, frame["abspath"].nunique(), manifest))
    stats = ChannelStats(
        stats.mean,
        stats.std,
        stats.count,
        stats.size,
        tuple((p, "missing") for p in missing) + stats.unreadable,
    )
    record = stats_record(
        stats, Path(manifest).name, file_sha256(Path(manifest)), class_order(frame["label"])
    )
    return stats, record


def unreadable_message(bad: Sequence[tuple[str, str]], total: int, where) -> str:
    """One line: how many images could not be read, the first with its reason, the way out."""
    path, reason = bad[0]
    return (
        f"{len(bad)} of {total} images in {where} cannot be read "
        f"(first: {os.path.relpath(path)}: {reason}); fix or remove them, "
        "or pass --drop-missing to leave them out."
    )
