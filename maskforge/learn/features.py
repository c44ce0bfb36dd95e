"""Backbone features for --freeze-backbone: one forward pass, then the head trains on them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from maskforge.learn.devices import autocast
from maskforge.learn.models import headless


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    *,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    img_size: int,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Float32 features (N, D) that feed the final layer, for the inputs of (inputs, ...) batches.

    The model runs in eval mode (BatchNorm running statistics, no dropout), so head(features)
    equals model(inputs). With no batches the result is (0, D).
    """
    model.eval()
    parts = []
    with headless(model):
        for inputs, *_ in batches:
            x = prepare(inputs.to(device, non_blocking=True))
            with autocast(device, amp_dtype):
                parts.append(model(x).float())
        if not parts:  # e.g. a process with no share of the images
            width = model(torch.zeros(1, 3, img_size, img_size, device=device)).shape[1]
            parts.append(torch.zeros((0, width), device=device))
    return torch.cat(parts)


def feature_batches(
    features: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    *,
    drop_last: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(features, targets, weights) batches of the rows in `order` (a 1-D index tensor)."""
    end = (len(order) // batch_size) * batch_size if drop_last else len(order)
    for start in range(0, end, batch_size):
        rows = order[start : start + batch_size]
        yield features[rows.to(features.device)], targets[rows], weights[rows]
