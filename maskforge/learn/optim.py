"""The optimiser and the per-epoch learning-rate schedule of a run."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from maskforge.choices import OPTIMIZERS, SCHEDULERS
from maskforge.learn.config import check_choice


def build_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over params.

    Parameters without a gradient (a frozen backbone) are skipped by the step, so one optimizer
    serves both the frozen and the fine-tuning phase.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: cosine to 0 over `epochs`, step (x0.1 every third of them), or none."""
    check_choice("scheduler", name, SCHEDULERS)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None
