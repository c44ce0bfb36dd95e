"""What several commands share: option decorators, value types, and --help grouped by topic.

Imports only click and maskforge.choices at load time (the library is imported when a value is
checked or a command runs), so that `maskforge --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.formatting import measure_table

from maskforge import choices
from maskforge.commands.errors import UserError

Decorator = Callable[[Callable], Callable]

# --- --help grouped by topic


class SectionedCommand(click.Command):
    """A command whose --help lists its options under topic headings (see `section`).

    Options outside every section (--help) come last, under "Other options" ("Options" when
    there are no sections). All sections share the width of the first column, so that the help
    still reads as one table.
    """

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str | None, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):
                sections.setdefault(getattr(param, "help_section", None), []).append(record)
        other = sections.pop(None, [])
        sections["Other options" if sections else "Options"] = other
        width = _first_column(record for rows in sections.values() for record in rows)
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_spacing=2 + width - _first_column(rows))


def _first_column(rows, col_max: int = 30) -> int:
    return min(measure_table(list(rows))[0], col_max)


def section(title: str, *decorators: Decorator) -> Decorator:
    """Apply option decorators (listed top to bottom, as they would be stacked) and show the
    options they add under the heading `title` in the --help of a SectionedCommand."""

    def apply(function: Callable) -> Callable:
        before = len(getattr(function, "__click_params__", ()))
        for decorator in reversed(decorators):
            function = decorator(function)
        for param in function.__click_params__[before:]:
            param.help_section = title
        return function

    return apply


def command(name: str | None = None) -> Decorator:
    """click.command for maskforge: --help shows every option's default (options without one
    show none) and groups the options by `section`, when the command has sections."""
    return click.command(name, cls=SectionedCommand, context_settings={"show_default": True})


# --- value types


class Parsed(click.ParamType):
    """A value that a library function parses, imported when the first value is checked.

    parser: "module:function"; its ValueError (and OSError) becomes click's usage error.
    Values that are not strings (defaults already parsed) pass through.
    """

    def __init__(self, metavar: str, parser: str):
        self.name, self.parser = metavar, parser

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        module, _, function = self.parser.partition(":")
        try:
            return getattr(importlib.import_module(module), function)(value)
        except (ValueError, OSError) as exc:
            self.fail(str(exc), param, ctx)


def check_png(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Callback of --sheet options: a contact sheet is written as .png."""
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{str(value)!r}: the contact sheet is written as .png")
    return value


# --- one declaration per kind of value, so that a kind is declared and checked alike in every
# command: the commands give the flag, its bounds, default and help

FOLDER = click.Path(file_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)


def choice_option(*decls: str, among: tuple[str, ...], **attrs: Any) -> Decorator:
    """One name of a maskforge.choices vocabulary (`among`), so that every list the CLI offers
    is the library's (tests/commands/test_cli_choices.py holds them to it)."""
    return click.option(*decls, type=click.Choice(among), **attrs)


def int_option(*decls: str, low: int = 1, high: int | None = None, **attrs: Any) -> Decorator:
    """A whole number from low to high (None: no bound), checked by click before the command
    runs; low is 1 unless given, as most are counts."""
    return click.option(*decls, type=click.IntRange(low, high), **attrs)


def float_option(*decls: str, low: float = 0, high: float | None = 1, **attrs: Any) -> Decorator:
    """A number from low to high (None: no bound), checked by click before the command runs;
    0..1 unless given, as most are fractions."""
    return click.option(*decls, type=click.FloatRange(low, high), **attrs)


def flag_option(*decls: str, help: str) -> Decorator:
    """An on/off switch, off unless given (--help shows no default for it)."""
    return click.option(*decls, is_flag=True, help=help)


def switch_option(decls: str, help: str) -> Decorator:
    """A `--thing/--no-thing` switch, on unless --no-thing is given (what most runs want)."""
    return click.option(decls, default=True, help=help)


def folder_option(*decls: str, exists: bool = False, **attrs: Any) -> Decorator:
    """A folder as a Path (click refuses a file there); with exists, one that must be there."""
    kind = click.Path(exists=True, file_okay=False, path_type=Path) if exists else FOLDER
    return click.option(*decls, type=kind, **attrs)


def file_option(*decls: str, exists: bool = False, **attrs: Any) -> Decorator:
    """A file as a Path (click refuses a folder there); with exists, one that must be there."""
    kind = click.Path(exists=True, dir_okay=False, path_type=Path) if exists else FILE
    return click.option(*decls, type=kind, **attrs)


# --- options of several commands


def seed_option(help: str) -> Decorator:
    """--seed, default 0: the seed of every random choice the command makes."""
    return click.option("--seed", type=int, default=0, help=help)


