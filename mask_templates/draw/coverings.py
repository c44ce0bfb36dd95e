"""Coverings worn as masks: a neck gaiter, a bandana and a fitted sports mask."""

from __future__ import annotations

import numpy as np

from .head import Hull, interp
from .shapes import band, outward, smoothstep, strap_path, superellipse_radius
from .surfaces import (
    Part,
    fabric_noise,
    grid_counts,
    grid_normals,
    head_occluder,
    hex_to_rgb,
    make_part,
    ribbon,
    sample_surface,
    soft_wrinkles,
)

GAITER_BOTTOM = 1.78  # the hem, over the neck well below the chin (y = 1)
# The top edge by azimuth (degrees): over the nose bridge above landmark 28, falling steeply
# off the nose so it stays below the eyes, then under the ears towards the nape.
_GAITER_TOP = [
    (0, -0.19),
    (3, -0.183),
    (6, -0.15),
    (10, -0.1),
    (18, -0.065),
    (30, -0.035),
    (45, 0.0),
    (70, 0.04),
    (90, 0.08),
    (120, 0.2),
    (150, 0.3),
]
# Half-width of the tube by height: face-wide at the cheeks, in at the neck, out at the collar.
_GAITER_WIDTH = [(0.3, 0.84), (1.0, 0.8), (1.35, 0.71), (1.78, 0.76), (1.9, 0.77)]


def gaiter() -> list[Part]:
    """Neck gaiter: a seamless knit tube pulled up over the nose and down over chin and neck."""

    def floor(y, phis):
        # Below the mouth the tube stops following the face: it spans from the chin to the
        # collar, about as wide as the face at the ears, falling back a little towards the neck.
        down = smoothstep(1.0, 1.8, y)
        return superellipse_radius(
            phis, float(interp(_GAITER_WIDTH, y)), 0.7 - 0.28 * down, 0.72, 3.0
        )

    hull = Hull(
        standoff=0.03,
        y_range=(-0.4, GAITER_BOTTOM + 0.06),
        sag_taut=0.9,
        min_half_width=[(-0.4, 0.86), (0.3, 0.86), (0.7, 0.84), (1.0, 0.78), (1.9, 0.6)],
        smooth_deg=12.0,
        smooth_y=0.08,
        floor=floor,
    )
    phi_max = np.radians(150.0)
    tops = [(np.radians(a), y) for a, y in _GAITER_TOP]

    def outline(s, t):
        phi = s * phi_max
        y_top = interp(tops, np.abs(phi))
        y_bot = GAITER_BOTTOM + 0.02 * np.sin(3.1 * s + 0.5)  # the hem hangs a little unevenly
        return phi, y_top + t * (y_bot - y_top)

    def base(s, t):
        return hull.point(*outline(s, t))

    S, T, p0, n0 = sample_surface(base, counts=grid_counts(base, (-1, 1), (0, 1)))
    n0 = outward(p0, n0)
    phi, y = outline(S, T)
    y_top = interp(tops, np.abs(phi))
    below_top = y - y_top  # units below the top edge
    # Rings of bunched fabric round the neck, drooping at the front; fine tension lines fanning
    # from the nose bridge over the cheeks; the rolled top hem.
    ring = y - 0.07 * np.cos(np.clip(phi, -np.pi / 2, np.pi / 2))
    bunch = 0.6 * np.sin(2 * np.pi * ring / 0.15) + 0.4 * np.sin(2 * np.pi * ring / 0.083 + 1.3)
    bunch *= smoothstep(1.0, 1.25, y) * (0.6 + 0.4 * soft_wrinkles(S, T, seed=91, cycles=3.0))
    tension = np.sin(np.arctan2(y + 0.15, np.abs(phi) + 0.05) * 40.0) * smoothstep(0.0, 0.1, y)
    tension *= 1.0 - smoothstep(0.4, 0.8, y)
    hem = band(below_top, -0.1, 0.035, 0.012) + band(y, GAITER_BOTTOM - 0.03, 2.0, 0.01)
    disp = 0.015 * bunch + 0.0015 * tension + 0.004 * soft_wrinkles(S, T, 93, 6.0) + 0.004 * hem
    p = p0 + n0 * disp[..., None]
    n = grid_normals(p)
    color = hex_to_rgb("#2b2c30")
    ns, nt = S.shape[1], S.shape[0]
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    knit = 1.0 + 0.035 * np.cos(jj * 1.7) * (0.7 + 0.3 * np.cos(ii * 0.9))  # fine wales
    edge = 1.0 - 0.14 * band(below_top, 0.034, 0.042, 0.004)  # the hem's stitched fold
    # The chin shades the fabric just below it.
    chin_shadow = 1.0 - 0.22 * np.exp(-(((y - 1.1) / 0.09) ** 2)) * np.cos(phi / 2) ** 4
    grain = fabric_noise(S.shape, 95, 1.0, 0.02)
    albedo = color[None, None] * (grain * knit * edge * chin_shadow)[..., None]
    return [make_part(p, n, albedo, 1.0, sheen=0.7), head_occluder()]


