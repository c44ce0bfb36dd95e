"""Masks laid on the 3D face (--renderer mesh): coverage by wear style, shading that varies and
follows the light, contact shadow, turned heads, determinism; the rasteriser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskforge.core.imageio import read_image
from maskforge.faces import geometry
from maskforge.faces.cascade import FaceFinder
from maskforge.synth.render import compose, mesh_render, surface
from maskforge.synth.render.overlays import apply_mask, mask_shape
from maskforge.synth.render.raster import rasterize
from maskforge.synth.render.templates import load_templates
from maskforge.synth.sampling.draws import draw_look
from maskforge.synth.sampling.params import Grain

PHOTOS = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg")
NO_GRAIN = compose.Finish(grain=0.0)


@pytest.fixture(scope="module")
def faces(unmasked_dir: Path):
    finder = FaceFinder("cascade", landmarks="mediapipe")
    out = []
    for name in PHOTOS:
        rgb = read_image(unmasked_dir / name)
        out.append((rgb, finder.find(rgb)[0]))
    return out


@pytest.fixture
def render(face_params):
    """render(rgb, face, finish=NO_GRAIN, mesh=None, **params): (masked photo, coverage) with
    the mesh renderer, seed 0."""

    def draw(rgb, face, finish=NO_GRAIN, mesh=None, **kw):
        p = face_params(**{"color": (200, 200, 200), **kw})
        template = load_templates()[p.mask_type]
        rng = np.random.default_rng(0)
        look = draw_look(rng, template, p, mask_shape(face.landmarks, template, p))
        posed = face.mesh if mesh is None else mesh
        return apply_mask(rgb, face.landmarks, template, p, look, finish, Grain(rng), True, posed)

    return draw


def at(alpha: np.ndarray, point) -> float:
    x, y = np.round(point).astype(int)
    return float(alpha[y, x])


def test_correct_wear_covers_nose_bridge_to_below_chin(faces, render) -> None:
    for rgb, face in faces:
        _, alpha = render(rgb, face)
        lm = face.landmarks
        below_chin = lm[8] + (0, 0.04 * geometry.interocular(lm))
        for point in (lm[29], lm[30], lm[33], lm[51], lm[57], below_chin):
            assert at(alpha, point) > 0.9, point
        for eye in geometry.eye_centres(lm):
            assert at(alpha, eye) < 0.05


def test_nose_out_leaves_the_nose_tip_uncovered(faces, render) -> None:
    for rgb, face in faces:
        _, alpha = render(rgb, face, wear="nose_out")
        lm = face.landmarks
        assert at(alpha, lm[30]) < 0.1  # nose tip
        assert at(alpha, lm[57]) > 0.9  # the mouth stays covered
        _, chin = render(rgb, face, wear="chin")
        assert at(chin, lm[51]) < 0.1 and at(chin, lm[8]) > 0.9


def test_shading_varies_across_the_mask(faces) -> None:
    rgb, face = faces[0]
    surf = mesh_render._surface(load_templates()["surgical"], "correct")
    posed = surface.pose_surface(surf, surface.face_frame(face.mesh))
    normals = mesh_render._grid_normals(posed, surface.GRID[::-1])
    light = (0.5, np.array([-0.3, -0.2, -0.2]))
    shade = mesh_render._shading(normals, light, np.array([0.0, 0.0, -1.0]))
    assert np.ptp(shade) > 0.2
    # Surfaces turned toward the image's left are brighter under a light from the left.
    left = normals[:, 0] < -0.3
    right = normals[:, 0] > 0.3
    assert shade[left].mean() > shade[right].mean() + 0.1


def test_mask_follows_the_light_on_the_face(faces, render) -> None:
    """The same face lit from the image's left (a gradient the test applies) gives a mask
    brighter on its left half than on its right, more so than under the photo's own light."""
    for rgb, face in faces:
        h, w = rgb.shape[:2]
        ramp = np.linspace(1.35, 0.65, w, dtype=np.float32)[None, :, None]
        lit = np.clip(rgb * ramp, 0, 255).astype(np.uint8)
        ratios = []
        for photo in (rgb, lit):
            out, alpha = render(photo, face, finish=compose.Finish(grain=0.0, cast=0.0))
            gray = out.astype(np.float32).mean(axis=2) / np.maximum(ramp[..., 0], 1e-3)
            # Undo the photo's own ramp where the photo shows through, so only the mask's
            # shading is compared: left and right of the nose line, inside the mask.
            centre = face.landmarks[27:31, 0].mean()
            inside = alpha > 0.95
            xs = np.arange(w)[None, :].repeat(h, 0)
            left = gray[inside & (xs < centre)].mean()
            right = gray[inside & (xs >= centre)].mean()
            ratios.append(left / right)
        assert ratios[1] > ratios[0] * 1.05, ratios


