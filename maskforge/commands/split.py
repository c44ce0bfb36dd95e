"""`maskforge split`: leak-free, balanced train/val/test manifests plus train statistics."""

from __future__ import annotations

from pathlib import Path

import click

from maskforge import choices
from maskforge.commands.options import (
    DEFAULT_WORKERS_TEXT,
    Parsed,
    choice_option,
    command,
    flag_option,
    folder_option,
    int_option,
    recalled,
    section,
    seed_option,
    stats_size_option,
    switch_option,
    workers_option,
)

# train,val[,test] fractions summing to 1, e.g. 0.8,0.1,0.1 (or 0.8,0.2: no test split).
RATIOS = Parsed("TRAIN,VAL[,TEST]", "maskforge.dataset.split:parse_ratios")
# FOUND=LABEL[,FOUND=LABEL...], e.g. with_mask=masked,without_mask=unmasked.
CLASS_MAP = Parsed("FOUND=LABEL,...", "maskforge.dataset.sources:parse_class_map")
# FOLDER or NAME=FOLDER: a synthesize output folder or a class-per-subfolder tree.
SOURCE = Parsed("[NAME=]FOLDER", "maskforge.dataset.sources:parse_source")


@command("split")
@click.argument("sources", nargs=-1, type=SOURCE)
@section(
    "Splits",
    click.option(
        "--ratios",
        type=RATIOS,
        default=choices.DEFAULT_RATIOS,
        help="Fractions of images for train,val,test (summing to 1). Two numbers (0.8,0.2) "
        "mean no test split: test.csv is then written with a header only.",
    ),
    folder_option(
        "--out",
        "out_dir",
        default=Path("manifests"),
        help="Folder for train.csv, val.csv, test.csv, stats.json and split_report.md.",
    ),
    seed_option("Seed of every random choice."),
    choice_option(
        "--stratify",
        among=choices.EXTRA_STRATA,
        multiple=True,
        help="Also keep the proportions of this column in every split (repeatable); splits "
        "are always stratified by class.",
    ),
    choice_option(
        "--balance",
        among=choices.BALANCE_MODES,
        default=choices.DEFAULT_BALANCE,
        help="Per split: undersample (drop images of larger classes at random), oversample "
        "(repeat rows of smaller classes), weights (fill the weight column), or none. Images "
        "never move between splits.",
    ),
)
@section(
    "Labels and duplicates",
    click.option(
        "--class-map",
        type=CLASS_MAP,
        help="Rename class folders or labels, e.g. with_mask=masked,without_mask=unmasked. A "
        "folder of photos without class subfolders is one class named after the folder. "
        "[default: names as found]",
    ),
    int_option(
        "--dup-threshold",
        low=0,
        high=64,
        default=choices.DUP_THRESHOLD,
        help="Photos whose perceptual hashes (64-bit phash) differ in at most this many bits "
        "are near-duplicates and join one group (never split apart).",
    ),
    switch_option(
        "--dedup/--no-dedup",
        help="Search near-duplicates (reads every original/photo once).",
    ),
    flag_option(
        "--drop-missing",
        help="Leave out (and report) images that are missing or unreadable instead of stopping.",
    ),
)
@section(
    "Statistics",
    switch_option(
        "--stats/--no-stats",
        help="Compute the train split's per-channel mean/std into stats.json.",
    ),
    stats_size_option("Images are resized to SIZE x SIZE before computing stats (as in training)."),
    workers_option("Processes for hashing and stats.", high=256, show_default=DEFAULT_WORKERS_TEXT),
)
def split_command(sources, out_dir, dedup, stratify, workers, class_map, **options) -> None:
    """Split labelled images into train/val/test manifests without leaks.

    SOURCES are folders: a `maskforge synthesize` output (with synthesis.csv) or a tree with
    one subfolder per class; NAME=FOLDER names a source (default: the folder's name), e.g.
    `maskforge split out/ real=../photos/`. With no SOURCES, the folder the last synthesize
    in this working folder wrote is used (default out/).

    An image and its pairs (the synthetic masked image, its unmasked original and hard
    negative) and near-duplicate photos form a group that never straddles splits. The same
    --seed and inputs give identical manifests.
    """
    from maskforge.core.parallel import default_workers
    from maskforge.core.workspace import remember
    from maskforge.dataset.split import SplitOptions, run_split

    sources, origin = (sources, None) if sources else _last_synthesize()
    if not dedup:
        options["dup_threshold"] = None
    split = SplitOptions(
        stratify=tuple(dict.fromkeys(stratify)),
        class_map=class_map or {},
        workers=workers or default_workers(),
        **options,
    )
    result = run_split(list(sources), out_dir, split)
    remember("manifests", out_dir)
    _print_summary(result, origin)


def _last_synthesize() -> tuple[tuple, str]:
    """The folder the last synthesize here wrote (default out/) as the one source, and where
    that came from."""
    from maskforge.core.paths import display_path
    from maskforge.dataset.sources import parse_source

    folder, origin = recalled("synthesize_out")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No source folder given and {display_path(folder)}/ ({origin}) does not exist; "
            "run `maskforge synthesize raw/ out/` first or pass a folder."
        )
    return (parse_source(display_path(folder)),), origin


def _print_summary(result, origin: str | None) -> None:
    from maskforge.core.paths import display_path

    kinds = {"synthesis": "synthesize output", "folders": "class folders"}
    used = []
    for source, kind, n in result.sources:
        folder = display_path(source.root, folder_slash=True)
        named = "" if source.name == Path(source.root).resolve().name else f" as {source.name}"
        how = f"{origin}; " if origin else ""
        used.append(f"{folder}{named} ({how}{kinds[kind]}, {n} images)")
    click.echo("Using " + ", ".join(used))
    after = result.balance.after
    totals = after.sum()
    click.echo(
        f"Wrote {display_path(result.out_dir, folder_slash=True)}: "
        + ", ".join(f"{s} {int(totals[s])}" for s in after.columns)
        + f" images (balance: {result.balance.mode})"
    )
    width = max(8, *(len(c) for c in after.index))
    click.echo("  " + "class".ljust(width) + "".join(f"{s:>8}" for s in after.columns))
    for label in after.index:
        click.echo("  " + label.ljust(width) + "".join(f"{v:>8}" for v in after.loc[label]))
    dup = result.duplicates
    if dup is not None:
        click.echo(
            f"Near-duplicates: {len(dup.pairs)} pairs within {dup.threshold} bits among "
            f"{dup.hashed} photos; {dup.groups_before - dup.groups_after} groups merged"
        )
    if result.missing or result.unreadable:
        click.echo(
            f"Left out: {len(result.missing)} missing, {len(result.unreadable)} unreadable images"
        )
    if dup is not None and dup.conflicts:
        click.echo(f"  {len(dup.conflicts)} of them have different labels: see the report")
    if len(result.classes) < 2:
        click.echo(f"Warning: only one class ({result.classes[0]}); a classifier needs two")
    odd = [c for c in result.classes if c not in choices.CLASSES]
    if odd:
        click.echo(
            f"Classes: {', '.join(result.classes)} (rename with --class-map, e.g. {odd[0]}=masked)"
        )
    if result.stats is not None:
        st = result.stats
        click.echo(
            "Train mean "
            + ", ".join(f"{v:.4f}" for v in st.mean)
            + "  std "
            + ", ".join(f"{v:.4f}" for v in st.std)
            + f"  ({st.count} images at {st.size}x{st.size})"
        )
    click.echo(f"Report: {display_path(result.out_dir / 'split_report.md')}")


COMMANDS = [split_command]
