"""How training stops: Ctrl-C / SIGTERM after a whole step, early stopping, the interruption."""

from __future__ import annotations

import math
import signal
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from maskforge.learn import distributed as dist_utils
from maskforge.learn.distributed import DistContext


class StopRequest:
    """Ctrl-C or SIGTERM during training: finish the current batch, save last.pt, then stop.

    A second Ctrl-C raises KeyboardInterrupt at once. Under torchrun every rank receives the
    signal; `check` agrees on it across ranks so all stop after the same step.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, ctx: DistContext, device: torch.device) -> bool:
        """True when any rank was asked to stop."""
        if ctx.enabled:
            flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
            self.requested = bool(dist_utils.all_reduce(ctx, flag, op="max").item())
        return self.requested


@dataclass
class EarlyStopping:
    """Stop when the val loss has not improved for `patience` epochs (0: never stop)."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    best_acc: float = float("nan")
    bad_epochs: int = 0

    def update(self, val_loss: float, val_acc: float, epoch: int) -> bool:
        """Record a finished epoch (1-based); True when it is the best so far."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.best_acc = val_loss, epoch, val_acc
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once patience epochs passed without improvement."""
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        """Plain values for last.pt."""
        return asdict(self)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C / SIGTERM after saving last.pt."""

    def __init__(self, run_dir: Path, epoch: int, step: int, steps: int, is_main: bool = True):
        super().__init__(f"interrupted in epoch {epoch + 1}, after batch {step}/{steps}")
        self.run_dir, self.epoch, self.step, self.steps = run_dir, epoch, step, steps
        self.is_main = is_main
