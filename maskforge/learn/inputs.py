"""What a run trains and validates on: the image caches, normalisation and each phase's batches.

The full phase reads augmented images from the uint8 cache through DataLoaders and normalises
them on the device; the frozen phase (--freeze-backbone) trains the head on backbone features
extracted once from the un-augmented cache. Every batch is (inputs, targets, weights).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from maskforge.learn import distributed as dist_utils
from maskforge.learn.cache import CachedImages, build_caches, cache_mean_std, train_cache_size
from maskforge.learn.config import TrainConfig
from maskforge.learn.distributed import DistContext
from maskforge.learn.features import extract_features, feature_batches
from maskforge.learn.loaders import TrainingData, make_loader
from maskforge.learn.logs import logger
from maskforge.learn.loop import Batch
from maskforge.learn.samplers import EpochSampler, ShardSampler
from maskforge.learn.transforms import to_model_input, train_transform


class TrainInputs:
    """The train and val images of one run, as batches for either phase, on this rank.

    build_caches() must run first; it also settles the normalisation (mean, std).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        ctx: DistContext,
        device: torch.device,
        *,
        workers: int,
        batch_size: int,
        amp_dtype: torch.dtype | None,
    ):
        self.config, self.data, self.ctx, self.device = config, data, ctx, device
        self.workers, self.batch_size, self.amp_dtype = workers, batch_size, amp_dtype
        self.cuda = device.type == "cuda"
        self.targets = {"train": data.targets("train"), "val": data.targets("val")}
        self.weights = {
            "train": data.train["weight"].to_numpy(np.float32),
            "val": np.ones(len(data.val), np.float32),  # validation loss is unweighted
        }
        self.caches: dict[str, dict[int, Path]] = {}
        self.features: dict[str, torch.Tensor] = {}
        self.loaders: dict[str, DataLoader] = {}
        self.feature_sampler = EpochSampler(
            len(data.train),
            shuffle=True,
            seed=config.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )

    # -- set-up

    def build_caches(self) -> None:
        """Decode the images into the caches the phases need; take or compute mean and std."""
        c, img, ctx = self.config, self.config.img_size, self.ctx
        augmented = not c.freeze_backbone or c.unfreeze_after is not None
        plain = c.freeze_backbone or self.data.mean is None
        sizes = ([train_cache_size(img)] if augmented else []) + ([img] if plain else [])
        threads, progress = max(2, self.workers), None if ctx.is_main else False
        paths = {split: list(getattr(self.data, split)["abspath"]) for split in ("train", "val")}

        def build() -> dict[str, dict[int, Path]]:
            return {
                "train": build_caches(
                    paths["train"],
                    sizes,
                    Path(c.cache_dir),
                    workers=threads,
                    name="train.csv",
                    progress=progress,
                ),
                "val": build_caches(
                    paths["val"],
                    [img],
                    Path(c.cache_dir),
                    workers=threads,
                    name="val.csv",
                    progress=progress,
                ),
            }

        # Rank 0 decodes; the others then find the files (shared storage) or build their own.
        if ctx.is_main:
            self.caches = build()
        dist_utils.barrier(ctx)
        if not ctx.is_main:
            self.caches = build()
        if self.data.mean is None:
            self.mean, self.std = cache_mean_std(self.caches["train"][img])
            source = "computed from the train images (no stats.json)"
        else:
            self.mean, self.std = self.data.mean, self.data.std
            source = "from stats.json"
        logger.info("Normalisation %s: mean %s std %s", source, _fmt(self.mean), _fmt(self.std))
        self.mean_t = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self.std_t = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    def prepare_images(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) cached images -> normalised model input on the device."""
        return to_model_input(batch, self.mean_t, self.std_t, channels_last=self.cuda)

    # -- the full phase: images

    def train_images(self, epoch: int, skip: int) -> DataLoader:
        """Augmented uint8 training images of epoch (0-based), after this rank's first `skip`."""
        loader = self._train_loader()
        loader.sampler.set_epoch(epoch, skip)
        return loader

    def val_images(self) -> DataLoader:
        """The un-augmented val images, this rank's share."""
        if "val" not in self.loaders:
            self.loaders["val"] = self._plain_loader("val")
        return self.loaders["val"]

    def _train_loader(self) -> DataLoader:
        if "train" not in self.loaders:
            c, ctx, img = self.config, self.ctx, self.config.img_size
            dataset = CachedImages(
                self.caches["train"][train_cache_size(img)],
                self.targets["train"],
                self.weights["train"],
                train_transform(img),
                seed=c.seed,
            )
            sampler = EpochSampler(
                len(dataset),
                shuffle=True,
                seed=c.seed,
                rank=ctx.rank,
                world_size=ctx.world_size,
            )
            self.loaders["train"] = make_loader(
                dataset,
                sampler,
                self.batch_size,
                drop_last=True,
                workers=self.workers,
                pin_memory=self.cuda,
            )
        return self.loaders["train"]

    def _plain_loader(self, split: str) -> DataLoader:
        """A new loader of split's un-augmented images at img_size: items rank, rank + W, ..."""
        dataset = CachedImages(self.caches[split][self.config.img_size], self.targets[split])
        return make_loader(
            dataset,
            ShardSampler(len(dataset), self.ctx.rank, self.ctx.world_size),
            2 * self.batch_size,
            drop_last=False,
            workers=self.workers,
            pin_memory=self.cuda,
        )

    # -- the frozen phase: backbone features

    def train_features(self, model: nn.Module, epoch: int, skip: int) -> Iterable[Batch]:
        """Feature batches of epoch (0-based) in the images' order, after the first `skip`.

        The features of model's backbone are extracted on the first call.
        """
        self._extract_features(model)
        self.feature_sampler.set_epoch(epoch, skip)
        order = torch.tensor(self.feature_sampler.indices(), dtype=torch.long)
        return self._feature_batches("train", order)

    def val_features(self) -> Iterable[Batch]:
        """Feature batches of this rank's share of the val images (after train_features)."""
        order = torch.arange(self.ctx.rank, len(self.data.val), self.ctx.world_size)
        return self._feature_batches("val", order)

    def _extract_features(self, model: nn.Module) -> None:
        """Backbone features of the un-augmented train and val images (every rank holds all)."""
        if self.features:
            return
        ctx = self.ctx
        for split in ("train", "val"):
            loader = self._plain_loader(split)
            bar = tqdm(
                loader,
                desc=f"features ({split})",
                unit="batch",
                leave=False,
                disable=None if ctx.is_main else True,
            )
            local = extract_features(
                model,
                bar,
                self.device,
                prepare=self.prepare_images,
                img_size=self.config.img_size,
                amp_dtype=self.amp_dtype,
            )
            self.features[split] = dist_utils.gather_strided(ctx, local, len(loader.dataset))
        shape = tuple(self.features["train"].shape)
        logger.info(
            "Cached backbone features: %d x %d (train), %d (val)", *shape, len(self.features["val"])
        )

    def _feature_batches(self, split: str, order: torch.Tensor) -> Iterable[Batch]:
        targets = torch.from_numpy(self.targets[split])
        weights = torch.from_numpy(self.weights[split])
        train = split == "train"
        size = self.batch_size if train else 2 * self.batch_size
        return feature_batches(self.features[split], targets, weights, order, size, drop_last=train)


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"
