"""`--engine local|ray` and `--address`: shared by the commands that can run on Ray."""

from __future__ import annotations

import click

from maskforge.commands.errors import UserError


def _check_engine(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "ray":
        from maskforge.core.ray_engine import RayNotInstalledError, import_ray

        try:
            import_ray()
        except RayNotInstalledError as exc:
            raise UserError(str(exc)) from None
    return value


def engine_options(command):
    """Add --engine (checked: Ray must be importable for 'ray') and --address to a command."""
    command = click.option(
        "--address",
        metavar="ADDR",
        default=None,
        help="With --engine ray: the Ray cluster to run on, 'auto' (the one `ray start` "
        "runs on this machine) or HOST:PORT of its head node. [default: start a local Ray "
        "with --workers CPUs for this run]",
    )(command)
    return click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        callback=_check_engine,
        help="local: processes on this machine; ray: Ray Data actors on a Ray cluster "
        "(needs `pip install 'maskforge[ray]'`; inputs and outputs must be on storage "
        "that every node sees at the same paths).",
    )(command)
