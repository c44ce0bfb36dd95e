"""Manifest datasets and loaders: the checked train/val inputs of a run, stats.json, DataLoaders."""

from __future__ import annotations

import json
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from maskforge.core.imageio import read_image
from maskforge.core.paths import not_regular
from maskforge.dataset.manifest import class_order, file_sha256, read_manifest


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
        # From stat alone: a FIFO named like a photo is never opened (it would block).
        bad = [(p, why) for p in frame["abspath"] if (why := not_regular(p))]
        missing = [p for p, why in bad if why in ("file not found", "is a directory")]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in {manifests / name} are missing, "
                f"e.g. {missing[0]}"
            )
        if bad:
            raise ValueError(
                f"{len(bad)} image(s) in {manifests / name} cannot be read, e.g. {bad[0][0]}: "
                f"{bad[0][1]} (fix or remove them from the manifest)"
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


# --- loaders -------------------------------------------------------------------------------------


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
    from maskforge.core.parallel import usable_cores

    per_process = max(1, usable_cores() // max(1, local_world_size))
    if device_type == "cuda":
        return max(1, min(12, per_process - 1))
    return min(2, max(0, per_process - 1))
