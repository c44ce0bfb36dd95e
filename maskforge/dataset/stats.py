"""Streaming per-channel mean/std of images (float64, chunks on a process pool or Ray, progress)."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from maskforge.core.imageio import UnreadableImageError, atomic_write_text, read_image

T = TypeVar("T")
R = TypeVar("R")

# Fixed chunk size (not derived from the worker count) so that the merge order, and therefore
# every floating-point rounding, is the same for any --workers.
CHUNK_SIZE = 64
# Starting a spawn pool costs 1-3 s (each worker imports numpy, OpenCV, PIL); below this many
# items one process finishes sooner (benchmarks/split.py --real).
MIN_POOL_ITEMS = 512
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
    """RGB uint8 (H, W, 3) -> (size, size, 3), the resize of maskforge.learn.data.eval_transform."""
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
        except UnreadableImageError as exc:
            bad.append((path, str(exc)))
    return total, bad


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


def _ray_worker(fn: Callable[[T], R]) -> Callable[[T], R]:
    """Per Ray actor: the same set-up as a pool process, then fn itself."""
    _init_worker()
    return fn


def map_chunks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    sizes: Sequence[int],
    workers: int | None = 1,
    desc: str = "",
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Iterator[R]:
    """Yield fn(task) for each task in order, in a spawn process pool when workers > 1
    and there are at least MIN_POOL_ITEMS items, or on Ray actors with engine="ray".

    `sizes` (items per task) drive the tqdm bar; progress=None shows it only on a TTY.
    `fn` must be a module-level function (it is pickled to the workers). With Ray, `address`
    names a running cluster (None: start one here with `workers` CPUs) and workers=None means
    one actor per CPU of the cluster.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"Invalid engine {engine!r}. Choose from: local, ray.")
    if address and engine != "ray":
        raise ValueError(f"--address {address} needs --engine ray.")
    total = int(sum(sizes))
    disable = None if progress is None else not progress
    with tqdm(total=total, desc=desc, unit="img", disable=disable, leave=False) as bar:
        if engine == "ray":
            from maskforge.core.ray_engine import ray_map, ray_session

            with ray_session(address, workers) as cpus:
                results = ray_map(_ray_worker, (fn,), tasks, workers or cpus)
                for result, n in zip(results, sizes, strict=True):
                    yield result
                    bar.update(n)
            return
        workers = workers or 1
        if workers <= 1 or len(tasks) <= 1 or total < MIN_POOL_ITEMS:
            for task, n in zip(tasks, sizes, strict=True):
                yield fn(task)
                bar.update(n)
            return
        # spawn, not fork: the parent may hold threads (tqdm, torch) that fork would copy broken.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
            for result, n in zip(pool.imap(fn, tasks), sizes, strict=True):
                yield result
                bar.update(n)


def chunked(items: Sequence[T], size: int = CHUNK_SIZE) -> list[list[T]]:
    """Consecutive slices of at most `size` items."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


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
    engine="ray" computes the same chunks on Ray actors (see map_chunks) and merges them in
    the same order, so the numbers are identical. Raises ValueError if no image could be read.
    """
    if size < 1:
        raise ValueError(f"Invalid stats size {size}: must be a positive number of pixels.")
    counts = Counter(str(p) for p in paths)
    if not counts:
        raise ValueError("No images to compute statistics on.")
    # Sorted so that the result does not depend on row order.
    items = sorted(counts.items())
    chunks = chunked(items)
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