def workers_option(
    help: str,
    *,
    low: int = 1,
    high: int | None = None,
    default: int | None = None,
    show_default: bool | str | None = None,
    short: bool = False,
) -> Decorator:
    """--workers (and -j with short): how many processes, between low and high."""
    flags = ("--workers", "-j") if short else ("--workers",)
    kind = click.IntRange(low, high)
    return click.option(*flags, type=kind, default=default, show_default=show_default, help=help)


# What --workers defaults to where core.parallel.default_workers() chooses.
DEFAULT_WORKERS_TEXT = f"CPU cores, at most {choices.MAX_DEFAULT_WORKERS}"


def detector_option(help: str, default: str = choices.DEFAULT_DETECTOR) -> Decorator:
    """--detector: the face detector (cascade, or one of its stages)."""
    return click.option(
        "--detector",
        type=click.Choice(choices.DETECTORS),
        default=default,
        help=help,
    )


def min_face_option(help: str, default: int = choices.MIN_FACE) -> Decorator:
    """--min-face: faces smaller than this many pixels are set aside (reported, not used)."""
    return int_option("--min-face", default=default, help=help)


def batch_size_option(help: str, default: int) -> Decorator:
    """--batch-size: images (or face crops) per step or forward pass."""
    return int_option("--batch-size", default=default, help=help)


def threshold_option(help: str, **attrs: Any) -> Decorator:
    """--threshold: the operating point on p(positive class) of a two-class model, in (0, 1)."""
    kind = click.FloatRange(0, 1, min_open=True, max_open=True)
    return click.option("--threshold", type=kind, help=help, **attrs)


def stats_size_option(help: str) -> Decorator:
    """--size of split and stats: the side images are resized to before their mean/std."""
    return int_option("--size", high=4096, default=choices.STATS_SIZE, help=help)


def sheet_option(help: str, **attrs: Any) -> Decorator:
    """--sheet: the .png file a contact sheet is written to (checked by check_png)."""
    return file_option("--sheet", callback=check_png, help=help, **attrs)


def _check_engine(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "ray":
        from maskforge.core.ray_engine import RayNotInstalledError, import_ray

        try:
            import_ray()
        except RayNotInstalledError as exc:
            raise UserError(str(exc)) from None
    return value


def engine_options(command: Callable) -> Callable:
    """--engine local|ray (checked: Ray must be importable for ray) and --address."""
    command = click.option(
        "--address",
        metavar="ADDR",
        help="With --engine ray: the Ray cluster to run on, 'auto' (the one `ray start` "
        "runs on this machine) or HOST:PORT of its head node. [default: start a local Ray "
        "with --workers CPUs for this run]",
    )(command)
    return click.option(
        "--engine",
        type=click.Choice(choices.ENGINES),
        default=choices.DEFAULT_ENGINE,
        callback=_check_engine,
        help="local: processes on this machine; ray: Ray Data actors on a Ray cluster "
        "(needs `pip install 'maskforge[ray]'`; inputs and outputs must be on storage "
        "that every node sees at the same paths).",
    )(command)


# --- a trained run: eval, predict, export

RUN_PATH = click.Path(exists=True, path_type=Path)
RUN_HELP = (
    "Run folder or .pt checkpoint.  [default: the last trained run, else the newest in runs/]"
)


def run_argument(command: Callable) -> Callable:
    """Optional RUN argument: a run folder or .pt checkpoint (default: the last trained)."""
    return click.argument("run", required=False, type=RUN_PATH)(command)


def run_option(command: Callable) -> Callable:
    """--run: a run folder or .pt checkpoint (default: the last trained)."""
    return click.option("--run", type=RUN_PATH, help=RUN_HELP)(command)


def checkpoint_option(verb: str) -> Decorator:
    """--checkpoint best|last: which checkpoint of the run to `verb` (evaluate, use, ...)."""
    return click.option(
        "--checkpoint",
        type=click.Choice(choices.CHECKPOINTS),
        default=choices.DEFAULT_CHECKPOINT,
        help=f"Which checkpoint of the run to {verb}.",
    )


def device_option(command: Callable) -> Callable:
    """--device for inference: auto, cpu, cuda or cuda:N (checked when the model is loaded)."""
    return click.option(
        "--device",
        default=choices.DEFAULT_DEVICE,
        help="auto (CUDA if available), cpu, cuda or cuda:N.",
    )(command)


# --- the folders earlier commands wrote

LAST_STEP = {"synthesize_out": "synthesize", "manifests": "split"}


def recalled(key: str) -> tuple[Path, str]:
    """The folder the last synthesize/split here wrote (key as in core.workspace), else its
    default, and where it came from: "from the last split" or "default"."""
    from maskforge.core.workspace import load_state, recall

    origin = f"from the last {LAST_STEP[key]}" if key in load_state() else "default"
    return recall(key), origin
