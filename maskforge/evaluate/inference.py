"""Inference for evaluation: read (and face-crop) a frame's images, predict class probabilities.

A frame is a manifest-like table with `abspath` (and `path`, `label`); an unreadable image does
not stop a run: its row gets NaN probabilities and an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
from maskforge.learn.loaders import ManifestDataset
from maskforge.learn.models import CheckpointInfo
from maskforge.learn.transforms import eval_transform


class _TolerantDataset(ManifestDataset):
    """ManifestDataset that records unreadable images instead of failing the whole run.

    Items are (tensor (3, S, S), row index, error message or ""); a face box (left, top,
    right, bottom) per row, when given, crops the image before the eval transform.
    """

    def __init__(self, frame, classes, transform, boxes=None):
        super().__init__(frame, classes, transform)
        self.boxes = boxes
        self.size = transform.transforms[0].height

    def __getitem__(self, i: int):
        try:
            image = load_item(self.paths[i], None if self.boxes is None else self.boxes[i])
        except (UnreadableImageError, ImageTooLargeError) as exc:
            return torch.zeros(3, self.size, self.size), i, str(exc) or "unreadable"
        return self.transform(image=image)["image"], i, ""


def load_item(path: str | Path, box=None) -> np.ndarray:
    """Read an image (RGB uint8) and crop it to box = (left, top, right, bottom) if given."""
    image = read_image(path)
    if box is None:
        return image
    left, top, right, bottom = (int(v) for v in box)
    return np.ascontiguousarray(image[max(top, 0) : bottom, max(left, 0) : right])


def predict_frame(
    model: torch.nn.Module,
    info: CheckpointInfo,
    frame: pd.DataFrame,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
    boxes=None,
    desc: str = "predict",
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities (N, C) float64 for every row (NaN rows where unreadable) + errors."""
    from tqdm import tqdm

    from maskforge.learn.models import probabilities

    transform = eval_transform(info.img_size, info.mean, info.std)
    dataset = _TolerantDataset(frame, info.classes, transform, boxes)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    probs = np.full((len(frame), len(info.classes)), np.nan)
    errors = [""] * len(frame)
    model.eval()
    with torch.inference_mode():
        for images, index, errs in tqdm(loader, desc=desc, unit="batch", disable=None):
            out = probabilities(model(images.to(device, non_blocking=True))).cpu().numpy()
            for j, (i, err) in enumerate(zip(index.tolist(), errs, strict=True)):
                if err:
                    errors[i] = err
                else:
                    probs[i] = out[j]
    return probs, errors


def face_crops(
    frame: pd.DataFrame, say: Callable[[str], None], workers: int | None = None
) -> tuple[pd.DataFrame, list, list[str], list[dict]]:
    """Detect the largest face per image and crop it like synthesize does.

    Returns the rows with a face (unreadable ones kept: the inference pass reports them), their
    crop boxes (None for unreadable), the paths of the images without a face, and
    {path, reason} of the images whose detection killed its worker process twice (left out:
    reading them again could kill this process). workers: detection processes (None: one per
    core, or none below MIN_POOL_PHOTOS images).
    """
    from tqdm import tqdm

    from maskforge.core.parallel import (
        MIN_POOL_PHOTOS,
        check_local_workers,
        default_workers,
        pool_map,
    )
    from maskforge.faces.boxes import make_crop_finder

    paths = [str(p) for p in frame["abspath"]]
    if workers is None:
        workers = default_workers() if len(paths) >= MIN_POOL_PHOTOS else 0
    if workers > 0:
        check_local_workers(workers)

        def died(_path: str, reason: str) -> tuple:
            return "failed", None, reason

        found = pool_map(make_crop_finder, (), paths, workers, 4, on_crash=died)
    else:
        found = map(make_crop_finder(), paths)
    boxes, statuses, failed = [], [], []
    for path, result in tqdm(
        zip(frame["path"], found), total=len(paths), desc="faces", unit="image", disable=None
    ):
        statuses.append(result[0])
        boxes.append(result[1])
        if result[0] == "failed":
            failed.append({"path": path, "reason": result[2]})
    status = np.array(statuses, dtype=object)
    keep = (status != "no_face") & (status != "failed")
    faceless = list(frame.loc[status == "no_face", "path"])
    if faceless:
        say(f"No face found in {len(faceless)} image(s); they are left out (--crop-faces)")
    if failed:
        say(
            f"Face detection crashed on {len(failed)} image(s) ({failed[0]['reason']}); they "
            "are left out and listed in report.json under detection_failed"
        )
    if not keep.any():
        raise ValueError(f"No face found in any of the {len(frame)} images (--crop-faces).")
    kept = frame[keep].reset_index(drop=True)
    return kept, [b for b, k in zip(boxes, keep, strict=True) if k], faceless, failed
