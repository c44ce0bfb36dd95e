"""The committed assets are what the drawing package mask_templates/draw/ draws."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO / "mask_templates"


def _draw_module():
    # A developer tool that is not installed: import it from the repository root, as
    # `python -m mask_templates.draw` does.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("mask_templates.draw")


def test_metadata_matches_the_drawing_code():
    draw = _draw_module()
    meta = json.loads((TEMPLATE_DIR / "templates.json").read_text())
    assert list(meta["templates"]) == list(draw.MASKS)
    assert list(meta["occluders"]) == list(draw.OCCLUDERS)
    assert meta["anchor_names"] == list(draw.ANCHOR_NAMES)
    for name in draw.MASKS:
        entry = dict(meta["templates"][name])
        entry.pop("variants")
        assert entry == draw.template_meta(name)


def test_front_anchors_are_the_face_model_projected():
    draw = _draw_module()
    meta = json.loads((TEMPLATE_DIR / "templates.json").read_text())
    model = draw.face_anchors_3d(0.0)[:, :2] * draw.PX_PER_UNIT
    for name in draw.MASKS:
        drawn = np.array(meta["templates"][name]["variants"]["front"]["anchors"])
        # Same face in every template: only the crop offset differs.
        np.testing.assert_allclose(drawn - drawn[0], model - model[0], atol=0.02)


def test_assets_stay_small():
    total = sum(p.stat().st_size for p in TEMPLATE_DIR.rglob("*.png"))
    assert total < 4_000_000, f"template PNGs take {total / 1e6:.1f} MB"


@pytest.mark.slow
def test_assets_regenerate_identically(tmp_path: Path):
    draw = _draw_module()
    draw.draw_all(tmp_path)
    committed = json.loads((TEMPLATE_DIR / "templates.json").read_text())
    fresh = json.loads((tmp_path / "templates.json").read_text())
    assert fresh.keys() == committed.keys()
    for name, entry in committed["templates"].items():
        for key, variant in entry["variants"].items():
            np.testing.assert_allclose(
                fresh["templates"][name]["variants"][key]["anchors"],
                variant["anchors"],
                atol=0.02,
            )
    assert fresh["occluders"].keys() == committed["occluders"].keys()
    for name, entry in committed["occluders"].items():
        new = dict(fresh["occluders"][name])
        np.testing.assert_allclose(new.pop("mouth"), entry["mouth"], atol=0.02)
        assert new == {k: v for k, v in entry.items() if k != "mouth"}
    for png in sorted(TEMPLATE_DIR.rglob("*.png")):
        rel = png.relative_to(TEMPLATE_DIR)
        a = cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(tmp_path / rel), cv2.IMREAD_UNCHANGED).astype(int)
        assert a.shape == b.shape, rel
        # Bit-exact on one machine; allow last-bit float differences elsewhere.
        assert np.abs(a - b).max() <= 2 and np.mean(a != b) < 0.001, rel
