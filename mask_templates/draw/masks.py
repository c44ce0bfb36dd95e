"""The masks (surgical, N95, KN95, cloth, gas) and the MASKS table of every template drawn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .coverings import bandana, gaiter, sports
from .head import FaceDepth, Hull
from .shapes import band, disc, ellipsoid_part, nose_taper, rim_point, smoothstep, strap_path
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
    tube,
)


def surgical() -> list[Part]:
    """Three-pleat surgical mask with bound side edges, nose wire and ear-loop stubs."""
    hull = Hull(
        standoff=0.035,
        y_range=(-0.3, 1.3),
        min_half_width=[(-0.3, 0.84), (0.6, 0.78), (0.85, 0.7), (1.0, 0.55), (1.3, 0.4)],
    )
    color = hex_to_rgb("#a8d4ec")
    phi_max = np.radians(84.0)

    def outline(s, t):
        y_top = -0.085 + 0.075 * s**2
        y_bot = 1.1 - 0.24 * s**2
        y = y_top + t * (y_bot - y_top)
        phi = s * phi_max * (1.0 - 0.04 * t)
        return phi, y

    pleat_edges = (0.34, 0.53, 0.72)

    def displacement(s, t):
        d = np.zeros_like(s)
        # Pleats are pressed flat at the bound sides and opened up over nose and chin.
        amp = 0.011 + 0.009 * s**2
        for e in pleat_edges:
            # Fabric above each fold edge rises gradually and drops sharply past the edge.
            rise = smoothstep(e - 0.14, e - 0.004, t)
            drop = 1.0 - smoothstep(e - 0.004, e + 0.01, t)
            d += amp * rise * drop
        d += 0.005 * band(np.abs(s), 0.915, 1.1, 0.01)  # side binding
        d += 0.002 * band(t, -0.1, 0.075, 0.01) + 0.002 * band(t, 0.93, 1.1, 0.01)  # hems
        d += 0.008 * band(t, 0.02, 0.05, 0.012) * band(s, -0.3, 0.3, 0.04)  # nose wire
        return d

    def base(s, t):
        phi, y = outline(s, t)
        return hull.point(phi, y)

    counts = grid_counts(base, (-1, 1), (0, 1))
    S, T, p0, n0 = sample_surface(base, counts=counts)
    # Outward normal: the one pointing away from the axis.
    out = p0 - np.stack([np.zeros_like(S), p0[..., 1], np.full_like(S, Hull.AXIS_Z)], -1)
    n0 = np.where(np.sum(n0 * out, -1, keepdims=True) < 0, -n0, n0)
    p = p0 + n0 * displacement(S, T)[..., None]
    n = grid_normals(p)

    grain = fabric_noise(S.shape, 11, 1.2, 0.025)
    stitches = 1.0 - 0.12 * band(np.abs(S), 0.905, 0.915, 0.003)
    stitches *= 1.0 - 0.08 * band(T, 0.068, 0.078, 0.003) - 0.08 * band(T, 0.922, 0.932, 0.003)
    for e in pleat_edges:  # the shadowed underside of each fold, crisp even when small
        stitches *= 1.0 - 0.1 * band(T, e + 0.002, e + 0.014, 0.004)
    albedo = color[None, None, :] * (grain * stitches)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.6)]

    loop_col = hex_to_rgb("#f3f3ef")
    for sign in (-1.0, 1.0):
        # Loops run back along the cheek towards the ear; only the first stretch is drawn.
        for t0, y_ear in ((0.05, -0.05), (0.95, 0.3)):
            phi0, y0 = outline(np.array(sign), np.array(t0))
            k = np.linspace(0.0, 1.0, 24)
            phi = phi0 + sign * np.radians(30.0) * k
            y = y0 + (y_ear - y0) * 0.35 * k
            path = hull.point(phi, y)
            path[:, 0] += sign * 0.012
            parts.append(tube(path, 0.011, loop_col, 0.0, sheen=0.3))
    parts.append(head_occluder())
    return parts


def n95(valve: bool = False) -> list[Part]:
    """Moulded N95 cup: white dome, welded rim, metal nose clip, head-strap stubs[, valve]."""
    face = FaceDepth()
    white = hex_to_rgb("#eeeeea")
    centre, axes = (0.0, 0.5, 0.42), (0.72, 0.7, 0.86)

    def albedo_fn(p, rim_dist):
        grain = fabric_noise(p.shape[:2], 21, 1.0, 0.02)
        flange = 1.0 - 0.08 * band(rim_dist, -0.1, 0.045, 0.004)
        weld = 1.0 - 0.12 * band(rim_dist, 0.05, 0.058, 0.003)
        alb = white[None, None] * (grain * flange * weld)[..., None]
        # Nose clip: a thin aluminium strip just inside the top of the rim.
        x, y = p[..., 0], p[..., 1]
        clip = band(x, -0.22, 0.22, 0.012) * band(rim_dist, 0.075, 0.125, 0.006) * (y < 0.15)
        metal = hex_to_rgb("#c4c8cc")
        alb = alb * (1 - clip[..., None]) + metal * clip[..., None]
        return alb, 1.0 - clip

    body, info = ellipsoid_part(
        centre, axes, face, albedo_fn, taper=nose_taper(0.72), nose_bridge=-0.1, sheen=0.5
    )
    parts = [body]
    if valve:
        # Exhalation valve housing in front of the mouth, a little below centre.
        yv = 0.6
        cz = centre[2] + axes[2] * np.sqrt(1 - ((yv - centre[1]) / axes[1]) ** 2)
        pos = np.array([0.0, yv, cz - 0.05])
        axis = np.array([0.0, 0.15, 1.0])

        def slots(r, ang):
            ring = (r > 0.07) & (r < 0.15)
            return 1.0 - 0.35 * (ring & (np.cos(ang * 12) > 0.3))

        parts += disc(
            pos,
            axis,
            0.19,
            0.1,
            hex_to_rgb("#e2e3e0"),
            hex_to_rgb("#c9cbc8"),
            rim=0.035,
            face_pattern=slots,
            specular=0.12,
            shininess=30,
        )
    hull = Hull(standoff=0.02, y_range=(-0.3, 1.3))
    strap = hex_to_rgb("#e9dfa8")
    for sign in (-1.0, 1.0):
        for y0, y_end in ((0.2, -0.3), (0.8, 1.0)):
            start = rim_point(info["rim"], y0, sign)
            phi0 = float(np.arctan2(start[0], start[2] - Hull.AXIS_Z))
            path = strap_path(hull, phi0, y0, sign, 36.0, y0 + (y_end - y0) * 0.35)
            parts.append(tube(np.vstack([start, path]), 0.016, strap, 0.0, sheen=0.3))
    parts.append(head_occluder())
    return parts


def kn95() -> list[Part]:
    """Folded KN95: two panels meeting at a welded vertical centre seam, welded border."""

    def ridge_extra(y):
        return 0.16 * smoothstep(-0.15, 0.5, y) * (1 - 0.6 * smoothstep(0.6, 1.15, y))

    hull = Hull(
        standoff=0.03,
        y_range=(-0.3, 1.3),
        ridge_extra=ridge_extra,
        min_half_width=[(-0.3, 0.82), (0.6, 0.76), (0.85, 0.66), (1.0, 0.5), (1.3, 0.4)],
        smooth_deg=4.0,
        smooth_y=0.04,
    )
    color = hex_to_rgb("#f1f1ef")
    phi_max = np.radians(80.0)

    def outline(s, t):
        y_top = -0.14 + 0.26 * s**2
        y_bot = 1.12 - 0.44 * s**2
        return s * phi_max, y_top + t * (y_bot - y_top)

    def base(s, t):
        return hull.point(*outline(s, t))

    S, T, p, n = sample_surface(base)
    # Welded seams: embossed border and centre seam, with the dotted weld texture.
    ns, nt = S.shape[1], S.shape[0]
    grain = fabric_noise(S.shape, 31, 1.0, 0.02)
    border = np.maximum.reduce(
        [
            band(np.abs(S), 0.975, 1.1, 0.004),
            band(T, -0.1, 0.03, 0.003),
            band(T, 0.97, 1.1, 0.003),
            band(S, -0.012, 0.012, 0.003),
        ]
    )
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    dots = 0.5 + 0.5 * np.cos(jj * 0.9) * np.cos(ii * 0.9)
    weld = 1.0 - border * (0.06 + 0.1 * dots)
    edge_line = 1.0 - 0.1 * np.maximum.reduce(
        [
            band(np.abs(S), 0.968, 0.973, 0.002),
            band(T, 0.033, 0.037, 0.002),
            band(T, 0.963, 0.967, 0.002),
        ]
    )
    albedo = color[None, None] * (grain * weld * edge_line)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.5)]
    loop_col = hex_to_rgb("#f3f3ef")
    for sign in (-1.0, 1.0):
        for t0, y_end in ((0.06, -0.05), (0.94, 0.3)):
            phi0, y0 = outline(np.array(sign), np.array(t0))
            path = strap_path(
                hull, float(phi0), float(y0), sign, 30.0, float(y0) + (y_end - float(y0)) * 0.35
            )
            parts.append(tube(path, 0.011, loop_col, 0.0, sheen=0.3))
    parts.append(head_occluder())
    return parts


def cloth() -> list[Part]:
    """Contoured two-piece cloth mask: soft shape, sewn centre seam and hems, fabric loops."""

    def ridge_extra(y):
        return 0.05 * smoothstep(-0.1, 0.45, y) * (1 - smoothstep(0.7, 1.1, y))

    hull = Hull(
        standoff=0.03,
        y_range=(-0.35, 1.3),
        sag_taut=0.75,
        ridge_extra=ridge_extra,
        min_half_width=[(-0.3, 0.83), (0.6, 0.74), (0.85, 0.64), (1.0, 0.5), (1.3, 0.4)],
        smooth_deg=14.0,
        smooth_y=0.07,
    )
    color = hex_to_rgb("#5b7fa8")
    phi_max = np.radians(86.0)

    def outline(s, t):
        y_top = -0.16 + 0.26 * s**2
        y_bot = 1.14 - 0.4 * s**2
        return s * phi_max * (1.0 - 0.05 * t * (1 - t)), y_top + t * (y_bot - y_top)

    def base(s, t):
        return hull.point(*outline(s, t))

    counts = grid_counts(base, (-1, 1), (0, 1))
    S, T, p0, n0 = sample_surface(base, counts=counts)
    out = p0 - np.stack([np.zeros_like(S), p0[..., 1], np.full_like(S, Hull.AXIS_Z)], -1)
    n0 = np.where(np.sum(n0 * out, -1, keepdims=True) < 0, -n0, n0)
    # Soft wrinkles where the fabric gathers towards the loops, and the sewn centre seam.
    wrinkle = soft_wrinkles(S, T, seed=41, cycles=5.0)
    gather = 0.003 * np.sin(T * np.pi * 7 + 3 * S) * smoothstep(0.55, 0.95, np.abs(S))
    seam = 0.006 * band(S, -0.012, 0.012, 0.006)
    p = p0 + n0 * (0.005 * wrinkle + gather + seam)[..., None]
    n = grid_normals(p)
    ns, nt = S.shape[1], S.shape[0]
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    weave = 1.0 + 0.03 * np.cos(jj * 1.3) * np.cos(ii * 1.3)
    stitch_rows = 0.5 + 0.5 * np.cos((jj + ii) * 0.45)
    stitches = 1.0 - 0.14 * stitch_rows * np.maximum.reduce(
        [
            band(np.abs(S), 0.955, 0.962, 0.002),
            band(T, 0.035, 0.042, 0.002),
            band(T, 0.958, 0.965, 0.002),
        ]
    )
    seam_shadow = 1.0 - 0.18 * band(np.abs(S), 0.0, 0.004, 0.003)
    grain = fabric_noise(S.shape, 43, 0.8, 0.025)
    albedo = color[None, None] * (grain * weave * stitches * seam_shadow)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.8)]
    # Loops cut from the same fabric: flat bands that start at the side edge.
    for sign in (-1.0, 1.0):
        for t0, y_end in ((0.07, -0.1), (0.93, 0.35)):
            phi0, y0 = outline(np.array(sign), np.array(t0))
            path = strap_path(
                hull,
                float(phi0) - sign * np.radians(3),
                float(y0),
                sign,
                24.0,
                float(y0) + (y_end - float(y0)) * 0.3,
                lift=0.006,
            )
            parts.append(
                ribbon(path, 0.05, np.array([0.0, 1.0, 0.0]), color * 0.97, 1.0, sheen=0.8)
            )
    parts.append(head_occluder())
    return parts


def gas() -> list[Part]:
    """Half-face elastomeric respirator: rubber body, twin filter cartridges, exhalation valve."""
    face = FaceDepth()
    rubber = hex_to_rgb("#4a4e55")
    centre, axes = (0.0, 0.5, 0.6), (0.7, 0.68, 0.62)

    def albedo_fn(p, rim_dist):
        grain = fabric_noise(p.shape[:2], 51, 1.5, 0.015)
        seal = 1.0 - 0.12 * band(rim_dist, -0.1, 0.06, 0.01)
        groove = 1.0 - 0.25 * band(rim_dist, 0.07, 0.085, 0.004)
        return rubber[None, None] * (grain * seal * groove)[..., None], 1.0

    taper = nose_taper(0.42)
    body, info = ellipsoid_part(
        centre, axes, face, albedo_fn, taper=taper, nose_bridge=-0.12, specular=0.1, shininess=12.0
    )
    parts = [body]

    def on_body(x, y):
        f = taper(np.array(y))[0]
        q = ((x / f) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
        return np.array([x, y, centre[2] + axes[2] * np.sqrt(max(1 - q, 0.0))])

    pink = hex_to_rgb("#d64a86")

    def filter_face(r, ang):
        rings = 1.0 - 0.12 * band(r, 0.30, 0.32, 0.006) - 0.1 * band(r, 0.12, 0.135, 0.006)
        label = 1.0 + 0.12 * (r < 0.12)
        return rings * label

    for sign in (-1.0, 1.0):
        mount = on_body(sign * 0.42, 0.5)
        axis = np.array([sign * 0.85, 0.05, 0.55])
        axis /= np.linalg.norm(axis)
        parts += disc(
            mount - axis * 0.03,
            axis,
            0.16,
            0.12,
            hex_to_rgb("#2e3136"),
            hex_to_rgb("#2e3136"),
            rim=0.02,
            specular=0.15,
            shininess=20,
        )
        parts += disc(
            mount + axis * 0.08,
            axis,
            0.36,
            0.17,
            pink,
            pink * 0.85,
            rim=0.05,
            face_pattern=filter_face,
            specular=0.12,
            shininess=18,
        )

    def slots(r, ang):
        y = r * np.sin(ang)
        return 1.0 - 0.45 * ((np.abs(np.cos(ang)) * r < 0.11) & (np.cos(y * 70) > 0.2) & (r > 0.04))

    valve_pos = on_body(0.0, 0.68)
    parts += disc(
        valve_pos - np.array([0, 0, 0.06]),
        np.array([0.0, 0.35, 1.0]),
        0.2,
        0.13,
        hex_to_rgb("#3a3d43"),
        hex_to_rgb("#33363b"),
        rim=0.05,
        face_pattern=slots,
        specular=0.15,
        shininess=20,
    )
    # No head-harness straps: at face scale their stubs read as stray sticks.
    parts.append(head_occluder())
    return parts


@dataclass(frozen=True)
class MaskSpec:
    """A template: how to draw it, and its templates.json fields."""

    builder: Callable[[], list[Part]]  # the parts of the covering, worn on the head model
    description: str
    default_colour: str  # "default_color"
    # "colors": a realistic palette for color="random"; a colour listed twice is drawn twice as
    # often, as in real photos where light blue, white and black surgical masks dominate.
    palette: tuple[str, ...]
    # "patterns": the prints the type typically comes in ("none" = plain; a name listed twice
    # is twice as common); None: no "patterns" field (plain).
    patterns: tuple[str, ...] | None = None


_N95_PALETTE = ("#eeeeea", "#eeeeea", "#f2f2ef", "#e9e5da", "#e4e6e8")

# Gaiters are often printed, bandanas mostly paisley or plain.
# fmt: off
MASKS: dict[str, MaskSpec] = {
    "surgical": MaskSpec(
        surgical, "pleated surgical mask with nose wire and ear loops", "#a8d4ec",
        palette=("#a8d4ec", "#a8d4ec", "#9cc8e6", "#bcd9f0", "#f2f3f1", "#f2f3f1", "#2a2b2e",
                 "#2a2b2e", "#f2b8c8", "#a9dcc0", "#e6d3c0")),
    "n95": MaskSpec(
        n95, "moulded N95 cup respirator with head straps", "#eeeeea", palette=_N95_PALETTE),
    "n95_valve": MaskSpec(
        lambda: n95(valve=True),
        "moulded N95 cup respirator with exhalation valve and head straps", "#eeeeea",
        palette=_N95_PALETTE),
    "kn95": MaskSpec(
        kn95, "folded KN95 with vertical centre seam and ear loops", "#f1f1ef",
        palette=("#f1f1ef", "#f1f1ef", "#26272a", "#8c8f94", "#e9e5da", "#a8c8e8", "#f2c4d0")),
    "cloth": MaskSpec(
        cloth, "contoured cloth mask with centre seam and fabric ear loops", "#5b7fa8",
        palette=("#26272a", "#26272a", "#3c3e44", "#8c8f94", "#283a5e", "#5b7fa8", "#f2f3f1",
                 "#d8c4a4", "#f2b8c8", "#6b6e3c", "#b8323a", "#6e2430", "#2f8c8a", "#c3b4e0")),
    "gas": MaskSpec(
        gas, "half-face elastomeric respirator (gas mask) with twin filter cartridges",
        "#4a4e55",
        palette=("#4a4e55", "#3a3d42", "#26272a", "#5c6670", "#6d7278", "#3d4a5c")),
    "gaiter": MaskSpec(
        gaiter, "neck gaiter: knit tube pulled over the nose, down over chin and neck",
        "#2b2c30",
        palette=("#26272a", "#26272a", "#26272a", "#3c3e44", "#3c3e44", "#283a5e", "#283a5e",
                 "#8c8f94", "#6b6e3c", "#6e2430", "#3f6fb5", "#2f8c8a", "#f2f3f1", "#b8323a"),
        patterns=("none", "none", "camo", "jersey", "heather", "heather", "stripes", "paisley",
                  "floral")),
    "bandana": MaskSpec(
        bandana, "bandana: square scarf folded to a triangle over nose and mouth, knotted "
        "behind the head, the point hanging below the chin", "#b8323a",
        palette=("#b8323a", "#b8323a", "#b8323a", "#26272a", "#26272a", "#26272a", "#283a5e",
                 "#283a5e", "#2f4f8f", "#6e2430", "#6b6e3c", "#8c8f94", "#f2f3f1", "#6c4c94"),
        patterns=("paisley", "paisley", "paisley", "none", "none")),
    "sports": MaskSpec(
        sports, "fitted sports mask of neoprene-like knit with a contoured centre seam and "
        "wide loops", "#26272a",
        palette=("#26272a", "#26272a", "#26272a", "#26272a", "#3c3e44", "#3c3e44", "#283a5e",
                 "#283a5e", "#8c8f94", "#f2f3f1", "#b8323a", "#3f6fb5", "#2f8c8a"),
        patterns=("none", "none", "none", "jersey", "jersey", "heather", "camo")),
}
# fmt: on
