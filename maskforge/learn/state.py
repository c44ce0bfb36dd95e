"""A run's training state: model, optimiser, schedule, AMP scaler, early stopping, checkpoint info.

Built fresh or restored from last.pt; saved as best.pt / last.pt by rank 0, under torchrun with
every rank's weight digest and generator state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maskforge.learn import distributed as dist_utils
from maskforge.learn import runs
from maskforge.learn.config import TrainConfig
from maskforge.learn.distributed import DistContext
from maskforge.learn.logs import logger
from maskforge.learn.models import CheckpointInfo, build_model, checkpoint_dict
from maskforge.learn.optim import build_optimizer, build_scheduler
from maskforge.learn.stopping import EarlyStopping


@dataclass
class TrainState:
    """What last.pt holds to continue a run exactly (besides the generators and the epoch)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    early: EarlyStopping
    info: CheckpointInfo

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        num_outputs: int,
        weights: str,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        info: CheckpointInfo,
    ) -> TrainState:
        """A new model (seeded by config.seed, from `weights`) and fresh optimiser state."""
        c = config
        torch.manual_seed(c.seed)
        model = build_model(c.arch, num_outputs, weights).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        params = model.parameters()
        optimizer = build_optimizer(c.optimizer, params, c.lr, c.momentum, c.weight_decay)
        scheduler = build_scheduler(c.scheduler, optimizer, c.epochs)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        return cls(model, optimizer, scheduler, scaler, EarlyStopping(c.patience), info)

    def restore(self, checkpoint: dict) -> None:
        """Take over last.pt's weights, optimiser, schedule, scaler, early stopping and config."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None and checkpoint.get("scheduler"):
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.early = EarlyStopping(**checkpoint["early_stopping"])
        self.info.config = checkpoint.get("config", self.info.config)

    def best_checkpoint(self) -> dict:
        """best.pt: the model and its metadata."""
        return checkpoint_dict(self.model, self.info)

    def last_checkpoint(
        self, rng: dict, stop_reason: str | None, resume: dict | None = None
    ) -> dict:
        """last.pt: best.pt's content, the state to continue, and the generators (rng_states)."""
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "early_stopping": self.early.state_dict(),
            "rng": rng,
            "finished": stop_reason is not None,
            "stop_reason": stop_reason or "",
        }
        if resume is not None:
            extra["resume"] = resume
        return checkpoint_dict(self.model, self.info, **extra)


def rng_states(ctx: DistContext, device: torch.device) -> dict:
    """Every rank's generator state: {"torch": [CPU], "cuda": [CUDA, where dropout draws]}."""
    cpu = dist_utils.gather_objects(ctx, torch.get_rng_state())
    cuda = []
    if device.type == "cuda":
        cuda = dist_utils.gather_objects(ctx, torch.cuda.get_rng_state(device))
    return {"torch": cpu, "cuda": cuda}


def set_rng_state(
    ctx: DistContext, device: torch.device, cpu: list[torch.Tensor], cuda: list[torch.Tensor] | None
) -> None:
    """This rank's generators back to the states rng_states gathered."""
    torch.set_rng_state(cpu[ctx.rank])
    if device.type == "cuda" and cuda:
        torch.cuda.set_rng_state(cuda[ctx.rank], device)


def save_checkpoint(ctx: DistContext, path: Path, checkpoint: dict) -> None:
    """Rank 0 writes; under torchrun every rank's weight digest is recorded first."""
    if ctx.enabled:
        mine = dist_utils.weights_digest(checkpoint["model"])
        digests = dist_utils.gather_objects(ctx, mine)
        checkpoint["ddp"] = {"world_size": ctx.world_size, "weights_sha256": digests}
        if len(set(digests)) != 1:
            logger.error("Ranks disagree on the weights saved to %s: %s", path, digests)
    if ctx.is_main:
        runs.write_checkpoint(path, checkpoint)
