"""`maskforge preview [OUT]`: a contact sheet of random synthesize outputs, to judge at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from maskforge import choices
from maskforge.commands.options import (
    Decorator,
    command,
    flag_option,
    int_option,
    recalled,
    section,
    seed_option,
    sheet_option,
)


class NameList(click.ParamType):
    """`a,b,c`: comma-separated names, checked against the allowed ones (choices) when given."""

    name = "LIST"

    def __init__(self, what: str, allowed: tuple[str, ...] | None = None):
        self.what, self.allowed = what, allowed

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(dict.fromkeys(v.strip() for v in str(value).split(",") if v.strip()))
        if not names:
            self.fail(f"empty {self.what} list", param, ctx)
        if self.allowed:
            allowed = self.allowed
            if names == ("all",):
                return allowed
            bad = [n for n in names if n not in allowed]
            if bad:
                self.fail(
                    f"invalid {self.what} {bad[0]!r}. Allowed: {', '.join(allowed)}, all",
                    param,
                    ctx,
                )
        return names


def names_option(
    flag: str, name: str, what: str, among: tuple[str, ...] | None = None, **attrs: Any
) -> Decorator:
    """Which rows: --flag a,b,c, names of one kind (`what`), checked against `among` when given
    (where 'all' is every one of them); the command gets them as a tuple `name`."""
    return click.option(flag, name, type=NameList(what, among), **attrs)


@command("preview")
@click.argument("out", required=False, type=click.Path(path_type=Path))
@section(
    "The sheet",
    sheet_option(
        "PNG file to write the contact sheet to (replaced if it exists).",
        default=Path("preview.png"),
    ),
    int_option(
        "--count",
        "-n",
        default=choices.PREVIEW_COUNT,
        help="Number of tiles: rows of synthesis.csv drawn at random (all if fewer match).",
    ),
    seed_option("Seed of the random sample; the same seed and folder give the same sheet."),
)
@section(
    "Which rows",
    names_option(
        "--mask-type",
        "mask_types",
        "mask type",
        help="Only these templates, e.g. 'surgical,kn95' (see `maskforge templates`). "
        "[default: any]",
    ),
    names_option(
        "--wear",
        "wears",
        "wear style",
        choices.WEAR_STYLES,
        help="Only these wear styles: correct, nose_out, chin (comma-separated). [default: any]",
    ),
    names_option(
        "--detector",
        "detectors",
        "detector",
        choices.STAGES,
        help="Only faces found by these detector stages: hog, mtcnn, hog_pad, cnn, boxes. "
        "[default: any]",
    ),
    names_option(
        "--status",
        "statuses",
        "status",
        choices.STATUSES,
        default="ok",
        help="Rows with these statuses (comma-separated, or 'all'). Rows that are not ok show "
        "the input photo, the rejected face's box in red, and the reason.",
    ),
    names_option(
        "--framing",
        "framings",
        "framing",
        choices.FRAMINGS,
        help="Only outputs cut this way: crop, closeup, wide, full (comma-separated). "
        "[default: any]",
    ),
    flag_option(
        "--hands-near-mask",
        help="Only masked outputs with a hand raised near the mask (synthesize --hands-near-mask).",
    ),
    flag_option(
        "--negatives",
        help="Show the hard negatives (hand, object, scarf over the mouth) instead of the "
        "masked outputs; only rows that have one.",
    ),
)
@section(
    "Layout",
    flag_option(
        "--side-by-side",
        help="Show each face as an unmasked original | output pair (tiles twice as wide).",
    ),
    int_option(
        "--tile",
        low=16,
        high=1024,
        default=choices.PREVIEW_TILE,
        help="Side of each image in pixels (shrunk with area interpolation).",
    ),
    int_option("--columns", high=100, help="Tiles per row. [default: 8, or 4 with --side-by-side]"),
)
def preview_command(
    out,
    sheet,
    seed,
    mask_types,
    wears,
    detectors,
    statuses,
    negatives,
    framings,
    hands_near_mask,
    **layout,
):
    """Write a contact sheet (grid PNG) of random outputs of the synthesize folder OUT.

    OUT defaults to the folder the last `maskforge synthesize` wrote (else out/). Each tile is
    labelled under the image: template, colour (swatch and hex), pattern, wear, framing (with
    +hand for a hand near the mask), template variant, yaw, detector, and the input file with
    its face index. The title names the
    folder, how many rows were drawn from how many, and the seed.

    \b
    Examples:
      maskforge preview --sheet sheet.png
      maskforge preview out/ --side-by-side --count 60 --sheet pairs.png
      maskforge preview out/ --wear nose_out,chin --mask-type n95 --sheet incorrect.png
      maskforge preview out/ --status no_face,implausible --sheet failures.png
      maskforge preview out/ --negatives --sheet negatives.png
      maskforge preview out/ --framing closeup --side-by-side --sheet closeups.png
    """
    from maskforge.core.paths import display_path
    from maskforge.synth.preview.sheet import Filters, write_sheet

    if out is None:
        out, origin = recalled("synthesize_out")
        click.echo(f"Using {display_path(out)} ({origin})")
    filters = Filters(
        mask_types=mask_types or (),
        wears=wears or (),
        detectors=detectors or (),
        statuses=statuses,
        negatives=negatives,
        framings=framings or (),
        hands_near_mask=hands_near_mask,
    )
    result = write_sheet(sheet, out, seed=seed, filters=filters, **layout)
    h, w, _ = result.image.shape
    layout = result.layout
    click.echo(
        f"Contact sheet: {sheet}  ({len(result.selection.rows)} of {result.selection.matched} "
        f"matching rows, {layout.rows}x{layout.columns} tiles, {w}x{h} px, seed {seed})"
    )
    if result.unreadable:
        click.echo(f"  {result.unreadable} tile(s) could not read their image (shown grey)")


COMMANDS = [preview_command]
