"""The `maskforge` command: a click group that dispatches to one module per command."""

from __future__ import annotations

import sys

import click

from maskforge import __version__
from maskforge.commands.errors import USER_ERRORS, UserError
from maskforge.core.outputs import storage_message


class MaskforgeGroup(click.Group):
    """A group that turns user-input exceptions and storage faults (a full or read-only disk,
    core.outputs) into one-line errors, exit code 2 (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\nInterrupted. Rerun the same command to resume.", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - last resort: never show a bare traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # A full or read-only disk is the user's to fix, as bad input is (exit code 2).
            storage = storage_message(exc)
            if storage is not None:
                raise UserError(storage) from None
            if isinstance(exc, USER_ERRORS):
                raise UserError(_one_line(exc)) from None
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                "(rerun with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return " ".join(text.split()) or type(exc).__name__


@click.group(cls=MaskforgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maskforge")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Turn folders of face photos into a masked-face dataset and a trained classifier.

    \b
    Typical use, in one working folder:
      maskforge synthesize raw/ out/          mask every face, write out/ + synthesis.csv
      maskforge split --ratios 0.8,0.1,0.1    leak-free train/val/test manifests + stats
      maskforge train                         train the classifier into runs/<name>/
      maskforge eval                          metrics, plots and Grad-CAM for the newest run
      maskforge preview                       contact sheet of synthetic masks

    Each command prints what it used; `maskforge COMMAND --help` explains every option.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    # Each module in maskforge/commands lists its click commands in COMMANDS; modules import
    # only click at load time so that `maskforge --help` stays fast.
    import importlib
    import pkgutil

    import maskforge.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="maskforge")
