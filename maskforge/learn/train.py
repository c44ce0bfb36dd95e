"""The resumable training run: train(config) -> TrainResult, the epoch loop as named steps.

Reads top down like torchvision's classification reference: set up the process and the run
folder (train), then the inputs, model and optimiser or their state from last.pt (_Run.fit),
then per epoch train, validate, step the schedule, save checkpoints and metrics (_Run._loop).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from maskforge import __version__
from maskforge.choices import DEFAULT_IMG_SIZE
from maskforge.learn import distributed as dist_utils
from maskforge.learn import runs
from maskforge.learn.config import RESUME_OVERRIDES, TrainConfig, resume_config
from maskforge.learn.devices import amp_dtype_for, resolve_device
from maskforge.learn.distributed import DistContext
from maskforge.learn.inputs import TrainInputs
from maskforge.learn.loaders import TrainingData, default_workers, load_training_data
from maskforge.learn.logs import logger, logger_state, start_logging, stop_logging
from maskforge.learn.loop import (
    EpochTotals,
    identity,
    make_loss,
    train_one_epoch,
    val_summary,
    validate_epoch,
)
from maskforge.learn.models import (
    CheckpointInfo,
    head_module,
    num_outputs_for,
    read_checkpoint,
    resolve_weights,
)
from maskforge.learn.state import TrainState, rng_states, save_checkpoint, set_rng_state
from maskforge.learn.stopping import StopRequest, TrainingInterrupted

# maskforge.commands.train imports all of these but TrainResult from here (re-exported).
__all__ = [
    "RESUME_OVERRIDES",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "resume_config",
    "train",
]


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

    resume=True continues run_dir from its last.pt (config from resume_config). The run folder
    is held for the whole run (runs.held_run_dir): another command on it is refused before
    anything is written. Under torchrun (WORLD_SIZE > 1) every process calls this; rank 0 holds
    and writes the run folder. on_start(run_dir)
    is called on rank 0 once the folder exists; on_step(epoch, step) after every training step.
    Raises TrainingInterrupted after saving last.pt when stopped by Ctrl-C or SIGTERM.
    """
    device = resolve_device(config.device)
    ctx = dist_utils.init_distributed(device.type)
    log_state = logger_state()
    with ExitStack() as held:  # rank 0 holds the run folder until the last line is logged
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
            run_dir = _hold_run_dir(ctx, held, run_dir, runs_root, config.arch, resume)
            start_logging(run_dir, ctx)
            if ctx.is_main and on_start is not None:
                on_start(run_dir)
            devices = [device] if device.type == "cuda" else []
            # Training seeds torch's global generator (dropout, initialisation); the caller's
            # is kept.
            with torch.random.fork_rng(devices=devices, device_type="cuda"):
                return _Run(config, data, run_dir, device, ctx, on_step).fit(resume)
        finally:
            stop_logging(log_state)
            dist_utils.close(ctx)


def _hold_run_dir(
    ctx: DistContext,
    held: ExitStack,
    run_dir: Path | None,
    runs_root: Path,
    arch: str,
    resume: bool,
) -> Path:
    """Rank 0 takes the run folder and holds it in `held` (runs.held_run_dir: a second command
    on it is refused before anything is written); every rank gets its path, or raises rank 0's
    error, so that no rank waits for a run that does not start."""
    error = None
    if ctx.is_main:
        try:
            run_dir = held.enter_context(runs.held_run_dir(run_dir, runs_root, arch, resume))
        except Exception as exc:  # noqa: BLE001 - raised below, once every rank has heard
            error = exc
    path, message = dist_utils.broadcast_object(
        ctx, (str(run_dir), None if error is None else str(error))
    )
    if error is not None:
        raise error
    if message is not None:
        raise ValueError(message)
    return Path(path)


def _check_resume_inputs(run_dir: Path, data: TrainingData) -> None:
    before = runs.read_run_config(run_dir).get("data", {}).get("manifest_sha256", {})
    for split in ("train", "val"):
        if before.get(split) and before[split] != data.digests[split]:
            raise ValueError(
                f"Cannot resume {run_dir}: {data.manifests / (split + '.csv')} changed since the "
                "run started; start a new run instead."
            )


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