BANDANA_POINT = 1.68  # the triangle's point, hanging well below the chin (y = 1)
# The folded top edge by azimuth (degrees): over the nose bridge, under the eyes, to the knot.
_BANDANA_TOP = [
    (0, -0.17),
    (3, -0.163),
    (6, -0.135),
    (10, -0.095),
    (18, -0.065),
    (30, -0.045),
    (60, -0.02),
    (90, 0.02),
    (125, 0.05),
]
_BANDANA_PHI = 125.0  # where the two ends leave the sides of the head towards the knot
_BANDANA_END = 0.15  # height of the lower edge there: the triangle's sides rise to the knot


def bandana() -> list[Part]:
    """Square scarf folded to a triangle: folded edge over the nose, knot behind the head, the
    point hanging below the chin, soft swag folds between the ears."""

    def floor(y, phis):
        # Below the jaw the cloth hangs free: about the width of the face at the jaw, narrowing
        # towards the point, and a little further back as it falls.
        down = smoothstep(0.9, BANDANA_POINT, y)
        return superellipse_radius(phis, 0.8 - 0.18 * down, 0.72 - 0.1 * down, 0.72, 2.6)

    hull = Hull(
        standoff=0.04,
        y_range=(-0.35, BANDANA_POINT + 0.05),
        sag_taut=0.8,
        min_half_width=[(-0.35, 0.86), (0.6, 0.84), (1.0, 0.78), (1.8, 0.55)],
        smooth_deg=14.0,
        smooth_y=0.08,
        floor=floor,
    )
    phi_max = np.radians(_BANDANA_PHI)
    tops = [(np.radians(a), y) for a, y in _BANDANA_TOP]

    def bottom(phi):
        # The lower edge: straight sides from the point up to the ends, the point rounded a little.
        k = (BANDANA_POINT - _BANDANA_END) / phi_max
        return BANDANA_POINT - k * (np.sqrt(phi**2 + 0.06**2) - 0.06)

    def outline(s, t):
        phi = s * phi_max
        y_top = interp(tops, np.abs(phi))
        return phi, y_top + t * (bottom(phi) - y_top)

    def base(s, t):
        return hull.point(*outline(s, t))

    S, T, p0, n0 = sample_surface(base, counts=grid_counts(base, (-1, 1), (0, 1)))
    n0 = outward(p0, n0)
    phi, y = outline(S, T)
    below_top = y - interp(tops, np.abs(phi))
    above_bottom = bottom(phi) - y
    # Folds: the hanging cloth falls in a few soft folds that run down towards the point,
    # roughly along its sides, irregular in depth and spacing.
    k = (BANDANA_POINT - _BANDANA_END) / phi_max
    along = y + 0.55 * k * np.abs(phi)
    folds = np.sin(2 * np.pi * along / 0.3 + 1.2 * soft_wrinkles(S, T, 101, 2.5))
    folds *= (0.5 * smoothstep(0.55, 1.05, y) + 0.5 * smoothstep(1.05, 1.45, y)) * (
        0.6 + 0.4 * soft_wrinkles(S, T, 107, 2.0)
    )
    radial = np.sin(np.arctan2(phi, BANDANA_POINT + 0.3 - y) * 9.0) * smoothstep(1.15, 1.55, y)
    hem = band(below_top, -0.1, 0.075, 0.015)  # the folded edge: several layers thick
    disp = 0.024 * folds + 0.01 * radial + 0.006 * hem + 0.005 * soft_wrinkles(S, T, 103, 5.0)
    p = p0 + n0 * disp[..., None]
    n = grid_normals(p)
    color = hex_to_rgb("#b8323a")
    ns, nt = S.shape[1], S.shape[0]
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    weave = 1.0 + 0.025 * np.cos(jj * 1.4) * np.cos(ii * 1.4)  # plain-woven cotton
    crease = 1.0 - 0.16 * band(below_top, 0.072, 0.082, 0.006)  # under the folded edge
    stitched = 1.0 - 0.12 * band(above_bottom, 0.018, 0.024, 0.003)  # rolled hem
    chin_shadow = 1.0 - 0.18 * np.exp(-(((y - 1.08) / 0.1) ** 2)) * np.cos(phi / 2) ** 4
    grain = fabric_noise(S.shape, 105, 1.0, 0.02)
    albedo = color[None, None] * (grain * weave * crease * stitched * chin_shadow)[..., None]
    return [make_part(p, n, albedo, 1.0, sheen=0.5), head_occluder()]


