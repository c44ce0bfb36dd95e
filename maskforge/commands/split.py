"""`maskforge split`: leak-free, balanced train/val/test manifests plus train statistics."""

from __future__ import annotations

import os
from pathlib import Path

import click

BALANCE_MODES = ("none", "undersample", "oversample", "weights")


def default_workers() -> int:
    """CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class RatiosType(click.ParamType):
    """train,val[,test] fractions summing to 1, e.g. 0.8,0.1,0.1 (or 0.8,0.2: no test split)."""

    name = "TRAIN,VAL[,TEST]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from maskforge.dataset.split import parse_ratios

        try:
            return parse_ratios(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ClassMapType(click.ParamType):
    """FOUND=LABEL[,FOUND=LABEL...], e.g. with_mask=masked,without_mask=unmasked."""

    name = "FOUND=LABEL,..."

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        from maskforge.dataset.sources import parse_class_map

        try:
            return parse_class_map(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SourceType(click.ParamType):
    """FOLDER or NAME=FOLDER: a synthesize output folder or a class-per-subfolder tree."""

    name = "[NAME=]FOLDER"

    def convert(self, value, param, ctx):
        from maskforge.dataset.sources import Source, parse_source

        if isinstance(value, Source):
            return value
        try:
            return parse_source(value)
        except (ValueError, OSError) as exc:
            self.fail(str(exc), param, ctx)


@click.command("split")
@click.argument("sources", nargs=-1, type=SourceType())
@click.option(
    "--ratios",
    type=RatiosType(),
    default="0.8,0.1,0.1",
    show_default=True,
    help="Fractions of images for train,val,test (summing to 1). Two numbers (0.8,0.2) mean "
    "no test split: test.csv is then written with a header only.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("manifests"),
    show_default=True,
    help="Folder for train.csv, val.csv, test.csv, stats.json and split_report.md.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option(
    "--stratify",
    type=click.Choice(["mask_type", "source"]),
    multiple=True,
    help="Also keep the proportions of this column in every split (repeatable); splits are "
    "always stratified by class.",
)
@click.option(
    "--balance",
    type=click.Choice(BALANCE_MODES),
    default="undersample",
    show_default=True,
    help="Per split: undersample (drop images of larger classes at random), oversample (repeat "
    "rows of smaller classes), weights (fill the weight column), or none. Images never move "
    "between splits.",
)
@click.option(
    "--class-map",
    type=ClassMapType(),
    default=None,
    help="Rename class folders or labels, e.g. with_mask=masked,without_mask=unmasked. A folder "
    "of photos without class subfolders is one class named after the folder. "
    "[default: names as found]",
)
@click.option(
    "--dup-threshold",
    type=click.IntRange(0, 64),
    default=4,
    show_default=True,
    help="Photos whose perceptual hashes (64-bit phash) differ in at most this many bits are "
    "near-duplicates and join one group (never split apart).",
)
@click.option(
    "--dedup/--no-dedup",
    default=True,
    show_default=True,
    help="Search near-duplicates (reads every original/photo once).",
)
@click.option(
    "--stats/--no-stats",
    default=True,
    show_default=True,
    help="Compute the train split's per-channel mean/std into stats.json.",
)
@click.option(
    "--size",
    type=click.IntRange(1, 4096),
    default=112,
    show_default=True,
    help="Images are resized to SIZE x SIZE before computing stats (as in training).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    show_default="CPU cores, at most 8",
    help="Processes for hashing and stats.",
)
@click.option(
    "--drop-missing",
    is_flag=True,
    help="Leave out (and report) images that are missing or unreadable instead of stopping.",
)
def split_command(
    sources,
    ratios,
    out_dir,
    seed,
    stratify,
    balance,
    class_map,
    dup_threshold,
    dedup,
    stats,
    size,
    workers,
    drop_missing,
) -> None:
    """Split labelled images into train/val/test manifests without leaks.

    SOURCES are folders: a `maskforge synthesize` output (with synthesis.csv) or a tree with
    one subfolder per class; NAME=FOLDER names a source (default: the folder's name), e.g.
    `maskforge split out/ real=../photos/`. With no SOURCES, the folder the last synthesize
    in this working folder wrote is used (default out/).

    An image and its pairs (the synthetic masked image, its unmasked original and hard
    negative) and near-duplicate photos form a group that never straddles splits. The same
    --seed and inputs give identical manifests.
    """
    from maskforge.core.workspace import load_state, recall, remember
    from maskforge.dataset.split import SplitOptions, run_split

    if not sources:
        from maskforge.dataset.sources import parse_source

        folder = recall("synthesize_out")
        origin = "from the last synthesize" if "synthesize_out" in load_state() else "default"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"No source folder given and {_show(folder)}/ ({origin}) does not exist; run "
                "`maskforge synthesize raw/ out/` first or pass a folder."
            )
        sources = (parse_source(_show(folder)),)
    else:
        origin = None
    options = SplitOptions(
        ratios=ratios,
        seed=seed,
        stratify=tuple(dict.fromkeys(stratify)),
        balance=balance,
        dup_threshold=dup_threshold if dedup else None,
        class_map=class_map or {},
        stats=stats,
        size=size,
        workers=workers or default_workers(),
        drop_missing=drop_missing,
    )
    result = run_split(list(sources), out_dir, options)
    remember("manifests", out_dir)
    _print_summary(result, origin)


def _show(path: Path) -> str:
    text = os.path.relpath(path)
    return Path(text).as_posix() if not text.startswith("..") else Path(path).as_posix()


def _print_summary(result, origin: str | None) -> None:
    kinds = {"synthesis": "synthesize output", "folders": "class folders"}
    used = []
    for source, kind, n in result.sources:
        folder = f"{_show(source.root)}/"
        named = "" if source.name == Path(source.root).resolve().name else f" as {source.name}"
        how = f"{origin}; " if origin else ""
        used.append(f"{folder}{named} ({how}{kinds[kind]}, {n} images)")
    click.echo("Using " + ", ".join(used))
    after = result.balance.after
    totals = after.sum()
    click.echo(
        f"Wrote {_show(result.out_dir)}/: "
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
    odd = [c for c in result.classes if c not in ("unmasked", "masked", "incorrect")]
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
    click.echo(f"Report: {_show(result.out_dir / 'split_report.md')}")


COMMANDS = [split_command]
