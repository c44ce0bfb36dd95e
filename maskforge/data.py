"""torch Dataset over a manifest, and the albumentations pipelines for training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import Dataset

from maskforge.imageio import read_image


def eval_transform(img_size: int, mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Resize to img_size square (area interpolation), normalise (RGB 0..1 stats), CHW tensor."""
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
