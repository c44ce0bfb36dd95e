"""Training: the config, one epoch of training / evaluation, early stopping, the resumable run."""

from __future__ import annotations

import functools
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from maskforge import __version__
from maskforge.choices import DEFAULT_IMG_SIZE, OPTIMIZERS, SCHEDULERS
from maskforge.learn import distributed as dist_utils
from maskforge.learn import runs
from maskforge.learn.data import TrainingData, load_training_data
from maskforge.learn.devices import DEVICES, amp_dtype_for, autocast, resolve_device
from maskforge.learn.distributed import DistContext
from maskforge.learn.models import (
    ARCHS,
    CheckpointInfo,
    build_model,
    checkpoint_dict,
    head_module,
    num_outputs_for,
    read_checkpoint,
    resolve_weights,
)

# Settings that may differ when a run is resumed: they change speed, not results.
RESUME_OVERRIDES = ("workers", "device", "cache_dir")
SINGLE_PROCESS = DistContext()

logger = logging.getLogger("maskforge.learn.train")
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, class indices, sample weights


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
        """The config stored in a config.json (other keys, e.g. the data section, ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def phase(self, epoch: int) -> str:
        """'frozen' (head on cached features) or 'full' (whole network) for a 0-based epoch."""
        if self.freeze_backbone and (self.unfreeze_after is None or epoch < self.unfreeze_after):
            return "frozen"
        return "full"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
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


# --- one epoch ----------------------------------------------------------------------------------


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


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = _identity,
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
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    *,
    loss_fn: Callable,
    prepare: Callable[[torch.Tensor], torch.Tensor] = _identity,
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
    return eval_summary(sums)


def eval_summary(sums: torch.Tensor) -> dict:
    """loss, acc, count from the (loss sum, correct, count) sums of evaluate."""
    loss_sum, correct, count = sums.tolist()
    return {
        "loss": loss_sum / count if count else float("nan"),
        "acc": correct / count if count else float("nan"),
        "count": int(count),
        "sums": sums,
    }


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


def build_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over params.

    Parameters without a gradient (a frozen backbone) are skipped by the step, so one optimizer
    serves both the frozen and the fine-tuning phase.
    """
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


# --- the run ------------------------------------------------------------------------------------


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
    log_state = (logger.propagate, logger.level, list(logger.handlers))
    try:
        if device.type == "cuda":
            index = ctx.local_rank if ctx.enabled else torch.cuda.current_device()
            device = torch.device("cuda", index)
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
                runs.claim_run_dir(run_dir) if run_dir else runs.new_run_dir(runs_root, config.arch)
            )
        run_dir = Path(dist_utils.broadcast_object(ctx, str(run_dir)))
        _start_logging(run_dir, ctx)
        if ctx.is_main and on_start is not None:
            on_start(run_dir)
        devices = [device] if device.type == "cuda" else []
        # Training seeds torch's global generator (dropout, initialisation); the caller's is kept.
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            return _Run(config, data, run_dir, device, ctx, on_step).fit(resume)
    finally:
        for handler in set(logger.handlers) - set(log_state[2]):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = log_state[0]
        logger.setLevel(log_state[1])
        dist_utils.close(ctx)


def _check_resume_inputs(run_dir: Path, data: TrainingData) -> None:
    before = runs.read_run_config(run_dir).get("data", {}).get("manifest_sha256", {})
    for split in ("train", "val"):
        if before.get(split) and before[split] != data.digests[split]:
            raise ValueError(
                f"Cannot resume {run_dir}: {data.manifests / (split + '.csv')} changed since the "
                "run started; start a new run instead."
            )


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def _start_logging(run_dir: Path, ctx: DistContext) -> None:
    # Rank 0 logs to train.log and the console (through tqdm, so bars stay intact).
    logger.propagate = False
    if not ctx.is_main:
        logger.setLevel(logging.ERROR)
        return
    logger.setLevel(logging.INFO)
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(file_handler)
    logger.addHandler(console)


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


