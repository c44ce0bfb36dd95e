"""One epoch: the loss, training steps with running totals, and validation.

train_one_epoch(model, batches, optimizer, device, ...) -> dict and validate_epoch(model, batches,
device, ...) -> dict, in the style of torchvision's classification reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from maskforge.learn.devices import autocast
from maskforge.learn.distributed import DistContext
from maskforge.learn.stopping import StopRequest

SINGLE_PROCESS = DistContext()
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, class indices, sample weights


def make_loss(
    num_outputs: int,
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """loss(logits, targets) -> (per-sample loss (N,) float32, predicted class (N,) int64).

    One logit: BCE-with-logits, positive class = index 1. Otherwise cross-entropy.
    """
    functional = nn.functional

    def binary(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = logits[:, 0].float()
        loss = functional.binary_cross_entropy_with_logits(z, targets.float(), reduction="none")
        return loss, (z > 0).long()

    def multiclass(
        logits: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = logits.float()
        return functional.cross_entropy(z, targets, reduction="none"), z.argmax(dim=1)

    return binary if num_outputs == 1 else multiclass


@dataclass
class EpochTotals:
    """Running sums of one epoch's training, kept on the device (no per-step host sync)."""

    sums: torch.Tensor  # float64 (4,): weighted loss sum, weight sum, correct, count
    step: int = 0
    seconds: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> EpochTotals:
        """Empty totals for a new epoch."""
        return cls(torch.zeros(4, dtype=torch.float64, device=device))

    def as_dict(self) -> dict:
        """Plain values for last.pt (a mid-epoch interruption)."""
        return {"sums": self.sums.cpu().tolist(), "step": self.step, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, values: dict, device: torch.device) -> EpochTotals:
        """Totals saved by as_dict."""
        sums = torch.tensor(values["sums"], dtype=torch.float64, device=device)
        return cls(sums, int(values["step"]), float(values["seconds"]))

    def summary(self) -> dict:
        """loss (weighted mean), acc, images, seconds, images_per_s, step."""
        loss_sum, weight_sum, correct, count = self.sums.tolist()
        return {
            "loss": loss_sum / weight_sum if weight_sum else float("nan"),
            "acc": correct / count if count else float("nan"),
            "images": int(count),
            "seconds": self.seconds,
            "images_per_s": count / self.seconds if self.seconds > 0 else 0.0,
            "step": self.step,
        }


def identity(x: torch.Tensor) -> torch.Tensor:
    """x unchanged (inputs that need no preparation, e.g. cached features)."""
    return x


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = identity,
    totals: EpochTotals | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    stop: StopRequest | None = None,
    ctx: DistContext = SINGLE_PROCESS,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """One pass over (inputs, targets, weights) batches -> EpochTotals.summary().

    The loss is the weight-normalised batch mean (sum w*l / sum w). `totals` (updated in place)
    continues an interrupted epoch. Stops early, after a whole step, when `stop` fires.
    """
    totals = totals if totals is not None else EpochTotals.zeros(device)
    model.train()
    start = time.perf_counter()
    for inputs, targets, weights in batches:
        inputs = prepare(inputs.to(device, non_blocking=True))
        targets = targets.to(device, non_blocking=True)
        weights = weights.to(device, non_blocking=True, dtype=torch.float32)
        with autocast(device, amp_dtype):
            logits = model(inputs)
        per_sample, predicted = loss_fn(logits, targets)
        loss = (per_sample * weights).sum() / weights.sum().clamp_min(1e-12)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            count = torch.tensor(float(len(targets)), dtype=torch.float64, device=device)
            correct = (predicted == targets).sum().double()
            weighted = (per_sample * weights).sum().double()
            totals.sums += torch.stack([weighted, weights.sum().double(), correct, count])
        totals.step += 1
        if on_step is not None:
            on_step(totals.step)
        if stop is not None and stop.check(ctx, device):
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    totals.seconds += time.perf_counter() - start
    return totals.summary()


@torch.no_grad()
def validate_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = identity,
    amp_dtype: torch.dtype | None = None,
) -> dict:
    """Unweighted mean loss and accuracy over batches, and the sums (to reduce over ranks)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for inputs, targets, _weights in batches:
        inputs = prepare(inputs.to(device, non_blocking=True))
        targets = targets.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(inputs)
        per_sample, predicted = loss_fn(logits, targets)
        count = torch.tensor(float(len(targets)), dtype=torch.float64, device=device)
        correct = (predicted == targets).sum().double()
        sums += torch.stack([per_sample.sum().double(), correct, count])
    return val_summary(sums)


def val_summary(sums: torch.Tensor) -> dict:
    """loss, acc, count from the (loss sum, correct, count) sums of validate_epoch."""
    loss_sum, correct, count = sums.tolist()
    return {
        "loss": loss_sum / count if count else float("nan"),
        "acc": correct / count if count else float("nan"),
        "count": int(count),
        "sums": sums,
    }