def test_contact_shadow_darkens_skin_above_the_mask(faces, render) -> None:
    rgb, face = faces[0]
    out, alpha = render(rgb, face)
    flat_light, _ = render(rgb, face, finish=compose.Finish(grain=0.0, light=0.0))
    lm = face.landmarks
    # Just above the mask's top edge on the cheek: darker with the shadow than without.
    column = int(round((lm[2, 0] + lm[31, 0]) / 2))
    rows = np.nonzero(alpha[:, column] > 0.5)[0]
    top = rows.min()
    band = slice(max(top - 6, 0), max(top - 1, 1))
    shadowed = out[band, column].astype(float).mean()
    plain = flat_light[band, column].astype(float).mean()
    assert shadowed < plain - 2.0


def test_turned_head_keeps_the_mask_on_the_face(unmasked_dir: Path, render) -> None:
    finder = FaceFinder("cascade", landmarks="mediapipe")
    for name in ("7.jpg", "augmented_image_144.jpg"):
        rgb = read_image(unmasked_dir / name)
        face = finder.find(rgb)[0]
        yaw = face.pose[0]
        assert abs(yaw) > 15, (name, yaw)
        _, alpha = render(rgb, face)
        lm = face.landmarks
        assert at(alpha, lm[33]) > 0.9 and at(alpha, lm[57]) > 0.9
        # The far cheek (on the side the nose points to) wraps out of view: the mask stops
        # near the face's outline there.
        covered_x = np.nonzero(alpha.max(axis=0) > 0.5)[0]
        slack = 0.2 * geometry.interocular(lm)
        if yaw > 0:
            assert covered_x.max() < lm[12:17, 0].max() + slack, name
        else:
            assert covered_x.min() > lm[0:5, 0].min() - slack, name


def test_same_seed_same_pixels(faces, render) -> None:
    rgb, face = faces[1]
    a, _ = render(rgb, face, finish=compose.Finish(), pattern="stripes")
    b, _ = render(rgb, face, finish=compose.Finish(), pattern="stripes")
    assert np.array_equal(a, b)


def test_mesh_renderer_works_from_68_points(faces, render) -> None:
    rgb, face = faces[2]
    posed = surface.mesh_from_68(face.landmarks)
    _, alpha = render(rgb, face, mesh=posed)
    assert at(alpha, face.landmarks[33]) > 0.9 and at(alpha, face.landmarks[57]) > 0.9


def test_rasterize_coverage_attributes_culling_and_depth() -> None:
    xy = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    tris = np.array([[0, 1, 3], [0, 3, 2]])
    values, covered = rasterize(xy, np.zeros(4), tris, xy.copy(), (12, 12))
    assert covered.sum() == 121 and not covered[11].any()
    assert np.allclose(values[5, 3], (3, 5))  # x, y interpolated
    _, culled = rasterize(xy, np.zeros(4), tris, xy.copy(), (12, 12), facing=-1.0)
    assert not culled.any()
    # Two overlapping squares: the nearer (smaller depth) wins.
    xy2 = np.vstack([xy, xy + 2])
    tris2 = np.vstack([tris, tris + 4])
    depth = np.r_[np.full(4, 5.0), np.full(4, 1.0)]
    label = np.r_[np.zeros(4), np.ones(4)][:, None]
    values, _ = rasterize(xy2, depth, tris2, label, (14, 14))
    assert values[6, 6, 0] == 1.0 and values[1, 1, 0] == 0.0