class _Run:
    """One training run: data, model and optimiser state, the epoch loop, checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        run_dir: Path,
        device: torch.device,
        ctx: DistContext,
        on_step: Callable[[int, int], None] | None,
    ):
        from maskforge.learn.data import default_workers

        self.config, self.data, self.run_dir = config, data, run_dir
        self.device, self.ctx, self.on_step = device, ctx, on_step
        self.cuda = device.type == "cuda"
        self.amp_dtype = amp_dtype_for(device, config.amp)
        self.workers = config.workers
        if self.workers is None:
            self.workers = default_workers(device.type, ctx.local_world_size)
        self.targets = {"train": data.targets("train"), "val": data.targets("val")}
        self.weights = {
            "train": data.train["weight"].to_numpy(np.float32),
            "val": np.ones(len(data.val), np.float32),  # validation loss is unweighted
        }
        self.num_outputs = num_outputs_for(data.classes)
        self.loss_fn = make_loss(self.num_outputs)
        n_shard = -(-len(data.train) // ctx.world_size)
        if n_shard < 2:
            raise ValueError(f"train.csv has {len(data.train)} image(s); need 2 per process.")
        self.batch_size = min(config.batch_size, n_shard)
        self.steps_per_epoch = n_shard // self.batch_size
        self.features: dict[str, torch.Tensor] = {}
        self.loaders: dict[str, torch.utils.data.DataLoader] = {}
        self.ddp: dict[str, nn.Module] = {}
        self.warnings: list[str] = []

    # -- set-up

    def fit(self, resume: bool) -> TrainResult:
        """Set up (or restore) and train to the end, early stopping, or an interruption."""
        last = self.run_dir / "last.pt"
        checkpoint = read_checkpoint(last) if resume and last.is_file() else None
        if checkpoint is not None and checkpoint.get("finished"):
            raise ValueError(
                f"{self.run_dir} already finished ({checkpoint.get('stop_reason') or 'completed'} "
                f"after epoch {checkpoint['epoch']}); nothing to resume. Start a new run, e.g. "
                f"with --weights {self.run_dir / 'best.pt'}."
            )
        weights = "none" if checkpoint is not None else self._resolve_weights()
        if weights == "none" and checkpoint is None and self.config.freeze_backbone:
            self._warn(
                "WARNING: --freeze-backbone with random initial weights trains only the last layer "
                "on random features; expect poor accuracy (use ImageNet weights or a checkpoint)."
            )
        logger.info("%s run folder %s", "Resuming" if resume else "New", self.run_dir)
        logger.info(
            "Manifests %s: train %d images, val %d; classes %s%s",
            self.data.manifests,
            len(self.data.train),
            len(self.data.val),
            ", ".join(self.data.classes),
            "; per-sample weights from the manifest" if (self.weights["train"] != 1).any() else "",
        )
        self._build_caches()
        self._build_model(weights)
        start_epoch, partial, rows = 0, None, []
        if checkpoint is not None:
            start_epoch, partial, rows = self._restore(checkpoint)
        elif self.ctx.is_main:
            runs.write_run_config(self.run_dir, self.info.config)
        self._log_setup(weights if checkpoint is None else "from last.pt")
        return self._loop(start_epoch, partial, rows)

    def _resolve_weights(self) -> str:
        # Rank 0 resolves "auto" (and may download); every rank then uses its answer.
        weights, warning = (None, None)
        if self.ctx.is_main:
            weights, warning = resolve_weights(self.config.arch, self.config.weights)
        if warning:
            self._warn(warning)
        return dist_utils.broadcast_object(self.ctx, weights)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning(message)

    def _build_caches(self) -> None:
        from maskforge.learn.data import build_caches, cache_mean_std, train_cache_size

        c, img, ctx = self.config, self.config.img_size, self.ctx
        augmented = not c.freeze_backbone or c.unfreeze_after is not None
        plain = c.freeze_backbone or self.data.mean is None
        sizes = ([train_cache_size(img)] if augmented else []) + ([img] if plain else [])
        threads, progress = max(2, self.workers), None if ctx.is_main else False
        paths = {split: list(getattr(self.data, split)["abspath"]) for split in ("train", "val")}

        def build() -> dict[str, dict[int, Path]]:
            return {
                "train": build_caches(
                    paths["train"],
                    sizes,
                    Path(c.cache_dir),
                    workers=threads,
                    name="train.csv",
                    progress=progress,
                ),
                "val": build_caches(
                    paths["val"],
                    [img],
                    Path(c.cache_dir),
                    workers=threads,
                    name="val.csv",
                    progress=progress,
                ),
            }

        # Rank 0 decodes; the others then find the files (shared storage) or build their own.
        if ctx.is_main:
            self.caches = build()
        dist_utils.barrier(ctx)
        if not ctx.is_main:
            self.caches = build()
        if self.data.mean is None:
            self.mean, self.std = cache_mean_std(self.caches["train"][img])
            source = "computed from the train images (no stats.json)"
        else:
            self.mean, self.std = self.data.mean, self.data.std
            source = "from stats.json"
        logger.info("Normalisation %s: mean %s std %s", source, _fmt(self.mean), _fmt(self.std))
        self.mean_t = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self.std_t = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    def _build_model(self, weights: str) -> None:
        c = self.config
        torch.manual_seed(c.seed)
        self.model = build_model(c.arch, self.num_outputs, weights).to(self.device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        params = self.model.parameters()
        self.optimizer = build_optimizer(c.optimizer, params, c.lr, c.momentum, c.weight_decay)
        self.scheduler = build_scheduler(c.scheduler, self.optimizer, c.epochs)
        fp16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.early = EarlyStopping(c.patience)
        amp = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "fp32"
        data = {
            "classes": self.data.classes,
            "mean": self.mean,
            "std": self.std,
            "manifest_sha256": self.data.digests,
            "weights_resolved": weights,
            "batch_size_effective": self.batch_size,
            "world_size": self.ctx.world_size,
            "workers": self.workers,
            "amp": amp,
            "device": str(self.device),
        }
        self.info = CheckpointInfo(
            arch=c.arch,
            classes=self.data.classes,
            img_size=c.img_size,
            mean=self.mean,
            std=self.std,
            manifests=self.data.digests,
            config={
                **c.to_dict(),
                "data": data,
                "maskforge_version": __version__,
                "torch_version": str(torch.__version__),
            },
        )

    def _restore(self, checkpoint: dict) -> tuple[int, dict | None, list[dict]]:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None and checkpoint.get("scheduler"):
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.early = EarlyStopping(**checkpoint["early_stopping"])
        self.info.config = checkpoint.get("config", self.info.config)
        epochs_done = int(checkpoint["epoch"])
        partial = checkpoint.get("resume")
        if partial and int(partial["world_size"]) != self.ctx.world_size:
            logger.warning(
                "Resumed with %d processes instead of %d: epoch %d restarts from its first batch.",
                self.ctx.world_size,
                partial["world_size"],
                epochs_done + 1,
            )
            partial = None
        where = f", batch {partial['totals'][0]['step']}/{self.steps_per_epoch}" if partial else ""
        logger.info("Resuming after epoch %d%s", epochs_done, where)
        return epochs_done, partial, runs.read_metrics(self.run_dir, epochs_done)

    def _log_setup(self, weights: str) -> None:
        c, data = self.config, self.info.config["data"]
        logger.info(
            "Model %s (outputs: %d, weights: %s) on %s, %s%s; %d process(es), %d loader worker(s)",
            c.arch,
            self.num_outputs,
            weights,
            self.device,
            data["amp"],
            ", channels_last" if self.cuda else "",
            self.ctx.world_size,
            self.workers,
        )
        logger.info(
            "%s lr %g, %s schedule, batch %d, up to %d epochs, patience %d, img %d px, seed %d",
            c.optimizer.upper(),
            c.lr,
            c.scheduler,
            self.batch_size,
            c.epochs,
            c.patience,
            c.img_size,
            c.seed,
        )

    # -- data for one epoch

    def _prepare_images(self, batch: torch.Tensor) -> torch.Tensor:
        from maskforge.learn.data import to_model_input

        return to_model_input(batch, self.mean_t, self.std_t, channels_last=self.cuda)

    def _loader(self, split: str) -> torch.utils.data.DataLoader:
        from maskforge.learn.data import (
            CachedImages,
            EpochSampler,
            ShardSampler,
            make_loader,
            train_cache_size,
            train_transform,
        )

        if split not in self.loaders:
            c, ctx, img = self.config, self.ctx, self.config.img_size
            if split == "train":
                cache = self.caches["train"][train_cache_size(img)]
                dataset = CachedImages(
                    cache,
                    self.targets["train"],
                    self.weights["train"],
                    train_transform(img),
                    seed=c.seed,
                )
                sampler = EpochSampler(
                    len(dataset),
                    shuffle=True,
                    seed=c.seed,
                    rank=ctx.rank,
                    world_size=ctx.world_size,
                )
                size, drop_last = self.batch_size, True
            else:
                dataset = CachedImages(self.caches[split][img], self.targets[split])
                sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
                size, drop_last = 2 * self.batch_size, False
            self.loaders[split] = make_loader(
                dataset,
                sampler,
                size,
                drop_last=drop_last,
                workers=self.workers,
                pin_memory=self.cuda,
            )
        return self.loaders[split]

    def _features(self) -> None:
        """Backbone features of the un-augmented train and val images (every rank holds all)."""
        from maskforge.learn.data import CachedImages, ShardSampler, make_loader
        from maskforge.learn.features import extract_features

        if self.features:
            return
        ctx, img = self.ctx, self.config.img_size
        for split in ("train", "val"):
            dataset = CachedImages(self.caches[split][img], self.targets[split])
            sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
            loader = make_loader(
                dataset,
                sampler,
                2 * self.batch_size,
                drop_last=False,
                workers=self.workers,
                pin_memory=self.cuda,
            )
            bar = tqdm(
                loader,
                desc=f"features ({split})",
                unit="batch",
                leave=False,
                disable=None if ctx.is_main else True,
            )
            local = extract_features(
                self.model,
                bar,
                self.device,
                prepare=self._prepare_images,
                img_size=img,
                amp_dtype=self.amp_dtype,
            )
            self.features[split] = dist_utils.gather_strided(ctx, local, len(dataset))
        shape = tuple(self.features["train"].shape)
        logger.info(
            "Cached backbone features: %d x %d (train), %d (val)", *shape, len(self.features["val"])
        )

    def _feature_batches(self, split: str, order: torch.Tensor) -> Iterable[Batch]:
        from maskforge.learn.features import feature_batches

        targets = torch.from_numpy(self.targets[split])
        weights = torch.from_numpy(self.weights[split])
        train = split == "train"
        size = self.batch_size if train else 2 * self.batch_size
        return feature_batches(self.features[split], targets, weights, order, size, drop_last=train)

    def _wrap(self, phase: str, module: nn.Module) -> nn.Module:
        """module, or under torchrun a DistributedDataParallel around it (one per phase)."""
        if not self.ctx.enabled:
            return module
        if phase not in self.ddp:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp.clear()  # the frozen phase's wrapper (and its gradient hooks) is done with
            ids = [self.device.index] if self.cuda else None
            self.ddp[phase] = DistributedDataParallel(
                module, device_ids=ids, gradient_as_bucket_view=True
            )
        return self.ddp[phase]

    # -- the loop

    def _loop(self, start_epoch: int, partial: dict | None, rows: list[dict]) -> TrainResult:
        from maskforge.learn.data import EpochSampler

        c, ctx, device = self.config, self.ctx, self.device
        sampler = EpochSampler(
            len(self.data.train),
            shuffle=True,
            seed=c.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        stop_reason = "completed"
        with StopRequest() as stop:
            for epoch in range(start_epoch, c.epochs):
                epoch_start = time.perf_counter()
                phase = c.phase(epoch)
                if partial is not None:
                    totals = EpochTotals.from_dict(partial["totals"][ctx.rank], device)
                    self._set_rng_state(partial["rng"], partial.get("cuda_rng"))
                    partial = None
                else:
                    totals = EpochTotals.zeros(device)
                    torch.manual_seed(_epoch_seed(c.seed, epoch, ctx.rank))
                skip = totals.step * self.batch_size
                if phase == "frozen":
                    self._features()
                    sampler.set_epoch(epoch, skip)
                    order = torch.tensor(sampler.indices(), dtype=torch.long)
                    batches = self._feature_batches("train", order)
                    trainable = self._wrap(phase, head_module(self.model))
                    prepare, amp_dtype = _identity, None
                else:
                    batches = self._loader("train")
                    batches.sampler.set_epoch(epoch, skip)
                    trainable = self._wrap(phase, self.model)
                    prepare, amp_dtype = self._prepare_images, self.amp_dtype
                bar = tqdm(
                    batches,
                    total=self.steps_per_epoch,
                    initial=totals.step,
                    leave=False,
                    unit="batch",
                    desc=f"epoch {epoch + 1}/{c.epochs}",
                    disable=None if ctx.is_main else True,
                )
                on_step = functools.partial(self.on_step, epoch) if self.on_step else None
                train_one_epoch(
                    trainable,
                    bar,
                    self.optimizer,
                    device,
                    loss_fn=self.loss_fn,
                    prepare=prepare,
                    totals=totals,
                    amp_dtype=amp_dtype,
                    scaler=self.scaler,
                    stop=stop,
                    ctx=ctx,
                    on_step=on_step,
                )
                bar.close()
                dist_utils.broadcast_buffers(ctx, self.model)
                if stop.requested and totals.step < self.steps_per_epoch:
                    self._save_last(epoch, totals, stop_reason=None)
                    raise TrainingInterrupted(
                        self.run_dir, epoch, totals.step, self.steps_per_epoch, ctx.is_main
                    )
                val = self._validate(phase)
                row = self._end_epoch(epoch, phase, totals, val, epoch_start)
                rows.append(row)
                finished = self.early.should_stop or epoch + 1 == c.epochs
                if self.early.should_stop:
                    stop_reason = "early_stopping"
                self.info.epoch, self.info.metrics = epoch + 1, dict(row)
                if row["best"]:
                    self._save(self.run_dir / "best.pt", checkpoint_dict(self.model, self.info))
                self._save_last(epoch + 1, None, stop_reason=stop_reason if finished else None)
                if ctx.is_main:
                    runs.write_metrics(rows, self.run_dir)
                self._log_epoch(row)
                if finished:
                    break
                if stop.check(ctx, device):
                    raise TrainingInterrupted(
                        self.run_dir, epoch + 1, 0, self.steps_per_epoch, ctx.is_main
                    )
        e = self.early
        if stop_reason == "early_stopping":
            logger.info("Early stopping: no lower val loss for %d epochs.", c.patience)
        logger.info(
            "Best epoch %d: val loss %.4f, accuracy %.3f -> %s",
            e.best_epoch,
            e.best_loss,
            e.best_acc,
            self.run_dir / "best.pt",
        )
        return TrainResult(
            run_dir=self.run_dir,
            epochs_completed=int(self.info.epoch),
            best_epoch=e.best_epoch,
            best_val_loss=e.best_loss,
            best_val_acc=e.best_acc,
            stop_reason=stop_reason,
            classes=self.data.classes,
            is_main=ctx.is_main,
            world_size=ctx.world_size,
            warnings=self.warnings,
        )

    def _validate(self, phase: str) -> dict:
        # The unwrapped module: DDP's forward would broadcast buffers on every batch.
        if phase == "frozen":
            ctx, n = self.ctx, len(self.data.val)
            order = torch.arange(ctx.rank, n, ctx.world_size)
            head = head_module(self.model)
            return evaluate(
                head, self._feature_batches("val", order), self.device, loss_fn=self.loss_fn
            )
        return evaluate(
            self.model,
            self._loader("val"),
            self.device,
            loss_fn=self.loss_fn,
            prepare=self._prepare_images,
            amp_dtype=self.amp_dtype,
        )

    def _end_epoch(
        self, epoch: int, phase: str, totals: EpochTotals, val: dict, epoch_start: float
    ) -> dict:
        ctx = self.ctx
        if ctx.enabled:
            dist_utils.all_reduce(ctx, totals.sums)
            seconds = torch.tensor([totals.seconds], dtype=torch.float64, device=self.device)
            totals.seconds = float(dist_utils.all_reduce(ctx, seconds, op="max").item())
            val = eval_summary(dist_utils.all_reduce(ctx, val["sums"]))
        stats = totals.summary()
        if not math.isfinite(stats["loss"]):
            raise ValueError(
                f"Training diverged (train loss {stats['loss']} in epoch {epoch + 1}); "
                "try a lower --lr."
            )
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()
        improved = self.early.update(val["loss"], val["acc"], epoch + 1)
        return {
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

    def _log_epoch(self, row: dict) -> None:
        logger.info(
            "epoch %d/%d [%s] train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.3g | "
            "%.1f img/s | %.1f s%s",
            row["epoch"],
            self.config.epochs,
            row["phase"],
            row["train_loss"],
            row["train_acc"],
            row["val_loss"],
            row["val_acc"],
            row["lr"],
            row["images_per_s"],
            row["epoch_seconds"],
            "  *best*" if row["best"] else "",
        )

    # -- checkpoints

    def _save(self, path: Path, checkpoint: dict) -> None:
        """Rank 0 writes; under torchrun every rank's weight digest is recorded first."""
        if self.ctx.enabled:
            mine = dist_utils.weights_digest(checkpoint["model"])
            digests = dist_utils.gather_objects(self.ctx, mine)
            checkpoint["ddp"] = {"world_size": self.ctx.world_size, "weights_sha256": digests}
            if len(set(digests)) != 1:
                logger.error("Ranks disagree on the weights saved to %s: %s", path, digests)
        if self.ctx.is_main:
            runs.write_checkpoint(path, checkpoint)

    def _set_rng_state(self, cpu: list[torch.Tensor], cuda: list[torch.Tensor] | None) -> None:
        torch.set_rng_state(cpu[self.ctx.rank])
        if self.cuda and cuda:
            torch.cuda.set_rng_state(cuda[self.ctx.rank], self.device)

    def _save_last(
        self, epochs_done: int, totals: EpochTotals | None, stop_reason: str | None
    ) -> None:
        # Every rank's generator state (CPU, and CUDA where dropout draws on the GPU).
        rng = dist_utils.gather_objects(self.ctx, torch.get_rng_state())
        cuda_rng = []
        if self.cuda:
            cuda_rng = dist_utils.gather_objects(self.ctx, torch.cuda.get_rng_state(self.device))
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "early_stopping": self.early.state_dict(),
            "rng": {"torch": rng, "cuda": cuda_rng},
            "finished": stop_reason is not None,
            "stop_reason": stop_reason or "",
        }
        if totals is not None:
            # Interrupted inside epoch `epochs_done` (0-based): where to go on, with which RNG.
            per_rank = dist_utils.gather_objects(self.ctx, totals.as_dict())
            extra["resume"] = {
                "totals": per_rank,
                "rng": rng,
                "cuda_rng": cuda_rng,
                "world_size": self.ctx.world_size,
            }
        self.info.epoch = epochs_done
        self._save(self.run_dir / "last.pt", checkpoint_dict(self.model, self.info, **extra))
