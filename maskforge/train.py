"""Training: config, data checks, the epoch loop, early stopping, checkpoints, resume, metrics."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from maskforge import __version__
from maskforge import distributed as dist_utils
from maskforge.distributed import DistContext
from maskforge.imageio import atomic_write_bytes, atomic_write_text
from maskforge.manifest import class_order, file_sha256, read_manifest
from maskforge.models import (
    ARCHS,
    CheckpointInfo,
    build_model,
    checkpoint_dict,
    head_module,
    headless,
    num_outputs_for,
    read_checkpoint,
    resolve_weights,
)

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "step", "none")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_IMG_SIZE = 112
METRIC_COLUMNS = (
    "epoch",
    "phase",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "images_per_s",
    "train_seconds",
    "epoch_seconds",
    "best",
)
# Settings that may differ when a run is resumed: they change speed, not results.
RESUME_OVERRIDES = ("workers", "device", "cache_dir")

SINGLE_PROCESS = DistContext()

logger = logging.getLogger("maskforge.train")


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
    workers: int | None = None  # None: data.default_workers
    amp: bool = True  # CUDA only: bf16 autocast where supported, else fp16 with a GradScaler
    cache_dir: str = ".maskforge/cache"

    def __post_init__(self) -> None:
        _check_choice("architecture", self.arch, ARCHS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("device", self.device, DEVICES)
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
        """The config stored in a config.json (unknown keys, e.g. the data section, ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def phase(self, epoch: int) -> str:
        """ "frozen" (head on cached features) or "full" (whole network) for a 0-based epoch."""
        frozen = self.freeze_backbone and (
            self.unfreeze_after is None or epoch < self.unfreeze_after
        )
        return "frozen" if frozen else "full"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Invalid {what} {value!r}. Only {', '.join(allowed)} are supported.")


# --- inputs -----------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Checked manifests and normalisation (mean/std None: compute them from the train images)."""

    manifests: Path
    train: pd.DataFrame
    val: pd.DataFrame
    classes: list[str]
    mean: list[float] | None
    std: list[float] | None
    stats_size: int | None
    digests: dict[str, str]

    def targets(self, split: str) -> np.ndarray:
        """Class indices (N,) int64 of a split, in class order."""
        index = {c: i for i, c in enumerate(self.classes)}
        frame = self.train if split == "train" else self.val
        return np.array([index[x] for x in frame["label"]], dtype=np.int64)


def load_training_data(manifests: Path) -> TrainingData:
    """Read and check train.csv, val.csv and stats.json of a manifests folder.

    Raises FileNotFoundError / ValueError with one line for: missing folder or CSV, empty or
    single-class train set, val labels unknown to train, missing image files, bad weights,
    stats.json that belongs to another train.csv or other classes.
    """
    manifests = Path(manifests)
    if not manifests.is_dir():
        raise FileNotFoundError(
            f"Manifests folder not found: {manifests} "
            "(run `maskforge split` first, or pass --manifests)"
        )
    train = read_manifest(manifests / "train.csv")
    val = read_manifest(manifests / "val.csv")
    classes = class_order(train["label"])
    if len(classes) < 2:
        raise ValueError(
            f"{manifests / 'train.csv'} has only one class ({classes[0]}); a classifier needs at "
            "least two (e.g. masked and unmasked)."
        )
    unknown = sorted(set(val["label"]) - set(classes))
    if unknown:
        raise ValueError(
            f"{manifests / 'val.csv'} has label(s) {', '.join(unknown)} that train.csv lacks "
            f"(train classes: {', '.join(classes)})."
        )
    for name, frame in (("train.csv", train), ("val.csv", val)):
        missing = [p for p in frame["abspath"] if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in {manifests / name} are missing, "
                f"e.g. {missing[0]}"
            )
        weights = frame["weight"].to_numpy()
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError(f"{manifests / name} has negative, infinite or all-zero weights.")
    digests = {
        "train": file_sha256(manifests / "train.csv"),
        "val": file_sha256(manifests / "val.csv"),
    }
    if (manifests / "test.csv").is_file():
        digests["test"] = file_sha256(manifests / "test.csv")
    mean, std, size = _read_stats(manifests, digests["train"], classes)
    return TrainingData(manifests, train, val, classes, mean, std, size, digests)


def _read_stats(
    manifests: Path, train_sha: str, classes: list[str]
) -> tuple[list[float] | None, list[float] | None, int | None]:
    path = manifests / "stats.json"
    if not path.is_file():
        return None, None, None
    try:
        stats = json.loads(path.read_text())
        mean = [float(x) for x in stats["mean"]]
        std = [float(x) for x in stats["std"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not valid stats (need mean and std lists): {exc}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"{path} needs 3 mean values and 3 positive std values (RGB).")
    recorded = stats.get("manifest_sha256")
    if recorded and recorded != train_sha:
        raise ValueError(
            f"{path} belongs to another train.csv (manifest_sha256 {recorded[:12]}… but "
            f"{manifests / 'train.csv'} is {train_sha[:12]}…); rerun `maskforge split` so the "
            "stats match, or delete stats.json to compute them from the train images."
        )
    if stats.get("classes") and list(stats["classes"]) != classes:
        raise ValueError(
            f"{path} lists classes {stats['classes']} but train.csv has {classes}; "
            "rerun `maskforge split`."
        )
    size = stats.get("size")
    return mean, std, int(size) if isinstance(size, (int, float)) else None


# --- run folder -------------------------------------------------------------------------------


def new_run_dir(runs_root: Path, arch: str) -> Path:
    """runs_root/<YYYYmmdd-HHMMSS>-<arch>, created (with a -2, -3 ... suffix if taken)."""
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"
    for n in range(1, 1000):
        path = Path(runs_root) / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"Cannot create a new run folder under {runs_root}.")


def _claim_run_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--run {path} is a file, not a folder.")
    if (path / "config.json").exists() or any(path.glob("*.pt")):
        raise FileExistsError(
            f"{path} already holds a run; continue it with --resume {path} or choose another --run."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def resume_config(run_dir: Path, **overrides) -> TrainConfig:
    """The TrainConfig saved in run_dir/config.json, with RESUME_OVERRIDES (not None) replaced."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"Cannot resume: {path} not found (is {run_dir} a run folder?).")
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"Cannot resume: {path} is not valid JSON ({exc}).") from None
    bad = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if bad:
        raise ValueError(
            f"Cannot change {', '.join(bad)} when resuming; only {', '.join(RESUME_OVERRIDES)}."
        )
    return replace(
        TrainConfig.from_dict(saved), **{k: v for k, v in overrides.items() if v is not None}
    )


def write_metrics(rows: list[dict], run_dir: Path) -> None:
    """metrics.csv (one row per epoch, METRIC_COLUMNS) and curves.png."""
    from maskforge.curves import plot_curves

    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    atomic_write_text(run_dir / "metrics.csv", frame.to_csv(index=False, float_format="%.6g"))
    plot_curves(frame, run_dir / "curves.png")


def _read_metrics(run_dir: Path, epochs_done: int) -> list[dict]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    frame = frame[frame["epoch"] <= epochs_done]
    return frame.to_dict("records")


# --- the loop ---------------------------------------------------------------------------------


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
            self.best_loss, self.best_epoch, self.best_acc, self.bad_epochs = (
                val_loss,
                epoch,
                val_acc,
                0,
            )
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


@dataclass
class EpochTotals:
    """Running sums of one epoch's training, on the device (no per-step host sync)."""

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


def make_loss(
    num_outputs: int,
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """loss(logits, targets) -> (per-sample loss (N,) float32, predicted class (N,) int64).

    One logit: BCE-with-logits, positive class = index 1. Otherwise cross-entropy.
    """
    if num_outputs == 1:

        def binary(
            logits: torch.Tensor, targets: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            z = logits[:, 0].float()
            loss = nn.functional.binary_cross_entropy_with_logits(
                z, targets.float(), reduction="none"
            )
            return loss, (z > 0).long()

        return binary

    def multiclass(
        logits: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = logits.float()
        return nn.functional.cross_entropy(z, targets, reduction="none"), z.argmax(dim=1)

    return multiclass


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


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    totals: EpochTotals | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    stop: StopRequest | None = None,
    ctx: DistContext = SINGLE_PROCESS,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """One pass over (inputs, targets, weights) batches; returns loss, acc, images, seconds, step.

    The loss is the weight-normalised mean over the batch (sum w*l / sum w); `totals` (updated in
    place) continues an interrupted epoch. Stops early, after a whole step, when `stop` fires.
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
            totals.sums += torch.stack(
                [
                    (per_sample * weights).sum().double(),
                    weights.sum().double(),
                    (predicted == targets).sum().double(),
                    torch.tensor(float(len(targets)), dtype=torch.float64, device=device),
                ]
            )
        totals.step += 1
        if on_step is not None:
            on_step(totals.step)
        if stop is not None and stop.check(ctx, device):
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    totals.seconds += time.perf_counter() - start
    return _summarise(totals)


def _summarise(totals: EpochTotals) -> dict:
    loss_sum, weight_sum, correct, count = totals.sums.tolist()
    return {
        "loss": loss_sum / weight_sum if weight_sum else float("nan"),
        "acc": correct / count if count else float("nan"),
        "images": int(count),
        "seconds": totals.seconds,
        "images_per_s": count / totals.seconds if totals.seconds > 0 else 0.0,
        "step": totals.step,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    amp_dtype: torch.dtype | None = None,
) -> dict:
    """Unweighted mean loss and accuracy over batches; also the sums (for reducing over ranks)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for inputs, targets, _weights in batches:
        inputs = prepare(inputs.to(device, non_blocking=True))
        targets = targets.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(inputs)
        per_sample, predicted = loss_fn(logits, targets)
        sums += torch.stack(
            [
                per_sample.sum().double(),
                (predicted == targets).sum().double(),
                torch.tensor(float(len(targets)), dtype=torch.float64, device=device),
            ]
        )
    return _eval_summary(sums)


def _eval_summary(sums: torch.Tensor) -> dict:
    loss_sum, correct, count = sums.tolist()
    return {
        "loss": loss_sum / count if count else float("nan"),
        "acc": correct / count if count else float("nan"),
        "count": int(count),
        "sums": sums,
    }


def build_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over params."""
    _check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: cosine to 0 over `epochs`, step (x0.1 every third of them), or none."""
    _check_choice("scheduler", name, SCHEDULERS)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is an error."""
    _check_choice("device", name, DEVICES)
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA GPU is available; use --device cpu or auto.")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    # On CPU fp32 is used: bf16 autocast is many times slower than fp32 on CPUs without AMX.
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to dtype on device, or nothing when dtype is None (fp32)."""
    return (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C / SIGTERM after saving last.pt."""

    def __init__(self, run_dir: Path, epoch: int, step: int, steps: int, is_main: bool = True):
        super().__init__(f"interrupted in epoch {epoch + 1}, after batch {step}/{steps}")
        self.run_dir, self.epoch, self.step, self.steps = run_dir, epoch, step, steps
        self.is_main = is_main


@dataclass
class TrainResult:
    """Outcome of train(): where the run is and how it ended."""

    run_dir: Path
    epochs_completed: int
    best_epoch: int
    best_val_loss: float
    best_val_acc: float
    stop_reason: str  # "completed" or "early_stopping"
    classes: list[str]
    is_main: bool = True
    world_size: int = 1
    warnings: list[str] = field(default_factory=list)


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    runs_root: Path = Path("runs"),
    on_start: Callable[[Path], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a classifier on config.manifests into run_dir (new under runs_root when None).

    resume=True continues run_dir from its last.pt (config from resume_config). Under torchrun
    (WORLD_SIZE > 1) every process calls this; rank 0 writes the run folder. on_start(run_dir)
    is called on rank 0 once the folder exists; on_step(epoch, step) after every training step.
    Raises TrainingInterrupted after saving last.pt when stopped by Ctrl-C or SIGTERM.
    """
    device = resolve_device(config.device)
    ctx = dist_utils.init_distributed(device.type)
    handlers: list[logging.Handler] = []
    saved_logger = (logger.propagate, logger.level)
    try:
        if device.type == "cuda":
            device = torch.device(
                "cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device()
            )
        data = load_training_data(Path(config.manifests))
        if resume:
            _check_resume_inputs(Path(run_dir), data)
        config = replace(
            config,
            manifests=str(Path(config.manifests).resolve()),
            cache_dir=str(Path(config.cache_dir).resolve()),
            img_size=config.img_size or data.stats_size or DEFAULT_IMG_SIZE,
        )
        if ctx.is_main and not resume:
            run_dir = (
                _claim_run_dir(Path(run_dir)) if run_dir else new_run_dir(runs_root, config.arch)
            )
        run_dir = Path(dist_utils.broadcast_object(ctx, str(run_dir) if run_dir else None))
        handlers = _start_logging(run_dir, ctx)
        if ctx.is_main and on_start is not None:
            on_start(run_dir)
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            return _fit(config, data, run_dir, device, ctx, resume=resume, on_step=on_step)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = saved_logger[0]
        logger.setLevel(saved_logger[1])
        dist_utils.close(ctx)


def _check_resume_inputs(run_dir: Path, data: TrainingData) -> None:
    saved = json.loads((run_dir / "config.json").read_text()).get("data", {})
    before = saved.get("manifest_sha256", {})
    for split in ("train", "val"):
        if before.get(split) and before[split] != data.digests[split]:
            raise ValueError(
                f"Cannot resume {run_dir}: {data.manifests / (split + '.csv')} changed since the "
                "run started; start a new run instead."
            )


def _start_logging(run_dir: Path, ctx: DistContext) -> list[logging.Handler]:
    logger.propagate = False
    if not ctx.is_main:
        logger.setLevel(logging.ERROR)
        return []
    logger.setLevel(logging.INFO)
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    for handler in (file_handler, console):
        logger.addHandler(handler)
    return [file_handler, console]


class _Trainer:
    """State of one run (model, optimiser, loaders, features); the loop is in _fit."""

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        run_dir: Path,
        device: torch.device,
        ctx: DistContext,
    ):
        self.config, self.data, self.run_dir, self.device, self.ctx = (
            config,
            data,
            run_dir,
            device,
            ctx,
        )
        self.cuda = device.type == "cuda"
        self.amp_dtype = _amp_dtype(device, config.amp)
        self.workers = (
            config.workers if config.workers is not None else _default_workers(device, ctx)
        )
        self.train_targets = data.targets("train")
        self.val_targets = data.targets("val")
        self.train_weights = data.train["weight"].to_numpy(np.float32)
        self.num_outputs = num_outputs_for(data.classes)
        self.loss_fn = make_loss(self.num_outputs)
        n_shard = -(-len(self.train_targets) // ctx.world_size)
        if n_shard < 2:
            raise ValueError(
                f"train.csv has {len(self.train_targets)} image(s); need at least 2 per process."
            )
        self.batch_size = min(config.batch_size, n_shard)
        self.steps_per_epoch = n_shard // self.batch_size
        self.features: dict[str, torch.Tensor] = {}
        self.loaders: dict[str, torch.utils.data.DataLoader] = {}
        self.wrapped: dict[str, nn.Module] = {}

    # data
    def build_caches(self) -> None:
        from maskforge.data import build_caches, cache_mean_std, train_cache_size

        c, img = self.config, self.config.img_size
        needs_aug = not c.freeze_backbone or c.unfreeze_after is not None
        needs_plain = c.freeze_backbone or self.data.mean is None
        train_sizes = ([train_cache_size(img)] if needs_aug else []) + (
            [img] if needs_plain else []
        )
        threads = max(2, self.workers)

        def build() -> tuple[dict[int, Path], dict[int, Path]]:
            return (
                build_caches(
                    list(self.data.train["abspath"]),
                    train_sizes,
                    Path(c.cache_dir),
                    workers=threads,
                    name="train.csv",
                    progress=None if self.ctx.is_main else False,
                ),
                build_caches(
                    list(self.data.val["abspath"]),
                    [img],
                    Path(c.cache_dir),
                    workers=threads,
                    name="val.csv",
                    progress=None if self.ctx.is_main else False,
                ),
            )

        # Rank 0 decodes; the others then find the files (shared storage) or build their own copy.
        if self.ctx.is_main:
            self.train_cache, self.val_cache = build()
        dist_utils.barrier(self.ctx)
        if not self.ctx.is_main:
            self.train_cache, self.val_cache = build()
        if self.data.mean is None:
            self.mean, self.std = cache_mean_std(self.train_cache[img])
            logger.info(
                "No stats.json: normalisation computed from the train images: mean %s std %s",
                _fmt(self.mean),
                _fmt(self.std),
            )
        else:
            self.mean, self.std = self.data.mean, self.data.std
            logger.info(
                "Normalisation from stats.json: mean %s std %s", _fmt(self.mean), _fmt(self.std)
            )
        self.mean_t = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self.std_t = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        from maskforge.data import to_model_input

        return to_model_input(batch, self.mean_t, self.std_t, channels_last=self.cuda)

    def image_loader(self, split: str) -> torch.utils.data.DataLoader:
        from maskforge.data import (
            CachedImages,
            EpochSampler,
            ShardSampler,
            make_loader,
            train_cache_size,
            train_transform,
        )

        if split not in self.loaders:
            c, ctx = self.config, self.ctx
            if split == "train":
                dataset = CachedImages(
                    self.train_cache[train_cache_size(c.img_size)],
                    self.train_targets,
                    self.train_weights,
                    train_transform(c.img_size),
                    seed=c.seed,
                )
                sampler = EpochSampler(
                    len(dataset),
                    shuffle=True,
                    seed=c.seed,
                    rank=ctx.rank,
                    world_size=ctx.world_size,
                )
                loader = make_loader(
                    dataset,
                    sampler,
                    self.batch_size,
                    drop_last=True,
                    workers=self.workers,
                    pin_memory=self.cuda,
                )
            else:
                dataset = CachedImages(self.val_cache[c.img_size], self.val_targets)
                sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
                loader = make_loader(
                    dataset,
                    sampler,
                    2 * self.batch_size,
                    drop_last=False,
                    workers=self.workers,
                    pin_memory=self.cuda,
                )
            self.loaders[split] = loader
        return self.loaders[split]

    @torch.no_grad()
    def compute_features(self, model: nn.Module) -> None:
        """Backbone features (N, D) float32 of the un-augmented train and val images, every rank."""
        from maskforge.data import CachedImages, ShardSampler, make_loader

        if self.features:
            return
        model.eval()
        for split, cache, targets in (
            ("train", self.train_cache, self.train_targets),
            ("val", self.val_cache, self.val_targets),
        ):
            dataset = CachedImages(cache[self.config.img_size], targets)
            loader = make_loader(
                dataset,
                ShardSampler(len(dataset), self.ctx.rank, self.ctx.world_size),
                2 * self.batch_size,
                drop_last=False,
                workers=self.workers,
                pin_memory=self.cuda,
            )
            parts = []
            bar = tqdm(
                loader,
                desc=f"features ({split})",
                unit="batch",
                leave=False,
                disable=None if self.ctx.is_main else True,
            )
            with headless(model):
                for inputs, _t, _w in bar:
                    x = self.prepare(inputs.to(self.device, non_blocking=True))
                    with autocast(self.device, self.amp_dtype):
                        parts.append(model(x).float())
                if not parts:  # more processes than images: this rank contributes no rows
                    size = self.config.img_size
                    width = model(torch.zeros(1, 3, size, size, device=self.device)).shape[1]
                    parts.append(torch.zeros((0, width), device=self.device))
            local = torch.cat(parts)
            self.features[split] = dist_utils.gather_strided(self.ctx, local, len(dataset))
        logger.info(
            "Cached backbone features: %d x %d (train), %d (val)",
            *self.features["train"].shape,
            len(self.features["val"]),
        )

    def feature_batches(self, sampler, split: str) -> Iterator[tuple[torch.Tensor, ...]]:
        feats = self.features[split]
        targets = torch.from_numpy(self.train_targets if split == "train" else self.val_targets)
        weights = torch.from_numpy(
            self.train_weights if split == "train" else np.ones(len(self.val_targets), np.float32)
        )
        if sampler is None:  # val: this rank's strided shard, all of it
            order = torch.arange(self.ctx.rank, len(feats), self.ctx.world_size)
            size, full_only = 2 * self.batch_size, False
        else:
            order = torch.tensor(sampler.indices(), dtype=torch.long)
            size, full_only = self.batch_size, True
        stop = (len(order) // size) * size if full_only else len(order)
        for start in range(0, stop, size):
            sel = order[start : start + size]
            yield feats[sel.to(feats.device)], targets[sel], weights[sel]

    def wrap(self, phase: str, module: nn.Module) -> nn.Module:
        """module itself, or a DistributedDataParallel around it under torchrun (one per phase)."""
        if not self.ctx.enabled:
            return module
        if phase not in self.wrapped:
            from torch.nn.parallel import DistributedDataParallel

            self.wrapped.clear()  # the frozen-phase wrapper (and its gradient hooks) is done with
            self.wrapped[phase] = DistributedDataParallel(
                module,
                device_ids=[self.device.index] if self.cuda else None,
                gradient_as_bucket_view=True,
            )
        return self.wrapped[phase]


def _default_workers(device: torch.device, ctx: DistContext) -> int:
    from maskforge.data import default_workers

    return default_workers(device.type, ctx.local_world_size)


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _fit(
    config: TrainConfig,
    data: TrainingData,
    run_dir: Path,
    device: torch.device,
    ctx: DistContext,
    *,
    resume: bool,
    on_step: Callable[[int, int], None] | None,
) -> TrainResult:
    from maskforge.data import EpochSampler

    t = _Trainer(config, data, run_dir, device, ctx)
    warnings: list[str] = []
    last_path = run_dir / "last.pt"
    ckpt = read_checkpoint(last_path) if resume and last_path.is_file() else None
    if ckpt is not None and ckpt.get("finished"):
        raise ValueError(
            f"{run_dir} already finished ({ckpt.get('stop_reason', 'completed')} after epoch "
            f"{ckpt['epoch']}); nothing to resume. Start a new run, e.g. with "
            f"--weights {run_dir / 'best.pt'}."
        )
    # Weights: rank 0 resolves "auto" (and may download); every rank then uses its answer.
    if ckpt is not None:
        weights = "none"
    else:
        weights, warning = (
            resolve_weights(config.arch, config.weights) if ctx.is_main else (None, None)
        )
        weights = dist_utils.broadcast_object(ctx, weights)
        if warning:
            warnings.append(warning)
            logger.warning(warning)
    logger.info("%s run folder %s", "Resuming" if resume else "New", run_dir)
    logger.info(
        "Manifests %s: train %d images, val %d; classes %s%s",
        data.manifests,
        len(data.train),
        len(data.val),
        ", ".join(data.classes),
        "; per-sample weights from the manifest" if (t.train_weights != 1).any() else "",
    )
    t.build_caches()
    torch.manual_seed(config.seed)
    model = build_model(config.arch, t.num_outputs, weights).to(device)
    if t.cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = build_optimizer(
        config.optimizer, model.parameters(), config.lr, config.momentum, config.weight_decay
    )
    scheduler = build_scheduler(config.scheduler, optimizer, config.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp_dtype == torch.float16)
    early = EarlyStopping(config.patience)
    info = CheckpointInfo(
        arch=config.arch,
        classes=data.classes,
        img_size=config.img_size,
        mean=t.mean,
        std=t.std,
        manifests=data.digests,
    )
    config_json = {
        **config.to_dict(),
        "data": {
            "classes": data.classes,
            "mean": t.mean,
            "std": t.std,
            "manifest_sha256": data.digests,
            "weights_resolved": weights,
            "batch_size_effective": t.batch_size,
            "world_size": ctx.world_size,
            "workers": t.workers,
            "amp": str(t.amp_dtype).replace("torch.", "") if t.amp_dtype else "fp32",
            "device": str(device),
        },
        "maskforge_version": __version__,
        "torch_version": str(torch.__version__),
    }
    info.config = config_json
    start_epoch, partial, rows = 0, None, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        early = EarlyStopping(**ckpt["early_stopping"])
        start_epoch = int(ckpt["epoch"])
        partial = ckpt.get("resume")
        if partial and int(partial.get("world_size", 1)) != ctx.world_size:
            logger.warning(
                "Resumed with %d processes instead of %d: epoch %d restarts from its first batch.",
                ctx.world_size,
                partial.get("world_size", 1),
                start_epoch + 1,
            )
            partial = None
        rows = _read_metrics(run_dir, start_epoch)
        info.config = ckpt.get("config", config_json)
        logger.info(
            "Resuming after epoch %d%s",
            start_epoch,
            f", batch {partial['totals']['step']}/{t.steps_per_epoch}" if partial else "",
        )
    elif ctx.is_main:
        atomic_write_text(run_dir / "config.json", json.dumps(config_json, indent=2) + "\n")
    amp_text = config_json["data"]["amp"]
    logger.info(
        "Model %s (%d outputs, weights %s) on %s, %s%s; %d process(es), %d loader worker(s) each",
        config.arch,
        t.num_outputs,
        weights if ckpt is None else "from last.pt",
        device,
        amp_text,
        ", channels_last" if t.cuda else "",
        ctx.world_size,
        t.workers,
    )
    logger.info(
        "%s lr %g, %s schedule, batch %d, up to %d epochs, patience %d, img %d px, seed %d",
        config.optimizer.upper(),
        config.lr,
        config.scheduler,
        t.batch_size,
        config.epochs,
        config.patience,
        config.img_size,
        config.seed,
    )

    sampler = EpochSampler(
        len(t.train_targets),
        shuffle=True,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    stop_reason = "completed"
    with StopRequest() as stop:
        for epoch in range(start_epoch, config.epochs):
            phase = config.phase(epoch)
            epoch_start = time.perf_counter()
            if partial is not None:
                totals = EpochTotals.from_dict(partial["totals"], device)
                torch.set_rng_state(partial["rng"][ctx.rank])
                partial = None
            else:
                totals = EpochTotals.zeros(device)
                torch.manual_seed(_epoch_seed(config.seed, epoch, ctx.rank))
            skip = totals.step * t.batch_size
            if phase == "frozen":
                t.compute_features(model)
                trainable = t.wrap(phase, head_module(model))
                sampler.set_epoch(epoch, skip)
                batches: Iterable = t.feature_batches(sampler, "train")
                prepare, amp_dtype, scaler_used = (lambda x: x), None, None
            else:
                trainable = t.wrap(phase, model)
                loader = t.image_loader("train")
                loader.sampler.set_epoch(epoch, skip)
                batches = loader
                prepare, amp_dtype, scaler_used = t.prepare, t.amp_dtype, scaler
            bar = tqdm(
                batches,
                total=t.steps_per_epoch,
                initial=totals.step,
                leave=False,
                unit="batch",
                desc=f"epoch {epoch + 1}/{config.epochs}",
                disable=None if ctx.is_main else True,
            )
            stats = train_one_epoch(
                trainable,
                bar,
                optimizer,
                device,
                loss_fn=t.loss_fn,
                prepare=prepare,
                totals=totals,
                amp_dtype=amp_dtype,
                scaler=scaler_used,
                stop=stop,
                ctx=ctx,
                on_step=(lambda step, e=epoch: on_step(e, step)) if on_step else None,
            )
            bar.close()
            if stop.requested and totals.step < t.steps_per_epoch:
                _save_last(
                    t,
                    model,
                    info,
                    optimizer,
                    scheduler,
                    scaler,
                    early,
                    epoch,
                    totals,
                    stop_reason=None,
                )
                raise TrainingInterrupted(
                    run_dir, epoch, totals.step, t.steps_per_epoch, ctx.is_main
                )
            # Validation on the unwrapped module: DDP's forward would sync buffers every batch.
            if phase == "frozen":
                val = evaluate(
                    head_module(model), t.feature_batches(None, "val"), device, loss_fn=t.loss_fn
                )
            else:
                val = evaluate(
                    model,
                    t.image_loader("val"),
                    device,
                    loss_fn=t.loss_fn,
                    prepare=t.prepare,
                    amp_dtype=t.amp_dtype,
                )
            stats, val = _reduce_epoch(ctx, totals, val, device)
            if not math.isfinite(stats["loss"]):
                raise ValueError(
                    f"Training diverged (train loss {stats['loss']} in epoch {epoch + 1}); "
                    "try a lower --lr."
                )
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            improved = early.update(val["loss"], val["acc"], epoch + 1)
            rows.append(
                {
                    "epoch": epoch + 1,
                    "phase": phase,
                    "train_loss": stats["loss"],
                    "train_acc": stats["acc"],
                    "val_loss": val["loss"],
                    "val_acc": val["acc"],
                    "lr": lr,
                    "images_per_s": stats["images_per_s"],
                    "train_seconds": stats["seconds"],
                    "epoch_seconds": time.perf_counter() - epoch_start,
                    "best": improved,
                }
            )
            info.epoch, info.metrics = epoch + 1, dict(rows[-1])
            finished = early.should_stop or epoch + 1 == config.epochs
            if early.should_stop:
                stop_reason = "early_stopping"
            if improved:
                _save(t, run_dir / "best.pt", checkpoint_dict(model, info))
            _save_last(
                t,
                model,
                info,
                optimizer,
                scheduler,
                scaler,
                early,
                epoch + 1,
                None,
                stop_reason=stop_reason if finished else None,
            )
            if ctx.is_main:
                write_metrics(rows, run_dir)
            logger.info(
                "epoch %d/%d [%s] train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.3g | "
                "%.1f img/s | %.1f s%s",
                epoch + 1,
                config.epochs,
                phase,
                stats["loss"],
                stats["acc"],
                val["loss"],
                val["acc"],
                lr,
                stats["images_per_s"],
                rows[-1]["epoch_seconds"],
                "  *best*" if improved else "",
            )
            if finished:
                if early.should_stop:
                    logger.info(
                        "Early stopping: val loss has not improved for %d epochs.", config.patience
                    )
                break
            if stop.check(ctx, device):
                raise TrainingInterrupted(run_dir, epoch + 1, 0, t.steps_per_epoch, ctx.is_main)
    logger.info(
        "Best epoch %d: val loss %.4f, accuracy %.3f -> %s",
        early.best_epoch,
        early.best_loss,
        early.best_acc,
        run_dir / "best.pt",
    )
    return TrainResult(
        run_dir=run_dir,
        epochs_completed=int(info.epoch),
        best_epoch=early.best_epoch,
        best_val_loss=early.best_loss,
        best_val_acc=early.best_acc,
        stop_reason=stop_reason,
        classes=data.classes,
        is_main=ctx.is_main,
        world_size=ctx.world_size,
        warnings=warnings,
    )


def _reduce_epoch(
    ctx: DistContext, totals: EpochTotals, val: dict, device: torch.device
) -> tuple[dict, dict]:
    if ctx.enabled:
        dist_utils.all_reduce(ctx, totals.sums)
        seconds = torch.tensor([totals.seconds], dtype=torch.float64, device=device)
        totals.seconds = float(dist_utils.all_reduce(ctx, seconds, op="max").item())
        val = _eval_summary(dist_utils.all_reduce(ctx, val["sums"]))
    return _summarise(totals), val


def _save(t: _Trainer, path: Path, obj: dict) -> None:
    """Rank 0 writes obj atomically; under torchrun the ranks' weight digests are recorded first."""
    if t.ctx.enabled:
        digests = dist_utils.gather_objects(t.ctx, dist_utils.weights_digest(obj["model"]))
        obj["ddp"] = {"world_size": t.ctx.world_size, "weights_sha256": digests}
        if len(set(digests)) != 1:
            logger.error("Ranks disagree on the weights saved to %s: %s", path, digests)
    if t.ctx.is_main:
        buf = io.BytesIO()
        torch.save(obj, buf)
        atomic_write_bytes(path, buf.getvalue())


def _save_last(
    t: _Trainer,
    model: nn.Module,
    info: CheckpointInfo,
    optimizer,
    scheduler,
    scaler,
    early: EarlyStopping,
    epochs_done: int,
    totals: EpochTotals | None,
    stop_reason: str | None,
) -> None:
    rng = dist_utils.gather_objects(t.ctx, torch.get_rng_state())
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "early_stopping": early.state_dict(),
        "rng": {"torch": rng},
        "finished": stop_reason is not None,
        "stop_reason": stop_reason or "",
    }
    if totals is not None:
        # Interrupted inside epoch `epochs_done` (0-based): where to continue, and the RNG then.
        extra["resume"] = {"totals": totals.as_dict(), "rng": rng, "world_size": t.ctx.world_size}
    info.epoch = epochs_done
    _save(t, t.run_dir / "last.pt", checkpoint_dict(model, info, **extra))
