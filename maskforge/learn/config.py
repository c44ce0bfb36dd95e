"""The frozen training config (config.json), its checks, and the config of a run to resume."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from maskforge.choices import ARCHS, DEVICES, OPTIMIZERS, SCHEDULERS
from maskforge.core.parallel import check_local_workers
from maskforge.learn import runs

# Settings that may differ when a run is resumed: they change speed, not results.
RESUME_OVERRIDES = ("workers", "device", "cache_dir")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; written as config.json and read back by --resume."""

    manifests: str = "manifests"
    arch: str = "resnet50"
    weights: str = "auto"
    freeze_backbone: bool = False
    unfreeze_after: int | None = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    epochs: int = 50
    batch_size: int = 64
    img_size: int | None = None  # None: the size in stats.json, else DEFAULT_IMG_SIZE
    patience: int = 5  # epochs without a lower val loss before stopping; 0 disables
    seed: int = 0
    device: str = "auto"
    workers: int | None = None  # None: datasets.default_workers
    amp: bool = True  # CUDA only: bf16 autocast where supported, else fp16 with a GradScaler
    cache_dir: str = ".maskforge/cache"

    def __post_init__(self) -> None:
        check_choice("architecture", self.arch, ARCHS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        check_choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.img_size is not None and not 16 <= self.img_size <= 1024:
            raise ValueError(f"img_size must be between 16 and 1024, got {self.img_size}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}.")
        if self.momentum < 0 or self.weight_decay < 0 or self.patience < 0:
            raise ValueError("momentum, weight_decay and patience must not be negative.")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must not be negative, got {self.workers}.")
        check_local_workers(self.workers)  # each DataLoader worker is a process with torch
        if self.unfreeze_after is not None:
            if not self.freeze_backbone:
                raise ValueError("--unfreeze-after needs --freeze-backbone.")
            if self.unfreeze_after < 0:
                raise ValueError(f"unfreeze_after must not be negative, got {self.unfreeze_after}.")

    def to_dict(self) -> dict:
        """Plain values (JSON and weights_only-checkpoint safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config stored in a config.json (other keys, e.g. the data section, ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def phase(self, epoch: int) -> str:
        """'frozen' (head on cached features) or 'full' (whole network) for a 0-based epoch."""
        if self.freeze_backbone and (self.unfreeze_after is None or epoch < self.unfreeze_after):
            return "frozen"
        return "full"


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    """ValueError naming the value and the allowed ones unless value is one of them."""
    if value not in allowed:
        raise ValueError(f"Invalid {what} {value!r}. Only {', '.join(allowed)} are supported.")


def resume_config(run_dir: Path, **overrides) -> TrainConfig:
    """The TrainConfig saved in run_dir/config.json, with RESUME_OVERRIDES (not None) replaced."""
    bad = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if bad:
        allowed = ", ".join(RESUME_OVERRIDES)
        raise ValueError(f"Cannot change {', '.join(bad)} when resuming; only {allowed}.")
    saved = TrainConfig.from_dict(runs.read_run_config(run_dir))
    return replace(saved, **{k: v for k, v in overrides.items() if v is not None})
