"""Inference on a frame: crops, probabilities in row order, unreadable rows kept as NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from maskforge.core.imageio import write_image
from maskforge.evaluate.inference import load_item, predict_frame
from maskforge.learn.models import CheckpointInfo
from maskforge.learn.transforms import eval_transform

INFO = CheckpointInfo("tiny", ["unmasked", "masked"], 16, [0.5] * 3, [0.25] * 3)


def _model() -> nn.Module:
    """One logit = a fixed linear function of the mean colour."""
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1))


def test_load_item_crops_to_the_box_clipped_at_the_top_left(tmp_path, rng):
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(load_item(tmp_path / "a.png"), image)
    crop = load_item(tmp_path / "a.png", (5, 2, 25, 12))
    np.testing.assert_array_equal(crop, image[2:12, 5:25])
    assert crop.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(load_item(tmp_path / "a.png", (-4, -3, 10, 8)), image[:8, :10])


def test_predict_frame_matches_the_model_and_keeps_unreadable_rows(tmp_path, rng):
    images = [rng.integers(0, 255, (20 + 4 * k, 24, 3), dtype=np.uint8) for k in range(3)]
    paths = []
    for k, image in enumerate(images):
        write_image(tmp_path / f"{k}.png", image)
        paths.append(str(tmp_path / f"{k}.png"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths.insert(1, str(tmp_path / "broken.png"))
    frame = pd.DataFrame({"abspath": paths, "label": ["masked"] * 4})
    model = _model()
    probs, errors = predict_frame(model, INFO, frame, torch.device("cpu"), batch_size=2)
    assert probs.shape == (4, 2) and probs.dtype == np.float64
    assert errors[0] == errors[2] == errors[3] == "" and "not a recognised image" in errors[1]
    assert np.isnan(probs[1]).all()
    tf = eval_transform(INFO.img_size, INFO.mean, INFO.std)
    x = torch.stack([tf(image=im)["image"] for im in images])
    with torch.no_grad():
        p = torch.sigmoid(model(x))[:, 0].numpy()
    np.testing.assert_allclose(probs[[0, 2, 3]], np.c_[1 - p, p], atol=1e-6)
    # With boxes, each image is cropped before the transform.
    boxes = [(0, 0, 8, 8), None, (4, 4, 20, 16), (0, 0, 24, 24)]
    cropped, _ = predict_frame(model, INFO, frame, torch.device("cpu"), boxes=boxes)
    x = tf(image=np.ascontiguousarray(images[0][:8, :8]))["image"][None]
    with torch.no_grad():
        p0 = torch.sigmoid(model(x))[0, 0].item()
    assert cropped[0, 1] == pytest.approx(p0, abs=1e-6)
