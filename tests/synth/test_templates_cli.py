"""`maskforge templates`: listing, contact sheet, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import read_image
from maskforge.synth.render.templates import load_occluders, load_templates

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO / "mask_templates"


def test_lists_every_template_with_variants_and_preview():
    result = CliRunner().invoke(cli, ["templates", "--root", str(TEMPLATE_DIR)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in load_templates(TEMPLATE_DIR):
        line = next(ln for ln in lines if ln.split()[0] == name)
        assert "front,left,right" in line
        assert line.split()[-1] == str(TEMPLATE_DIR / f"{name}_front.png")
    for name in load_occluders(TEMPLATE_DIR):
        assert any(ln.split()[0] == name for ln in lines)
    n_masks = len(load_templates(TEMPLATE_DIR))
    assert f"{n_masks} mask templates, {len(load_occluders(TEMPLATE_DIR))} occluders" in lines[-1]


def test_sheet_is_written_as_a_grid(tmp_path: Path):
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        cli, ["templates", "--root", str(TEMPLATE_DIR), "--sheet", str(sheet)]
    )
    assert result.exit_code == 0, result.output
    assert f"Contact sheet: {sheet}" in result.output
    img = read_image(sheet)
    rows = len(load_templates(TEMPLATE_DIR)) + 1  # one row per template, one of occluders
    assert img.shape == (rows * 230, 6 * 300, 3)
    # Every cell holds a drawn template: not just background.
    for r in range(rows - 1):
        cell = img[r * 230 + 30 : (r + 1) * 230, 10:290]
        assert (np.abs(cell.astype(int) - 229).max(axis=-1) > 40).mean() > 0.2


def test_sheet_must_be_png(tmp_path: Path):
    result = CliRunner().invoke(cli, ["templates", "--sheet", str(tmp_path / "sheet.jpg")])
    assert result.exit_code == 2
    assert "Error: Invalid value for '--sheet'" in result.output and ".png" in result.output
    assert not (tmp_path / "sheet.jpg").exists()


def test_folder_without_metadata_is_a_one_line_error(tmp_path: Path):
    result = CliRunner().invoke(cli, ["templates", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "templates.json" in result.output and "Traceback" not in result.output


def test_missing_root_is_rejected_by_click(tmp_path: Path):
    result = CliRunner().invoke(cli, ["templates", "--root", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_help_explains_options():
    result = CliRunner().invoke(cli, ["templates", "--help"])
    assert result.exit_code == 0
    for option in ("--root", "--sheet", "--anchors", "--seed"):
        assert option in result.output


def test_sheet_into_a_read_only_folder_is_a_one_line_error(read_only_refusal):
    ro, line = read_only_refusal('templates --sheet "$RO/t.png"')
    assert line.startswith(f"Error: Cannot write to {ro / 't.png'}: Read-only file system")
    assert not list(ro.iterdir())
