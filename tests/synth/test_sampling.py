"""The sampler's draws: what a mask's look and a hard negative's parameters hold, and the order
they take from the generator (fixed, so that a seed keeps giving the same images)."""

from __future__ import annotations

import numpy as np
import pytest

from maskforge.synth.render.templates import load_occluders, load_templates
from maskforge.synth.sampling.draws import (
    ACCENT_COLORS,
    OCCLUDER_COLORS,
    SCARF_PATTERNS,
    draw_look,
    draw_occluder,
)
from maskforge.synth.sampling.params import FaceParams
from maskforge.synth.sampling.patterns import make_pattern
from maskforge.synth.sampling.specs import parse_color


def _params(mask_type: str, pattern: str | None = None) -> FaceParams:
    return FaceParams(mask_type, "front", (120, 170, 210), pattern, 0.7, "correct", None, 0)


@pytest.fixture(scope="module")
def occluders():
    return load_occluders()


def test_look_has_a_texture_only_with_a_pattern_and_an_accent_only_for_accented_masks():
    templates = load_templates()
    for name, template in templates.items():
        plain = draw_look(np.random.default_rng(0), template, _params(name), (40, 60))
        assert plain.texture is None
        palette = {parse_color(c) for c in ACCENT_COLORS.get(name, ())}
        assert (plain.accent in palette) if palette else plain.accent is None, name
    cloth = _params("cloth", "dots")
    look = draw_look(np.random.default_rng(0), templates["cloth"], cloth, (40, 60))
    assert look.texture.shape == (40, 60, 3) and look.texture.dtype == np.float32
    accents = {
        draw_look(np.random.default_rng(s), templates["gas"], _params("gas"), (8, 8)).accent
        for s in range(40)
    }
    assert len(accents) > 3  # drawn, not fixed


def test_look_draws_the_texture_then_the_accent():
    template = load_templates()["gas"]
    rng = np.random.default_rng(7)
    look = draw_look(rng, template, _params("gas", "stripes"), (30, 50))
    ref = np.random.default_rng(7)
    texture = make_pattern("stripes", (30, 50), ref, (120, 170, 210))
    accents = ACCENT_COLORS["gas"]
    accent = parse_color(accents[int(ref.integers(len(accents)))])
    np.testing.assert_array_equal(look.texture, texture)
    assert look.accent == accent
    assert rng.bit_generator.state == ref.bit_generator.state


def test_occluder_choices_by_kind(occluders):
    kinds = {}
    for occluder in occluders.values():
        for seed in range(30):
            p = draw_occluder(np.random.default_rng(seed), occluder)
            assert 0.9 <= p.scale <= 1.12 and -12 <= p.turn <= 12 and len(p.shift) == 2
            if occluder.kind == "hand":
                assert p.color is None and p.texture is None  # the face's own skin
            else:
                assert p.color in {parse_color(c) for c in OCCLUDER_COLORS}
            if p.texture is not None:
                assert occluder.kind == "scarf" and p.pattern in SCARF_PATTERNS
                assert p.texture.shape == occluder.rgba.shape[:2] + (3,)
            kinds.setdefault(occluder.kind, set()).add((p.mirrored, p.pattern is not None))
    assert kinds["scarf"] >= {(False, True), (True, False)}  # both sides, patterned or not
    assert all(pattern is False for _, pattern in kinds.get("hand", ()))


def test_occluder_draw_order_is_pinned(occluders):
    # The sequence of generator calls synthesize has always made for a hard negative.
    scarf = next(o for o in occluders.values() if o.kind == "scarf")
    for seed in range(20):
        rng = np.random.default_rng(seed)
        p = draw_occluder(rng, scarf)
        ref = np.random.default_rng(seed)
        assert p.mirrored == (ref.random() < 0.5)
        assert p.scale == ref.uniform(0.9, 1.12)
        assert p.turn == ref.uniform(-12, 12)
        face_width = 97.3
        np.testing.assert_array_equal(
            0.04 * face_width * np.asarray(p.shift), ref.normal(0, 0.04 * face_width, 2)
        )
        assert p.color == parse_color(OCCLUDER_COLORS[int(ref.integers(len(OCCLUDER_COLORS)))])
        if ref.random() < 0.5:
            assert p.pattern == SCARF_PATTERNS[int(ref.integers(len(SCARF_PATTERNS)))]
            texture = make_pattern(p.pattern, scarf.rgba.shape[:2], ref, base_color=p.color)
            np.testing.assert_array_equal(p.texture, texture)
        else:
            assert p.pattern is None and p.texture is None
        assert rng.bit_generator.state == ref.bit_generator.state
        assert p == draw_occluder(np.random.default_rng(seed), scarf)  # same seed, same choices
