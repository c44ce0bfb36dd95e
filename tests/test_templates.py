"""Mask template library: loading, anchor sanity, tints, mirror views, recolouring, colours."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from maskforge.templates import (
    ANCHOR_NAMES,
    NAMED_COLORS,
    MaskTemplate,
    TemplateVariant,
    format_color,
    load_templates,
    make_pattern,
    parse_color,
    render_appearance,
    sample_color,
)

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = REPO / "mask_templates"
EXPECTED = ("surgical",)


@pytest.fixture(scope="module")
def templates() -> dict[str, MaskTemplate]:
    return load_templates(TEMPLATE_DIR)


def _anchors(v: TemplateVariant) -> dict[str, np.ndarray]:
    return dict(zip(ANCHOR_NAMES, v.anchors, strict=True))


def test_expected_templates_load_with_three_variants(templates):
    for name in EXPECTED:
        t = templates[name]
        assert set(t.variants) == {"front", "left", "right"}
        assert t.default_color in t.colors or len(t.colors) >= 1
        for v in t.variants.values():
            h, w = v.rgba.shape[:2]
            assert v.rgba.dtype == np.uint8 and v.rgba.shape[2] == 4
            assert 300 <= w <= 700, f"{name}: width {w} outside the documented size range"
            assert v.tint.shape == (h, w) and v.tint.dtype == np.float32
            assert v.anchors.shape == (6, 2)


def test_default_root_is_the_repository_folder():
    assert load_templates() is load_templates(TEMPLATE_DIR)


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("key", ["front", "left", "right"])
def test_anchors_inside_image_and_in_anatomical_order(templates, name, key):
    v = templates[name].variants[key]
    h, w = v.rgba.shape[:2]
    a = _anchors(v)
    assert np.all(v.anchors >= 0) and np.all(v.anchors[:, 0] < w) and np.all(v.anchors[:, 1] < h)
    assert a["nose"][1] < a["chin"][1]
    assert a["cheek_left"][0] < a["nose"][0] < a["cheek_right"][0]
    assert a["jaw_left"][0] < a["jaw_right"][0]
    for side in ("left", "right"):
        assert a[f"cheek_{side}"][1] < a[f"jaw_{side}"][1] < a["chin"][1]
    # The mask covers the nose and chin anchors (alpha there), so they sit on the mask body.
    for point in ("nose", "chin"):
        x, y = np.rint(a[point]).astype(int)
        assert v.rgba[y, x, 3] == 255, f"{name}/{key}: {point} anchor not on the mask"


@pytest.mark.parametrize("name", EXPECTED)
def test_turned_variants_shift_the_nose_towards_the_turned_side(templates, name):
    def rel_nose(v):
        a = _anchors(v)
        return (a["nose"][0] - a["cheek_left"][0]) / (a["cheek_right"][0] - a["cheek_left"][0])

    t = templates[name]
    front = rel_nose(t.variants["front"])
    assert front == pytest.approx(0.5, abs=0.02)
    assert rel_nose(t.variants["left"]) < front - 0.12
    assert rel_nose(t.variants["right"]) > front + 0.12


@pytest.mark.parametrize("name", EXPECTED)
def test_left_and_right_are_mirror_images(templates, name):
    left, right = templates[name].variants["left"], templates[name].variants["right"]
    assert left.rgba.shape == right.rgba.shape
    diff = np.abs(left.rgba[:, ::-1].astype(int) - right.rgba.astype(int))
    assert np.mean(diff) < 1.0
    w = left.rgba.shape[1]
    flipped = left.anchors.copy()
    flipped[:, 0] = (w - 1) - flipped[:, 0]
    np.testing.assert_allclose(flipped[[0, 2, 1, 4, 3, 5]], right.anchors, atol=0.6)


@pytest.mark.parametrize("name", EXPECTED)
def test_tint_in_range_and_zero_outside_alpha(templates, name):
    for v in templates[name].variants.values():
        assert v.tint.min() >= 0.0 and v.tint.max() <= 1.0
        assert np.all(v.tint[v.rgba[..., 3] == 0] == 0)
        body = v.rgba[..., 3] == 255
        assert np.mean(v.tint[body] > 0.5) > 0.8, "the fabric should be mostly tintable"


def test_surgical_loops_are_not_tinted(templates):
    v = templates["surgical"].variants["front"]
    opaque = v.rgba[..., 3] > 200
    assert np.any(opaque & (v.tint < 0.1)), "ear loops should keep their own colour"


def test_arrays_are_read_only(templates):
    v = templates["surgical"].variants["front"]
    with pytest.raises(ValueError):
        v.rgba[0, 0, 0] = 1


# --- recolouring -------------------------------------------------------------------------------


def test_render_appearance_colour_changes_only_tinted_pixels(templates):
    v = templates["surgical"].variants["left"]
    out = render_appearance(v, (200, 30, 40), None, 0.0)
    assert out.shape == v.rgba.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], v.rgba[..., 3])
    untinted = (v.tint == 0) & (v.rgba[..., 3] > 0)
    np.testing.assert_array_equal(out[untinted], v.rgba[untinted])
    fabric = (v.tint == 1) & (v.rgba[..., 3] == 255)
    mean = out[fabric][:, :3].mean(axis=0)
    assert mean[0] > 150 and mean[1] < 60 and mean[2] < 70, mean


def test_render_appearance_keeps_the_folds(templates):
    v = templates["surgical"].variants["front"]
    src_lum = v.rgba[..., :3].astype(float).mean(-1)
    out = render_appearance(v, (60, 120, 200), None, 0.0)
    out_lum = out[..., :3].astype(float).mean(-1)
    fabric = (v.tint == 1) & (v.rgba[..., 3] == 255)
    corr = np.corrcoef(src_lum[fabric], out_lum[fabric])[0, 1]
    assert corr > 0.9, "shading (pleats, seams) must survive recolouring"
    assert out_lum[fabric].std() > 3.0


def test_render_appearance_none_colour_is_identity(templates):
    v = templates["surgical"].variants["front"]
    np.testing.assert_array_equal(render_appearance(v, None, None, 0.0), v.rgba)


def test_pattern_changes_fabric_pixels_only(templates):
    v = templates["surgical"].variants["front"]
    pattern = make_pattern("stripes", v.rgba.shape[:2], np.random.default_rng(3), (40, 40, 160))
    plain = render_appearance(v, (40, 40, 160), None, 0.0)
    striped = render_appearance(v, (40, 40, 160), pattern, 1.0)
    fabric = (v.tint == 1) & (v.rgba[..., 3] == 255)
    changed = np.any(plain != striped, axis=-1)
    assert changed[fabric].mean() > 0.2
    assert not changed[v.rgba[..., 3] == 0].any()
    np.testing.assert_array_equal(striped[..., 3], v.rgba[..., 3])
    half = render_appearance(v, (40, 40, 160), pattern, 0.5)
    d_half = np.abs(half.astype(int) - plain.astype(int))[fabric].mean()
    d_full = np.abs(striped.astype(int) - plain.astype(int))[fabric].mean()
    assert 0.3 * d_full < d_half < 0.7 * d_full


def test_render_appearance_is_deterministic(templates):
    v = templates["surgical"].variants["right"]
    p1 = make_pattern("camo", v.rgba.shape[:2], np.random.default_rng(5), (90, 100, 60))
    p2 = make_pattern("camo", v.rgba.shape[:2], np.random.default_rng(5), (90, 100, 60))
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(
        render_appearance(v, (90, 100, 60), p1, 0.7), render_appearance(v, (90, 100, 60), p2, 0.7)
    )


def test_render_appearance_rejects_a_wrong_pattern_shape(templates):
    v = templates["surgical"].variants["front"]
    with pytest.raises(ValueError, match="pattern shape"):
        render_appearance(v, None, np.zeros((4, 4, 3), np.float32), 1.0)


# --- colours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "rgb"),
    [("#ff8000", (255, 128, 0)), ("#F80", (255, 136, 0)), ("Light Blue", parse_color("lightblue"))],
)
def test_parse_color_accepts_hex_and_names(spec, rgb):
    assert parse_color(spec) == rgb


def test_every_named_colour_parses():
    for name in NAMED_COLORS:
        assert len(parse_color(name)) == 3


@pytest.mark.parametrize("bad", ["", "#12", "#12345g", "blurple", "rgb(1,2,3)"])
def test_parse_color_rejects_bad_values_listing_names(bad):
    with pytest.raises(ValueError, match="lightblue") as err:
        parse_color(bad)
    assert repr(bad) in str(err.value)


def test_format_color_round_trips():
    assert format_color(parse_color("#0a0b0c")) == "#0a0b0c"


def test_sample_color_is_deterministic_and_near_the_palette(templates):
    t = templates["surgical"]
    a = [sample_color(t, np.random.default_rng(s)) for s in range(20)]
    b = [sample_color(t, np.random.default_rng(s)) for s in range(20)]
    assert a == b
    assert len(set(a)) > 5
    palette = np.array(t.colors, float)
    for c in a:
        assert np.min(np.abs(palette - np.array(c)).max(axis=1)) <= 30


# --- bad template folders ----------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "tpl"
    shutil.copytree(TEMPLATE_DIR, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


def test_missing_metadata_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="templates.json"):
        load_templates(tmp_path)


def test_malformed_metadata_names_the_file(tmp_path):
    root = _copy(tmp_path)
    (root / "templates.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="templates.json.*not valid JSON"):
        load_templates(root)


def test_missing_png_names_the_file(tmp_path):
    root = _copy(tmp_path)
    (root / "surgical_left.png").unlink()
    with pytest.raises(ValueError, match="surgical_left.png"):
        load_templates(root)


def test_corrupt_png_names_the_file(tmp_path):
    root = _copy(tmp_path)
    (root / "surgical_front_tint.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="surgical_front_tint.png"):
        load_templates(root)


def test_bad_anchor_count_is_reported(tmp_path):
    root = _copy(tmp_path)
    meta = json.loads((root / "templates.json").read_text())
    meta["templates"]["surgical"]["variants"]["front"]["anchors"] = [[1, 2]]
    (root / "templates.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="anchors"):
        load_templates(root)
