"""Mask template library: loading, anchor sanity, tints, mirror views, recolouring, colours."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from maskforge.synth.render.templates import (
    ANCHOR_NAMES,
    MaskTemplate,
    Occluder,
    TemplateVariant,
    default_root,
    load_occluders,
    load_templates,
    render_appearance,
)
from maskforge.synth.sampling.draws import sample_color
from maskforge.synth.sampling.patterns import make_pattern
from maskforge.synth.sampling.specs import NAMED_COLORS, format_color, parse_color

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO / "mask_templates"
EXPECTED = ("surgical", "n95", "n95_valve", "kn95", "cloth", "gas", "gaiter", "bandana", "sports")
# Coverings that hang well below the chin instead of tucking under it.
HANGING = {"gaiter": (0.6, 1.0), "bandana": (0.5, 0.9)}


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


def test_default_root_holds_the_library():
    # The installed package's folder when maskforge.mask_templates is installed, else the
    # repository's mask_templates/ next to the maskforge package.
    root = default_root()
    assert (root / "templates.json").is_file()
    assert load_templates() is load_templates(root)
    assert "surgical" in load_templates()


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
        assert np.mean(v.tint[body] > 0.5) > 0.4, "the mask body should be mostly tintable"


def _opaque_rows(v: TemplateVariant) -> np.ndarray:
    return np.flatnonzero((v.rgba[..., 3] > 128).any(axis=1))


@pytest.mark.parametrize("name", EXPECTED)
def test_front_mask_spans_nose_bridge_to_just_below_the_chin(templates, name):
    # Where the mask sits: its top edge rests just above the nose-bridge anchor, its bottom
    # edge lies a little below the chin anchor (masks tuck under the chin), never far off;
    # a gaiter (over the neck) and a bandana (its point) hang well below it.
    v = templates[name].variants["front"]
    a = _anchors(v)
    height = a["chin"][1] - a["nose"][1]
    body = v.rgba[..., 3] > 128
    centre = int(round(a["nose"][0]))
    column = np.flatnonzero(body[:, centre - 3 : centre + 4].any(axis=1))
    top, bottom = column.min(), column.max()
    assert 0.0 < (a["nose"][1] - top) / height < 0.3
    low, high = HANGING.get(name, (0.0, 0.3))
    assert low < (bottom - a["chin"][1]) / height < high


@pytest.mark.parametrize("name", ["n95", "n95_valve", "gas"])
def test_cups_and_respirators_are_face_sized(templates, name):
    # MaskTheFace's N95 and gas masks were far too large; here the cup's body at mouth height
    # spans about the face (jaw anchors), and at the nose-bridge height it is narrow.
    v = templates[name].variants["front"]
    a = _anchors(v)
    jaw_width = a["jaw_right"][0] - a["jaw_left"][0]
    cheek_width = a["cheek_right"][0] - a["cheek_left"][0]
    body = (v.rgba[..., 3] > 128) & (v.tint > 0.5)  # not straps, filters
    cols = np.flatnonzero(body[int(round(a["nose"][1]))])
    assert (cols.max() - cols.min()) < 0.6 * cheek_width
    if name == "gas":
        # Filters stick out sideways (as on a real half mask), but not by a face width.
        cols = np.flatnonzero(v.rgba[int(round(a["jaw_left"][1])), :, 3] > 128)
        assert 1.0 * jaw_width < cols.max() - cols.min() < 1.8 * jaw_width
    else:
        cols = np.flatnonzero(body[int(round(a["jaw_left"][1]))])
        assert 0.75 * jaw_width < cols.max() - cols.min() < 1.25 * jaw_width


def test_gas_filters_keep_their_colour(templates):
    v = templates["gas"].variants["front"]
    rgb = v.rgba[..., :3].astype(int)
    pink = (rgb[..., 0] - rgb[..., 1] > 60) & (v.rgba[..., 3] == 255)
    assert pink.sum() > 2000, "twin filter cartridges expected"
    assert np.mean(v.tint[pink] < 0.05) > 0.99  # all but anti-aliased borders


def test_surgical_loops_are_not_tinted(templates):
    v = templates["surgical"].variants["front"]
    opaque = v.rgba[..., 3] > 200
    assert np.any(opaque & (v.tint < 0.1)), "ear loops should keep their own colour"


def test_arrays_are_read_only(templates):
    v = templates["surgical"].variants["front"]
    with pytest.raises(ValueError):
        v.rgba[0, 0, 0] = 1


# --- occluders --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def occluders() -> dict[str, Occluder]:
    return load_occluders(TEMPLATE_DIR)


def test_occluder_kinds_present(occluders):
    kinds = [o.kind for o in occluders.values()]
    assert kinds.count("hand") >= 2 and "object" in kinds and "scarf" in kinds
    assert {"phone", "notebook"} <= set(occluders)


def _sprite_point(o: Occluder, dy_units: float) -> tuple[int, int]:
    """Sprite pixel dy_units (1 = nose bridge to chin) below the mouth anchor."""
    unit = o.face_width / (2 * 0.8325)
    x, y = o.mouth
    return int(round(x)), int(round(y + dy_units * unit))


def test_hands_and_objects_cover_the_mouth(occluders):
    for o in occluders.values():
        h, w = o.rgba.shape[:2]
        assert 0 <= o.mouth[0] < w and 0 <= o.mouth[1] < h
        assert 200 < o.face_width < 700
        if o.kind in ("hand", "object"):
            x, y = _sprite_point(o, 0.0)
            assert o.rgba[y, x, 3] == 255, f"{o.name} does not cover the mouth"


def test_scarf_covers_chin_and_lower_lip_but_not_the_nose(occluders):
    for o in occluders.values():
        if o.kind != "scarf":
            continue
        for dy in (0.08, 0.25, 0.42):  # lower lip, below the lip, chin
            x, y = _sprite_point(o, dy)
            assert o.rgba[y, x, 3] == 255, f"{o.name}: not covered {dy} below the mouth"
        x, y = _sprite_point(o, -0.32)  # nose tip
        assert y < 0 or o.rgba[y, x, 3] == 0


def test_hands_are_grey_and_fully_tintable(occluders):
    for o in occluders.values():
        if o.kind != "hand":
            continue
        opaque = o.rgba[..., 3] == 255
        rgb = o.rgba[opaque][:, :3].astype(int)
        assert np.abs(rgb[:, 0] - rgb[:, 2]).max() <= 1, "hand shading must be grey"
        assert np.all(o.tint[opaque] > 0.99)
        skin = render_appearance(o, (200, 150, 120), None, 0.0)
        mean = skin[opaque][:, :3].mean(axis=0)
        assert mean[0] > mean[1] > mean[2]


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


def test_recolour_accents_changes_only_the_filter_cartridges(templates):
    from maskforge.synth.render.templates import recolour_accents

    v = templates["gas"].variants["front"]
    rgb = v.rgba[..., :3].astype(int)
    pink = (rgb[..., 0] - rgb[..., 1] > 60) & (v.rgba[..., 3] == 255)
    out = recolour_accents(v.rgba, v.tint, (216, 178, 58)).astype(int)
    changed = np.abs(out - v.rgba.astype(int)).sum(axis=2) > 0
    assert np.mean(changed[pink]) > 0.95
    assert not changed[v.tint > 0.5].any()  # the rubber body keeps its colour
    np.testing.assert_array_equal(out[..., 3], v.rgba[..., 3])
    yellow = out[pink][:, :3].mean(axis=0)
    assert yellow[0] > yellow[2] + 60 and yellow[1] > yellow[2] + 40  # yellow, not pink
    # A template without saturated untinted parts is returned as it was.
    s = templates["surgical"].variants["front"]
    np.testing.assert_array_equal(recolour_accents(s.rgba, s.tint, (0, 0, 0)), s.rgba)


def test_shrunk_views_come_from_a_cached_quarter_octave_ladder(templates):
    view = templates["surgical"].variants["front"]
    width = view.rgba.shape[1]
    small = view.shrunk(0.45)
    # The step at or just below the factor: never larger (the headroom is the caller's), at
    # most a quarter octave smaller; anchors scaled with the pixels.
    assert 0.45 / 2**0.25 - 0.01 <= small.rgba.shape[1] / width <= 0.45 + 0.01
    assert small.tint.shape == small.rgba.shape[:2]
    np.testing.assert_allclose(small.anchors / view.anchors, small.rgba.shape[1] / width, rtol=0.02)
    assert view.shrunk(0.44) is small  # same step: the cached view
    assert view.shrunk(0.3) is not small