def sports() -> list[Part]:
    """Fitted sports mask of neoprene-like knit: contoured centre seam, bound edges, wide loops
    cut from the same fabric."""

    def ridge_extra(y):
        return 0.07 * smoothstep(-0.1, 0.4, y) * (1 - smoothstep(0.65, 1.1, y))

    hull = Hull(
        standoff=0.035,
        y_range=(-0.35, 1.3),
        sag_taut=0.92,
        ridge_extra=ridge_extra,
        min_half_width=[(-0.3, 0.82), (0.6, 0.74), (0.85, 0.64), (1.0, 0.5), (1.3, 0.4)],
        smooth_deg=12.0,
        smooth_y=0.06,
    )
    phi_max = np.radians(84.0)

    def outline(s, t):
        # A peak over the nose, the top falling steeply to the cheeks; a cup under the chin.
        y_top = -0.17 + 0.24 * np.abs(s) ** 0.6 + 0.04 * s**2
        y_bot = 1.13 - 0.36 * s**2
        return s * phi_max, y_top + t * (y_bot - y_top)

    def base(s, t):
        return hull.point(*outline(s, t))

    S, T, p0, n0 = sample_surface(base, counts=grid_counts(base, (-1, 1), (0, 1)))
    n0 = outward(p0, n0)
    _, y = outline(S, T)
    # Distance to the edge in units (roughly): binding along the whole outline.
    y_top = outline(S, np.zeros_like(T))[1]
    y_bot = outline(S, np.ones_like(T))[1]
    edge_dist = np.minimum.reduce([y - y_top, y_bot - y, (1 - np.abs(S)) * phi_max * 0.8])
    seam = band(S, -0.008, 0.008, 0.005)
    binding = band(edge_dist, -0.1, 0.03, 0.006)
    disp = 0.007 * seam + 0.006 * binding + 0.002 * soft_wrinkles(S, T, 111, 4.0)
    p = p0 + n0 * disp[..., None]
    n = grid_normals(p)
    color = hex_to_rgb("#26272a")
    ns, nt = S.shape[1], S.shape[0]
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    # Flatlock stitching on the seam (a zigzag), a stitched line inside the binding.
    zigzag = band(np.abs(S * phi_max * 0.8 - 0.012 * np.sin(ii * 0.5)), 0.0, 0.004, 0.002)
    stitch = 1.0 + 0.25 * zigzag * band(S, -0.03, 0.03, 0.01)
    stitch *= 1.0 - 0.15 * band(edge_dist, 0.031, 0.036, 0.002) * (0.6 + 0.4 * np.cos(jj * 0.7))
    seam_shadow = 1.0 - 0.2 * band(np.abs(S), 0.0, 0.005, 0.003)
    grain = fabric_noise(S.shape, 113, 0.8, 0.015)
    albedo = color[None, None] * (grain * stitch * seam_shadow)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.45, specular=0.05, shininess=14.0)]
    # Wide ear loops of the same fabric, continuing the side edge towards the ears.
    for sign in (-1.0, 1.0):
        phi0, y0 = outline(np.array(sign), np.array(0.5))
        path = strap_path(
            hull,
            float(phi0) - sign * np.radians(3),
            float(y0),
            sign,
            16.0,
            float(y0) - 0.05,
            lift=0.006,
        )
        parts.append(ribbon(path, 0.09, np.array([0.0, 1.0, 0.0]), color, 1.0, sheen=0.45))
    parts.append(head_occluder())
    return parts