class _Run:
    """One training run: inputs, model and optimiser state, the epoch loop, checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        run_dir: Path,
        device: torch.device,
        ctx: DistContext,
        on_step: Callable[[int, int], None] | None,
    ):
        self.config, self.data, self.run_dir = config, data, run_dir
        self.device, self.ctx, self.on_step = device, ctx, on_step
        self.cuda = device.type == "cuda"
        self.amp_dtype = amp_dtype_for(device, config.amp)
        self.workers = config.workers
        if self.workers is None:
            self.workers = default_workers(device.type, ctx.local_world_size)
        self.num_outputs = num_outputs_for(data.classes)
        self.loss_fn = make_loss(self.num_outputs)
        n_shard = -(-len(data.train) // ctx.world_size)
        if n_shard < 2:
            raise ValueError(f"train.csv has {len(data.train)} image(s); need 2 per process.")
        self.batch_size = min(config.batch_size, n_shard)
        self.steps_per_epoch = n_shard // self.batch_size
        self.inputs = TrainInputs(
            config,
            data,
            ctx,
            device,
            workers=self.workers,
            batch_size=self.batch_size,
            amp_dtype=self.amp_dtype,
        )
        self.ddp: dict[str, nn.Module] = {}
        self.warnings: list[str] = []

    def fit(self, resume: bool) -> TrainResult:
        """Set up (or restore) and train to the end, early stopping, or an interruption."""
        checkpoint = self._read_last() if resume else None
        weights = "none" if checkpoint is not None else self._initial_weights()
        self._log_start(resume)
        self.inputs.build_caches()
        info = self._checkpoint_info(weights)
        self.state = TrainState.build(
            self.config, self.num_outputs, weights, self.device, self.amp_dtype, info
        )
        start_epoch, partial, rows = 0, None, []
        if checkpoint is not None:
            start_epoch, partial, rows = self._restore(checkpoint)
        elif self.ctx.is_main:
            runs.write_run_config(self.run_dir, info.config)
        self._log_setup(weights if checkpoint is None else "from last.pt")
        stop_reason = self._loop(start_epoch, partial, rows)
        return self._result(stop_reason)

    # -- set-up

    def _read_last(self) -> dict | None:
        """The run's last.pt to continue from (None when there is none yet)."""
        last = self.run_dir / "last.pt"
        checkpoint = read_checkpoint(last) if last.is_file() else None
        if checkpoint is not None and checkpoint.get("finished"):
            raise ValueError(
                f"{self.run_dir} already finished ({checkpoint.get('stop_reason') or 'completed'} "
                f"after epoch {checkpoint['epoch']}); nothing to resume. Start a new run, e.g. "
                f"with --weights {self.run_dir / 'best.pt'}."
            )
        return checkpoint

    def _initial_weights(self) -> str:
        # Rank 0 resolves "auto" (and may download); every rank then uses its answer.
        weights, warning = (None, None)
        if self.ctx.is_main:
            weights, warning = resolve_weights(self.config.arch, self.config.weights)
        if warning:
            self._warn(warning)
        weights = dist_utils.broadcast_object(self.ctx, weights)
        if weights == "none" and self.config.freeze_backbone:
            self._warn(
                "WARNING: --freeze-backbone with random initial weights trains only the last layer "
                "on random features; expect poor accuracy (use ImageNet weights or a checkpoint)."
            )
        return weights

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning(message)

    def _log_start(self, resume: bool) -> None:
        logger.info("%s run folder %s", "Resuming" if resume else "New", self.run_dir)
        weighted = (self.inputs.weights["train"] != 1).any()
        logger.info(
            "Manifests %s: train %d images, val %d; classes %s%s",
            self.data.manifests,
            len(self.data.train),
            len(self.data.val),
            ", ".join(self.data.classes),
            "; per-sample weights from the manifest" if weighted else "",
        )

    def _checkpoint_info(self, weights: str) -> CheckpointInfo:
        """What every checkpoint records; its config is config.json (the data section added)."""
        c, mean, std = self.config, self.inputs.mean, self.inputs.std
        amp = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "fp32"
        data = {
            "classes": self.data.classes,
            "mean": mean,
            "std": std,
            "manifest_sha256": self.data.digests,
            "weights_resolved": weights,
            "batch_size_effective": self.batch_size,
            "world_size": self.ctx.world_size,
            "workers": self.workers,
            "amp": amp,
            "device": str(self.device),
        }
        return CheckpointInfo(
            arch=c.arch,
            classes=self.data.classes,
            img_size=c.img_size,
            mean=mean,
            std=std,
            manifests=self.data.digests,
            config={
                **c.to_dict(),
                "data": data,
                "maskforge_version": __version__,
                "torch_version": str(torch.__version__),
            },
        )

    def _restore(self, checkpoint: dict) -> tuple[int, dict | None, list[dict]]:
        """Load last.pt's state -> (epochs done, where to go on inside the next, metrics rows)."""
        self.state.restore(checkpoint)
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
        c, data = self.config, self.state.info.config["data"]
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

    # -- the loop

    def _loop(self, start_epoch: int, partial: dict | None, rows: list[dict]) -> str:
        """Epochs start_epoch.. until the last or early stopping -> the stop reason."""
        c, ctx = self.config, self.ctx
        stop_reason = "completed"
        with StopRequest() as stop:
            for epoch in range(start_epoch, c.epochs):
                epoch_start = time.perf_counter()
                phase = c.phase(epoch)
                totals = self._start_epoch(epoch, partial)
                partial = None
                self._train_epoch(epoch, phase, totals, stop)
                if stop.requested and totals.step < self.steps_per_epoch:
                    self._save_last(epoch, totals, stop_reason=None)
                    raise self._interrupted(epoch, totals.step)
                val = self._validate(phase)
                row = self._end_epoch(epoch, phase, totals, val, epoch_start)
                rows.append(row)
                if self.state.early.should_stop:
                    stop_reason = "early_stopping"
                finished = self.state.early.should_stop or epoch + 1 == c.epochs
                self._save_epoch(row, rows, stop_reason if finished else None)
                self._log_epoch(row)
                if finished:
                    break
                if stop.check(ctx, self.device):
                    raise self._interrupted(epoch + 1, 0)
        return stop_reason

    def _start_epoch(self, epoch: int, partial: dict | None) -> EpochTotals:
        """Totals to add to: an interrupted epoch's (RNG state restored), else new and seeded."""
        if partial is not None:
            totals = EpochTotals.from_dict(partial["totals"][self.ctx.rank], self.device)
            set_rng_state(self.ctx, self.device, partial["rng"], partial.get("cuda_rng"))
            return totals
        totals = EpochTotals.zeros(self.device)
        torch.manual_seed(_epoch_seed(self.config.seed, epoch, self.ctx.rank))
        return totals

    def _train_epoch(self, epoch: int, phase: str, totals: EpochTotals, stop: StopRequest) -> None:
        """The epoch's training steps after totals.step: the head on features, or the network."""
        skip = totals.step * self.batch_size
        if phase == "frozen":
            batches = self.inputs.train_features(self.state.model, epoch, skip)
            trainable = self._wrap(phase, head_module(self.state.model))
            prepare, amp_dtype = identity, None
        else:
            batches = self.inputs.train_images(epoch, skip)
            trainable = self._wrap(phase, self.state.model)
            prepare, amp_dtype = self.inputs.prepare_images, self.amp_dtype
        bar = tqdm(
            batches,
            total=self.steps_per_epoch,
            initial=totals.step,
            leave=False,
            unit="batch",
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=None if self.ctx.is_main else True,
        )
        on_step = functools.partial(self.on_step, epoch) if self.on_step else None
        train_one_epoch(
            trainable,
            bar,
            self.state.optimizer,
            self.device,
            loss_fn=self.loss_fn,
            prepare=prepare,
            totals=totals,
            amp_dtype=amp_dtype,
            scaler=self.state.scaler,
            stop=stop,
            ctx=self.ctx,
            on_step=on_step,
        )
        bar.close()
        dist_utils.broadcast_buffers(self.ctx, self.state.model)

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

    def _validate(self, phase: str) -> dict:
        # The unwrapped module: DDP's forward would broadcast buffers on every batch.
        if phase == "frozen":
            head = head_module(self.state.model)
            return validate_epoch(
                head, self.inputs.val_features(), self.device, loss_fn=self.loss_fn
            )
        return validate_epoch(
            self.state.model,
            self.inputs.val_images(),
            self.device,
            loss_fn=self.loss_fn,
            prepare=self.inputs.prepare_images,
            amp_dtype=self.amp_dtype,
        )

    def _end_epoch(
        self, epoch: int, phase: str, totals: EpochTotals, val: dict, epoch_start: float
    ) -> dict:
        """Totals over ranks, the schedule's step and early stopping -> the metrics.csv row."""
        ctx = self.ctx
        if ctx.enabled:
            dist_utils.all_reduce(ctx, totals.sums)
            seconds = torch.tensor([totals.seconds], dtype=torch.float64, device=self.device)
            totals.seconds = float(dist_utils.all_reduce(ctx, seconds, op="max").item())
            val = val_summary(dist_utils.all_reduce(ctx, val["sums"]))
        stats = totals.summary()
        if not math.isfinite(stats["loss"]):
            raise ValueError(
                f"Training diverged (train loss {stats['loss']} in epoch {epoch + 1}); "
                "try a lower --lr."
            )
        lr = self.state.optimizer.param_groups[0]["lr"]
        if self.state.scheduler is not None:
            self.state.scheduler.step()
        improved = self.state.early.update(val["loss"], val["acc"], epoch + 1)
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

    def _save_epoch(self, row: dict, rows: list[dict], stop_reason: str | None) -> None:
        """best.pt when the epoch is the best so far, last.pt, metrics.csv and curves.png."""
        self.state.info.epoch, self.state.info.metrics = row["epoch"], dict(row)
        if row["best"]:
            save_checkpoint(self.ctx, self.run_dir / "best.pt", self.state.best_checkpoint())
        self._save_last(row["epoch"], None, stop_reason=stop_reason)
        if self.ctx.is_main:
            runs.write_metrics(rows, self.run_dir)

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

    def _interrupted(self, epoch: int, step: int) -> TrainingInterrupted:
        return TrainingInterrupted(
            self.run_dir, epoch, step, self.steps_per_epoch, self.ctx.is_main
        )

    def _result(self, stop_reason: str) -> TrainResult:
        e = self.state.early
        if stop_reason == "early_stopping":
            logger.info("Early stopping: no lower val loss for %d epochs.", self.config.patience)
        logger.info(
            "Best epoch %d: val loss %.4f, accuracy %.3f -> %s",
            e.best_epoch,
            e.best_loss,
            e.best_acc,
            self.run_dir / "best.pt",
        )
        return TrainResult(
            run_dir=self.run_dir,
            epochs_completed=int(self.state.info.epoch),
            best_epoch=e.best_epoch,
            best_val_loss=e.best_loss,
            best_val_acc=e.best_acc,
            stop_reason=stop_reason,
            classes=self.data.classes,
            is_main=self.ctx.is_main,
            world_size=self.ctx.world_size,
            warnings=self.warnings,
        )

    # -- checkpoints

    def _save_last(
        self, epochs_done: int, totals: EpochTotals | None, stop_reason: str | None
    ) -> None:
        """last.pt after epochs_done epochs, or inside epoch epochs_done (0-based) with totals."""
        rng = rng_states(self.ctx, self.device)
        resume = None
        if totals is not None:
            # Interrupted inside epoch `epochs_done` (0-based): where to go on, with which RNG.
            per_rank = dist_utils.gather_objects(self.ctx, totals.as_dict())
            resume = {
                "totals": per_rank,
                "rng": rng["torch"],
                "cuda_rng": rng["cuda"],
                "world_size": self.ctx.world_size,
            }
        self.state.info.epoch = epochs_done
        checkpoint = self.state.last_checkpoint(rng, stop_reason, resume)
        save_checkpoint(self.ctx, self.run_dir / "last.pt", checkpoint)
