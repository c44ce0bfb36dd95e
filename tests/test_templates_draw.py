"""The committed assets are what mask_templates/draw_templates.py draws."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = REPO / "mask_templates"


def _draw_module():
    spec = importlib.util.spec_from_file_location(
        "draw_templates_under_test", TEMPLATE_DIR / "draw_templates.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_metadata_matches_the_drawing_script():
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
