"""`maskforge stats`: per-channel mean/std of a manifest's images."""

from __future__ import annotations

import click

from maskforge.commands.options import (
    DEFAULT_WORKERS_TEXT,
    FILE,
    command,
    engine_options,
    file_option,
    flag_option,
    recalled,
    stats_size_option,
    workers_option,
)


@command("stats")
@click.argument("manifest", required=False, type=FILE)
@stats_size_option("Images are resized to SIZE x SIZE (area interpolation, as in training) first.")
@workers_option(
    "Processes (Ray actors with --engine ray) reading images.",
    high=256,
    show_default=f"{DEFAULT_WORKERS_TEXT}; with --address, all CPUs of the Ray cluster",
)
@flag_option(
    "--drop-missing",
    help="Leave out (and count) missing or unreadable images instead of stopping.",
)
@file_option(
    "--json",
    "json_path",
    help="Also write the result in stats.json format to this file. [default: print only]",
)
@engine_options
def stats_command(manifest, json_path, **options) -> None:
    """Per-channel (RGB, 0..1) mean and std of the images of MANIFEST.

    MANIFEST defaults to train.csv in the folder the last split wrote (default manifests/).
    Rows count as often as they are listed; accumulation is float64, so the numbers equal
    those `maskforge split` writes to stats.json, with either engine.
    """
    from maskforge.core.parallel import default_workers
    from maskforge.core.paths import display_path
    from maskforge.dataset.stats import manifest_stats, write_stats_json

    if manifest is None:
        folder, origin = recalled("manifests")
        manifest = folder / "train.csv"
        click.echo(f"Using {display_path(manifest)} ({origin})")
    if not (options["engine"] == "ray" and options["address"]):
        options["workers"] = options["workers"] or default_workers()
    stats, record = manifest_stats(manifest, **options)
    click.echo("mean " + " ".join(f"{v:.6f}" for v in stats.mean))
    click.echo("std  " + " ".join(f"{v:.6f}" for v in stats.std))
    click.echo(f"{stats.count} images at {stats.size}x{stats.size}, RGB, 0..1")
    if stats.unreadable:
        missing = sum(1 for _, reason in stats.unreadable if reason == "missing")
        click.echo(
            f"Left out: {missing} missing, {len(stats.unreadable) - missing} unreadable images"
        )
    if json_path is not None:
        write_stats_json(json_path, record)
        click.echo(f"Wrote {json_path}")


COMMANDS = [stats_command]
