"""Procedural and image-file patterns: shape, range, determinism, colours, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import write_image
from maskforge.synth.sampling import patterns
from maskforge.synth.sampling.patterns import NOVELTY_MOTIFS, PATTERN_NAMES, make_pattern

SHAPE = (120, 200)


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_pattern_shape_range_and_determinism(name):
    a = make_pattern(name, SHAPE, np.random.default_rng(7), (200, 40, 40))
    b = make_pattern(name, SHAPE, np.random.default_rng(7), (200, 40, 40))
    c = make_pattern(name, SHAPE, np.random.default_rng(8), (200, 40, 40))
    assert a.shape == (*SHAPE, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "a different seed should change the pattern"
    assert a.std(axis=(0, 1)).max() > 0.01, "a pattern is not a flat colour"


@pytest.mark.parametrize("name", [p for p in PATTERN_NAMES if p != "novelty"])
def test_base_colour_dominates(name):
    base = np.array([40, 160, 60]) / 255.0
    out = make_pattern(name, SHAPE, np.random.default_rng(1), (40, 160, 60))
    near = np.linalg.norm(out - base, axis=-1) < 0.15
    assert near.mean() > 0.3, f"{name}: the base colour should make up much of the cloth"


def test_novelty_prints_are_bold_and_differ_from_mask_to_mask():
    drawn = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        out = make_pattern("novelty", SHAPE, rng, (40, 58, 96))
        # A bold print: a tenth of the mask or more far in colour from its commonest colour.
        away = np.linalg.norm(out - np.median(out.reshape(-1, 3), axis=0), axis=-1)
        assert np.percentile(away, 90) > 0.25, f"seed {seed}: a novelty print is bold"
        drawn.append(out)
    # Ten motifs, one a mask: 60 draws give many distinct prints, not one repeated.
    distinct = {np.round(d[::8, ::8], 2).tobytes() for d in drawn}
    assert len(distinct) == len(drawn)


@pytest.mark.parametrize("motif", NOVELTY_MOTIFS)
def test_each_novelty_motif_prints_something_bold_on_the_ground(motif):
    ground = np.array([40, 58, 96], np.float32)
    canvas = np.empty((*SHAPE, 3), np.uint8)
    canvas[:] = ground.astype(np.uint8)
    accent = np.array([184, 50, 58], np.float32)
    patterns._MOTIFS[motif](canvas, np.random.default_rng(3), 0.5, ground, accent)
    moved = np.abs(canvas.astype(np.float32) - ground).max(axis=-1) > 60
    # A motif covers a real share of the mask, yet none is one flat colour.
    assert 0.05 < moved.mean() and canvas.reshape(-1, 3).std(axis=0).max() > 20


def test_skull_and_grin_sit_centred_on_the_mask():
    for motif in ("skull", "grin"):
        ground = np.array([20, 20, 24], np.float32)
        canvas = np.zeros((*SHAPE, 3), np.uint8) + 20
        patterns._MOTIFS[motif](canvas, np.random.default_rng(0), 0.5, ground, ground)
        ys, xs = np.nonzero(np.abs(canvas.astype(int) - 20).max(axis=-1) > 60)
        assert abs(xs.mean() - SHAPE[1] / 2) < 0.1 * SHAPE[1], motif
        assert 0.25 * SHAPE[0] < ys.mean() < 0.75 * SHAPE[0], motif
        assert ys.min() >= 0 and ys.max() < SHAPE[0]


def test_no_base_colour_draws_one():
    out = make_pattern("stripes", SHAPE, np.random.default_rng(0))
    assert out.shape == (*SHAPE, 3)


def test_name_is_case_insensitive():
    a = make_pattern("Dots", SHAPE, np.random.default_rng(2), (10, 10, 10))
    b = make_pattern("dots", SHAPE, np.random.default_rng(2), (10, 10, 10))
    np.testing.assert_array_equal(a, b)


def test_small_image_is_tiled(tmp_path: Path):
    tile = np.zeros((20, 30, 3), np.uint8)
    tile[:10] = (255, 0, 0)
    path = tmp_path / "swatch.png"
    write_image(path, tile)
    out = make_pattern(str(path), (60, 90), np.random.default_rng(0))
    assert out.shape == (60, 90, 3)
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])
    np.testing.assert_allclose(out[15, 0], [0, 0, 0])
    np.testing.assert_allclose(out[20, 30], [1, 0, 0])  # the second tile starts again


def test_large_image_is_scaled_to_cover(tmp_path: Path):
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 50:] = 255
    path = tmp_path / "photo.png"
    write_image(path, img)
    out = make_pattern(str(path), (80, 160), np.random.default_rng(0))
    assert out.shape == (80, 160, 3)
    assert out[:, :70].mean() < 0.05 and out[:, 90:].mean() > 0.95


def test_unknown_pattern_lists_choices():
    with pytest.raises(ValueError, match="stripes") as err:
        make_pattern("houndstooth", SHAPE, np.random.default_rng(0))
    assert "'houndstooth'" in str(err.value)


def test_unreadable_image_file_is_a_value_error(tmp_path: Path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        make_pattern(str(bad), SHAPE, np.random.default_rng(0))


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        make_pattern("dots", (0, 10), np.random.default_rng(0))
