"""Grad-CAM maps on models whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskforge.evaluate.cam import cam_overlay, cam_target_layer, gradcam_maps
from maskforge.learn.models import build_model


class RedDetector(nn.Module):
    """logit_k = w_k * mean(red channel): a 1x1 conv copies the red channel, then a linear head.

    Grad-CAM of the last conv layer is then the red channel itself (for a positive weight) or
    nothing (negative weight), scaled to 0..1.
    """

    def __init__(self, head: list[float]):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 1, 1))
        self.head = nn.Linear(1, len(head))
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
            self.features[0].bias.zero_()
            self.head.weight.copy_(torch.tensor(head).view(-1, 1))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def _inputs(rng, n=2, size=24) -> torch.Tensor:
    x = rng.random((n, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):  # a bright blob in a different place per image, on a positive floor
        cy, cx = 6 + 10 * i, 16 - 8 * i
        x[i, 0] = 0.1 + np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0)
    return torch.from_numpy(x)


def _scaled(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return a / a.max()


def test_binary_model_cam_is_the_evidence_for_each_class(rng):
    model = RedDetector([1.0]).eval()  # one logit: "masked" = more red
    x = _inputs(rng)
    maps = gradcam_maps(model, x, [1, 0])
    assert maps.shape == (2, 24, 24) and maps.dtype == np.float32
    np.testing.assert_allclose(maps[0], _scaled(x[0, 0].numpy()), atol=1e-4)
    assert maps[0].argmax() == np.ravel_multi_index((6, 16), (24, 24))
    # Class 0 is explained by the negated logit: red is evidence against it, so nothing lights.
    np.testing.assert_allclose(maps[1], 0.0, atol=1e-6)


def test_multiclass_model_uses_the_class_output(rng):
    model = RedDetector([-1.0, 1.0, 0.5]).eval()
    x = _inputs(rng)
    maps = gradcam_maps(model, x, [1, 0])
    np.testing.assert_allclose(maps[0], _scaled(x[0, 0].numpy()), atol=1e-4)
    np.testing.assert_allclose(maps[1], 0.0, atol=1e-6)


def test_resnet_hooks_are_removed_and_outputs_unchanged(rng):
    torch.manual_seed(0)
    model = build_model("resnet18", 1).eval()
    x = torch.from_numpy(rng.standard_normal((3, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        before = model(x)
    maps = gradcam_maps(model, x, [0, 1, 1], batch_size=2)
    assert maps.shape == (3, 64, 64)
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    layer = cam_target_layer(model)
    assert layer is model.layer4[-1]
    assert not layer._forward_hooks and not layer._backward_hooks
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)


def test_target_layer_of_other_architectures():
    assert cam_target_layer(build_model("mobilenet_v2", 1)) is not None
    lite = build_model("efficientnet_lite0", 1, weights="none")
    assert cam_target_layer(lite) is lite._bn1
    with pytest.raises(ValueError, match="Grad-CAM"):
        cam_target_layer(nn.Sequential(nn.Linear(2, 2)))


def test_overlay_is_red_where_the_map_is_high():
    gray = np.full((10, 10, 3), 128, np.uint8)
    cam = np.zeros((10, 10), np.float32)
    cam[:, 5:] = 1.0
    out = cam_overlay(gray, cam)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    hot, cold = out[5, 8].astype(int), out[5, 2].astype(int)
    assert hot[0] > hot[2] + 40  # red
    assert cold[2] > cold[0] + 40  # blue
    with pytest.raises(ValueError, match="differ in size"):
        cam_overlay(gray, cam[:5])
