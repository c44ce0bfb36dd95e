"""Gaiters, bandanas and sports masks on real photos: what they cover, what they leave, their
shape below the chin, palettes and prints; `maskforge templates` and `preview` show them."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.faces import geometry
from maskforge.synth.render import compose
from maskforge.synth.render.overlays import apply_mask, mask_shape
from maskforge.synth.render.templates import load_templates
from maskforge.synth.sampling.draws import draw_look
from maskforge.synth.sampling.params import Grain
from maskforge.synth.sampling.patterns import make_pattern

COVERINGS = ("gaiter", "bandana", "sports")
# Real photos from ../shared/faces/unmasked: frontal and well lit (test_render's), turned both
# ways (so the left and right views are used), dark, bright, and a large photo.
PHOTOS = (
    "0_0_caiguoqing_0146.jpg",
    "120.jpg",
    "125.jpg",
    "0_0_fengjianyu_0072.jpg",  # yaw about -47: the left view
    "augmented_image_257.jpg",  # yaw about +60 (MTCNN fit): the right view, near profile
    "augmented_image_263.jpg",  # dark
    "1_0_aidai_0161.jpg",  # bright
    "184.jpg",  # larger, dim
)


@pytest.fixture(scope="module")
def faces(photo_faces) -> list[tuple[np.ndarray, object]]:
    return photo_faces(PHOTOS)


def masked(face_params, rgb: np.ndarray, landmarks: np.ndarray, mask_type: str, **kw):
    """(output, alpha) of one covering, with the variant the pipeline would choose."""
    template = load_templates()[mask_type]
    variant = geometry.choose_variant(geometry.estimate_yaw(landmarks))
    params = face_params(**{"mask_type": mask_type, "variant": variant, **kw})
    rng = np.random.default_rng(0)
    look = draw_look(rng, template, params, mask_shape(landmarks, template, params))
    return apply_mask(
        rgb, landmarks, template, params, look, compose.Finish(), Grain(rng), return_alpha=True
    )


def padded(rgb: np.ndarray, face, pad: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The photo on a grey canvas `pad` photo heights larger below and to the sides, and its
    landmarks there: room to see how far a covering hangs below the chin of a tight crop."""
    h = rgb.shape[0]
    p = int(round(pad * h))
    canvas = cv2.copyMakeBorder(rgb, 0, p, p, p, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    return canvas, face.landmarks + [p, 0]


def _at(alpha: np.ndarray, point) -> float:
    return float(alpha[int(round(point[1])), int(round(point[0]))])


def _face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(across, down) unit vectors of the face and the nose-anchor-to-chin length along down."""
    left, right = geometry.eye_centres(lm)
    across = (right - left) / np.linalg.norm(right - left)
    down = np.array([-across[1], across[0]])
    return across, down, float((lm[8] - lm[29]) @ down)


def _eyes_untouched(out: np.ndarray, rgb: np.ndarray, lm: np.ndarray) -> None:
    # As in test_render: a quarter eye distance round each eye stays as it was, but for the
    # faint tail of the feathered top edge.
    iod = geometry.interocular(lm)
    for eye in geometry.eye_centres(lm):
        x0, x1 = int(eye[0] - 0.25 * iod), int(eye[0] + 0.25 * iod)
        y0, y1 = int(eye[1] - 0.15 * iod), int(eye[1] + 0.15 * iod)
        diff = np.abs(out[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1].astype(int))
        assert diff.max() <= 3 and diff.mean() < 0.1, (diff.max(), diff.mean())


@pytest.mark.parametrize("mask_type", COVERINGS)
def test_coverings_cover_nose_mouth_and_chin_and_stay_off_the_eyes(faces, mask_type, face_params):
    for photo, face in faces:
        rgb, lm = padded(photo, face)  # some tight crops cut the chin off
        out, alpha = masked(face_params, rgb, lm, mask_type)
        iod = geometry.interocular(lm)
        # The nose bridge: the nose anchor (landmark 29) and a third of the way up to 28. Past
        # ~55 degrees of yaw the nose line is the face's silhouette, where the side view's top
        # edge is feathered: there the anchor need only be inside the edge.
        if abs(geometry.estimate_yaw(lm)) < 55:
            assert _at(alpha, lm[29]) > 0.9 and _at(alpha, lm[29] + (lm[28] - lm[29]) / 3) > 0.9
        else:
            assert _at(alpha, lm[29]) > 0.5
        assert _at(alpha, lm[30]) > 0.9  # the nose tip
        assert _at(alpha, lm[62:67].mean(axis=0)) > 0.9  # the mouth
        assert _at(alpha, lm[8] - [0, 0.1 * iod]) > 0.9  # the chin
        for corner in (48, 54):
            assert _at(alpha, lm[corner]) > 0.9
        _eyes_untouched(out, rgb, lm)


def test_gaiter_rides_up_to_landmark_28_over_the_bridge(faces, face_params):
    # Pulled up over the nose, a gaiter covers more of the bridge than a surgical mask does.
    gaiter, surgical = [], []
    for rgb, face in faces:
        gaiter.append(
            _at(masked(face_params, rgb, face.landmarks, "gaiter")[1], face.landmarks[28])
        )
        surgical.append(
            _at(masked(face_params, rgb, face.landmarks, "surgical")[1], face.landmarks[28])
        )
    assert np.mean(gaiter) > 0.6 and np.mean(gaiter) > np.mean(surgical) + 0.4, (gaiter, surgical)


def _coverage_below_chin(alpha: np.ndarray, lm: np.ndarray):
    """(how far the covering reaches below landmark 8, in nose-to-chin lengths; its width
    across the face at depth d below the chin, in jaw widths, as a function)."""
    across, down, unit = _face_axes(lm)
    ys, xs = np.nonzero(alpha > 0.5)
    pts = np.stack([xs, ys], axis=1).astype(float)
    depth = (pts - lm[8]) @ down / unit
    side = (pts - lm[8]) @ across
    jaw = float((lm[12] - lm[4]) @ across)

    def width(d: float) -> float:
        row = side[np.abs(depth - d) < 0.02]
        return float(np.ptp(row)) / jaw if len(row) else 0.0

    return float(depth.max()), width, side[depth > depth.max() - 0.03].mean() / jaw


def test_bandana_triangle_hangs_below_the_chin_to_a_point(faces, face_params):
    for rgb, face in faces:
        canvas, lm = padded(rgb, face)
        _, alpha = masked(face_params, canvas, lm, "bandana")
        reach, width, tip_side = _coverage_below_chin(alpha, lm)
        # The point lies well below landmark 8 (drawn 0.68 nose-to-chin lengths below it)...
        assert reach > 0.35, reach
        # ... near the middle (turned heads shift it a little), and the cloth narrows towards
        # it: a triangle, not a curtain.
        assert abs(tip_side) < 0.25, tip_side
        assert width(0.1) > 0.6
        assert width(0.85 * reach) < 0.45 * width(0.1), (width(0.85 * reach), width(0.1))


def test_gaiter_hangs_over_the_neck_as_wide_as_the_jaw(faces, face_params):
    for rgb, face in faces:
        canvas, lm = padded(rgb, face)
        _, alpha = masked(face_params, canvas, lm, "gaiter")
        reach, width, _ = _coverage_below_chin(alpha, lm)
        assert reach > 0.5, reach  # drawn 0.78 below the chin, down to the collar
        # A tube over the neck: below the chin it stays about as wide as the jaw.
        for depth in (0.2, 0.4):
            assert width(depth) > 0.9, (depth, width(depth))


def test_sports_mask_tucks_under_the_chin_only(faces, face_params):
    for rgb, face in faces:
        canvas, lm = padded(rgb, face)
        reach, _, _ = _coverage_below_chin(masked(face_params, canvas, lm, "sports")[1], lm)
        assert 0.0 < reach < 0.35, reach


@pytest.fixture(scope="module")
def templates():
    return load_templates()


@pytest.mark.parametrize("mask_type", COVERINGS)
def test_palettes_are_dark_heavy_as_on_real_streets(templates, mask_type):
    colors = np.array(templates[mask_type].colors, float) / 255.0
    luminance = colors @ [0.299, 0.587, 0.114]
    # Black, charcoal, navy: two draws in five at least (the rest: red, grey, white...).
    assert np.mean(luminance < 0.3) >= 0.4, luminance
    assert len(set(map(tuple, colors))) >= 8  # and still varied


def test_gaiter_has_no_straps_everything_takes_the_colour(templates):
    for v in templates["gaiter"].variants.values():
        opaque = v.rgba[..., 3] == 255
        assert np.mean(v.tint[opaque] > 0.99) > 0.999


def test_sports_mask_has_a_centre_seam(templates):
    v = templates["sports"].variants["front"]
    x = int(round(v.anchors[0][0]))
    y0, y1 = int(v.anchors[0][1]) + 20, int(v.anchors[5][1]) - 20
    lum = v.rgba[y0:y1, :, :3].astype(float).mean(axis=2)
    seam = lum[:, x - 1 : x + 2].mean()
    beside = np.concatenate([lum[:, x - 14 : x - 8], lum[:, x + 9 : x + 15]], axis=1).mean()
    assert seam < beside - 2.0, (seam, beside)


def test_typical_prints_are_recorded_per_type(templates):
    assert templates["bandana"].patterns.count("paisley") > len(templates["bandana"].patterns) / 2
    assert "jersey" in templates["sports"].patterns and "camo" in templates["gaiter"].patterns
    assert templates["surgical"].patterns == ()


def test_unknown_print_in_the_metadata_is_named(tmp_path):
    import json

    root = tmp_path / "tpl"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "mask_templates",
        root,
        ignore=shutil.ignore_patterns("*.py", "__pycache__"),
    )
    meta = json.loads((root / "templates.json").read_text())
    meta["templates"]["bandana"]["patterns"] = ["paisley", "tartan"]
    (root / "templates.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="bandana.*tartan"):
        load_templates(root)


def test_paisley_is_mostly_white_on_a_red_bandana():
    red = (184, 50, 58)
    white = 0
    for seed in range(20):
        out = make_pattern("paisley", (200, 300), np.random.default_rng(seed), red)
        white += (out.min(axis=2) > 0.85).mean() > 0.05
    assert white >= 14


def test_templates_command_lists_the_coverings():
    result = CliRunner().invoke(cli, ["templates"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(COVERINGS) <= listed


def test_preview_shows_synthesized_coverings(unmasked_dir: Path, tmp_path: Path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in PHOTOS[:3]:
        shutil.copy(unmasked_dir / name, raw / name)
    monkeypatch.chdir(tmp_path)  # synthesize records its output in ./.maskforge/state.json
    out = tmp_path / "out"
    args = ["synthesize", str(raw), str(out), "--workers", "1", "--seed", "3"]
    result = CliRunner().invoke(cli, [*args, "--mask-type", "gaiter,bandana,sports"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "synthesis.csv", dtype=str, keep_default_na=False)
    assert set(table["mask_type"]) <= set(COVERINGS) and len(table) == 3
    kind = table["mask_type"].iloc[0]
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        cli, ["preview", str(out), "--mask-type", kind, "--sheet", str(sheet)]
    )
    assert result.exit_code == 0, result.output
    matching = int((table["mask_type"] == kind).sum())
    assert sheet.is_file() and f"of {matching} matching rows" in result.output
