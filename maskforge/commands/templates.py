"""`maskforge templates`: list the mask templates and occluders, optionally as a contact sheet."""

from __future__ import annotations

from pathlib import Path

import click

from maskforge.commands.options import (
    command,
    folder_option,
    seed_option,
    sheet_option,
    switch_option,
)


@command("templates")
@folder_option(
    "--root",
    exists=True,
    help="Template folder holding templates.json.  [default: the installed mask_templates]",
)
@sheet_option("Also write a PNG contact sheet of every template, variant and occluder here.")
@switch_option(
    "--anchors/--no-anchors",
    help="Mark the anchor points (nose green, others red; occluders: mouth) on the sheet.",
)
@seed_option("Seed for the sample colours and patterns shown on the sheet.")
def templates_command(root: Path | None, sheet: Path | None, anchors: bool, seed: int) -> None:
    """List mask templates (name, variants, preview image) and hard-negative occluders.

    \b
    Examples:
      maskforge templates
      maskforge templates --sheet templates.png
    """
    from maskforge.synth.preview.templates import describe_templates, write_template_sheet

    rows = describe_templates(root)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        variants = ",".join(r["variants"])
        click.echo(f"{r['name']:<{width}}  {r['kind']:<6}  {variants:<16}  {r['images']['front']}")
    masks = sum(r["kind"] == "mask" for r in rows)
    click.echo(f"{masks} mask templates, {len(rows) - masks} occluders")
    if sheet is not None:
        write_template_sheet(sheet, root, anchors=anchors, seed=seed)
        click.echo(f"Contact sheet: {sheet}")


COMMANDS = [templates_command]
