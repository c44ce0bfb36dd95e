"""Grad-CAM heat maps (the `grad-cam` package) showing where a classifier looked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputTarget,
)
from torch import nn


def cam_target_layer(model: nn.Module) -> nn.Module:
    """The last convolutional block of a ResNet, MobileNet, EfficientNet or EfficientNet-Lite."""
    if hasattr(model, "layer4"):
        return model.layer4[-1]
    if hasattr(model, "_conv_head"):  # EfficientNet-Lite0: its final 1x1 conv + batch norm
        return model._bn1
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return features[-1]
    raise ValueError(f"Do not know which layer of {type(model).__name__} to use for Grad-CAM.")


def gradcam_maps(
    model: nn.Module, inputs: torch.Tensor, target_classes: Sequence[int], batch_size: int = 16
) -> np.ndarray:
    """Grad-CAM maps (N, H, W) float32 in 0..1 for normalised inputs (N, 3, H, W).

    target_classes: the class index to explain per image. A one-logit (binary) model explains
    class 1 with the logit and class 0 with its negation, so both classes get their own evidence.
    """
    if inputs.ndim != 4 or inputs.shape[0] != len(target_classes):
        raise ValueError(
            f"inputs must be (N, 3, H, W) with N = {len(target_classes)}, "
            f"got {tuple(inputs.shape)}."
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        num_outputs = model(inputs[:1].to(device)).shape[1]
    make = BinaryClassifierOutputTarget if num_outputs == 1 else ClassifierOutputTarget
    cam = GradCAM(model=model, target_layers=[cam_target_layer(model)])
    maps = []
    try:
        with torch.enable_grad():
            for start in range(0, inputs.shape[0], batch_size):
                chunk = inputs[start : start + batch_size]
                targets = [make(int(c)) for c in target_classes[start : start + batch_size]]
                maps.append(cam(input_tensor=chunk, targets=targets))
    finally:
        # Remove the hooks so the model behaves normally afterwards.
        cam.activations_and_grads.release()
    return np.concatenate(maps).astype(np.float32)


def cam_overlay(rgb: np.ndarray, cam_map: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """Blend a heat map (H, W) in 0..1 over an RGB uint8 image (H, W, 3): red = most evidence."""
    if rgb.shape[:2] != cam_map.shape:
        raise ValueError(f"image {rgb.shape[:2]} and CAM {cam_map.shape} differ in size.")
    return show_cam_on_image(
        rgb.astype(np.float32) / 255.0, cam_map, use_rgb=True, image_weight=image_weight
    )
