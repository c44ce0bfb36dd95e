"""Fixtures the dataset tests share: synthesize-like output folders and near-duplicate copies of
real photos, written by the test into its own tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from maskforge.core.imageio import decode_image, encode_image, read_image, write_image

SYNTHESIS_COLUMNS = [
    "input", "face", "status", "reason", "label", "output", "original", "negative",
    "negative_kind", "group", "detector", "box", "yaw", "variant", "mask_type", "color",
    "pattern", "wear", "seed",
]  # fmt: skip
MASK_TYPES = ("surgical", "cloth", "n95")


def fake_masked(face: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """A stand-in for a synthetic masked face: the lower half painted in the mask colour."""
    out = face.copy()
    out[face.shape[0] // 2 :] = color
    return out


def _make_synthesis_folder(
    out: Path,
    photos: list[Path],
    negatives_every: int = 2,
    incorrect_every: int = 4,
    failures: int = 2,
) -> pd.DataFrame:
    """Write a synthesize-like output folder for `photos` (one face each) and return its table.

    Photo i yields out/masked|incorrect/p/<stem>_0.jpg (incorrect for every incorrect_every-th),
    out/unmasked/p/<stem>_0.jpg and, for every negatives_every-th, a hard negative; mask types
    cycle through MASK_TYPES. `failures` extra rows with status no_face yield nothing.
    """
    rows = []
    for i, photo in enumerate(photos):
        stem, rel_in = photo.stem, f"p/{photo.name}"
        label = (
            "incorrect"
            if incorrect_every and i % incorrect_every == incorrect_every - 1
            else "masked"
        )
        mask_type = MASK_TYPES[i % len(MASK_TYPES)]
        original = f"unmasked/p/{stem}_0.jpg"
        output = f"{label}/p/{stem}_0.jpg"
        (out / original).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, out / original)
        face = read_image(photo)
        write_image(out / output, fake_masked(face, (40 * (i % 5), 120, 200)))
        negative = ""
        if negatives_every and i % negatives_every == 0:
            negative = f"unmasked/p/{stem}_0_neg.jpg"
            write_image(out / negative, fake_masked(face, (210, 170, 140)))
        rows.append(
            {
                "input": rel_in, "face": "0", "status": "ok", "reason": "", "label": label,
                "output": output, "original": original, "negative": negative,
                "negative_kind": "hand" if negative else "", "group": rel_in, "detector": "hog",
                "box": "0 0 10 10", "yaw": "0.0", "variant": "front", "mask_type": mask_type,
                "color": "#a8d4ec", "pattern": "",
                "wear": "correct" if label == "masked" else "nose_out", "seed": str(i),
            }
        )  # fmt: skip
    for j in range(failures):
        row = dict.fromkeys(SYNTHESIS_COLUMNS, "")
        row.update(input=f"bad/{j}.jpg", status="no_face", reason="No face found.")
        rows.append(row)
    table = pd.DataFrame(rows, columns=SYNTHESIS_COLUMNS)
    table.to_csv(out / "synthesis.csv", index=False)
    return table


def _copies_of(photo: Path, folder: Path) -> list[Path]:
    """An exact copy, a half-size JPEG q=60, a 1.5x PNG and a q=30 recompression of photo."""
    folder.mkdir(parents=True, exist_ok=True)
    image = read_image(photo)
    exact = folder / "exact.jpg"
    shutil.copyfile(photo, exact)
    small = folder / "small.jpg"
    write_image(small, cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 60)
    big = folder / "big.png"
    write_image(big, cv2.resize(image, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC))
    recompressed = folder / "recompressed.jpg"
    recompressed.write_bytes(encode_image(decode_image(photo.read_bytes()), ".jpg", 30))
    return [exact, small, big, recompressed]


@pytest.fixture
def make_synthesis_folder() -> Callable[..., pd.DataFrame]:
    """make(out, photos, negatives_every=2, incorrect_every=4, failures=2): a synthesize-like
    folder for the photos (one face each) and its table."""
    return _make_synthesis_folder


@pytest.fixture
def synthesis_mask_types() -> tuple[str, ...]:
    """The mask types make_synthesis_folder cycles through."""
    return MASK_TYPES


@pytest.fixture
def copies_of() -> Callable[[Path, Path], list[Path]]:
    """copies(photo, folder): an exact copy, a half-size JPEG q=60, a 1.5x PNG and a q=30
    recompression of photo, written into folder."""
    return _copies_of
