"""Building blocks shared by the masks and occluders: soft bands, tapers, shells cut by the
face, discs (filters, valves), strap stubs and Hull-based outlines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .head import FaceDepth, Hull
from .surfaces import PX_PER_UNIT, SAMPLE_SPACING, SS, Part, grid_normals, make_part, sample_surface


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def nose_taper(narrow: float) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A taper for ellipsoid_part: width `narrow` over the nose, full over mouth and chin."""
    grow = 1.0 - narrow

    def taper(y):
        t = np.clip((y + 0.2) / 0.75, 0.0, 1.0)
        f = narrow + grow * t * t * (3 - 2 * t)
        df = np.where((y > -0.2) & (y < 0.55), grow * 6 * t * (1 - t) / 0.75, 0.0)
        return f, df

    return taper


def band(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """1 inside [lo, hi], 0 outside, with soft edges."""
    return smoothstep(lo - soft, lo + soft, x) * (1 - smoothstep(hi - soft, hi + soft, x))


def ellipsoid_part(
    centre,
    axes,
    face: FaceDepth,
    albedo_fn,
    taper: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    theta_max_deg: float = 110.0,
    clearance: float = 0.004,
    nose_bridge: float | None = None,
    **kw,
) -> tuple[Part, dict]:
    """The part of an ellipsoid in front of the face.

    taper(y) -> (f, df/dy) scales x by f(y) (an egg shape narrower at the top);
    albedo_fn(p, rim_dist) -> (albedo, tint), rim_dist being each sample's distance from the
    rim (where the shell meets the face) along the surface, in units; nose_bridge: height
    below which the shell is pushed out over the nose (a nose clip) rather than pierced.
    Returns the part and the point of the rim at each height, for attaching straps.
    """
    cx, cy, cz = centre
    a, b, c = axes

    def shell(s, t):
        psi = (s + 1.0) * np.pi
        th = np.radians(theta_max_deg) * t
        return np.stack(
            [a * np.sin(th) * np.cos(psi), cy + b * np.sin(th) * np.sin(psi), cz + c * np.cos(th)],
            -1,
        )

    def fn(s, t):
        p = shell(s, t)
        if taper is not None:
            p[..., 0] *= taper(p[..., 1])[0]
        p[..., 0] += cx
        return p

    S, T, p, _ = sample_surface(fn)
    q = shell(S, T)
    n = np.stack([q[..., 0] / a**2, (q[..., 1] - cy) / b**2, (q[..., 2] - cz) / c**2], -1)
    if taper is not None:
        f, df = taper(q[..., 1])
        n = np.stack([n[..., 0] / f, n[..., 1] - q[..., 0] * df / f * n[..., 0], n[..., 2]], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    if nose_bridge is not None:
        # The nose clip bends the shell over the nose instead of letting the nose poke
        # through: push the shell in front of the nose below the clip's height.
        fz = face(p[..., 0], p[..., 1])
        d = np.where(np.isfinite(fz), fz + 0.03 - p[..., 2], -1.0)
        push = (
            0.5
            * (d + np.sqrt(d * d + 0.02**2))
            * smoothstep(nose_bridge - 0.06, nose_bridge + 0.04, p[..., 1])
        )
        p[..., 2] += push
        pushed = grid_normals(p)
        pushed = np.where(np.sum(pushed * n, -1, keepdims=True) < 0, -pushed, pushed)
        n = np.where((push > 1e-4)[..., None], pushed, n)
    keep = p[..., 2] - face(p[..., 0], p[..., 1]) > clearance
    # Distance from the rim along each meridian (columns run from the apex outwards).
    step = np.linalg.norm(np.diff(p, axis=0), axis=-1)
    arc = np.concatenate([np.zeros((1, p.shape[1])), np.cumsum(step, axis=0)])
    last = np.where(keep.any(axis=0), keep.shape[0] - 1 - np.argmax(keep[::-1], axis=0), 0)
    rim_arc = arc[last, np.arange(p.shape[1])]
    rim_dist = rim_arc[None, :] - arc
    albedo, tint = albedo_fn(p, rim_dist)
    rim_pts = p[last, np.arange(p.shape[1])]
    return make_part(p, n, albedo, tint, keep=keep, **kw), {"rim": rim_pts}


def rim_point(rim: np.ndarray, y: float, sign: float) -> np.ndarray:
    """The rim point at height y on the image-left (sign -1) or image-right (+1) side."""
    side = rim[np.sign(rim[:, 0]) == sign]
    return side[np.argmin(np.abs(side[:, 1] - y))]


def disc(
    centre: np.ndarray,
    axis: np.ndarray,
    radius: float,
    thickness: float,
    face_albedo,
    side_albedo,
    tint: float = 0.0,
    rim: float = 0.02,
    face_pattern: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    **kw,
) -> list[Part]:
    """A short cylinder (filter cartridge, valve, button): front cap + rounded side wall.

    centre: (3,) middle of the back face; axis: (3,) outward direction. face_pattern(r, ang)
    multiplies the front cap's albedo (rings, slots) by position on the cap.
    """
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    ref = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, ref)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    nr = max(int(radius * k * 1.2), 8)
    na = max(int(2 * np.pi * radius * k * 1.2), 16)
    r = np.linspace(0, radius - rim, nr)[:, None]
    ang = np.linspace(0, 2 * np.pi, na, endpoint=False)[None, :]
    cap = (centre + axis * thickness)[None, None] + r[..., None] * (
        np.cos(ang)[..., None] * u + np.sin(ang)[..., None] * v
    )
    cap_n = np.broadcast_to(axis, cap.shape).copy()
    alb = np.broadcast_to(np.asarray(face_albedo, float), cap.shape).copy()
    if face_pattern is not None:
        alb *= face_pattern(np.broadcast_to(r, cap.shape[:2]), np.broadcast_to(ang, cap.shape[:2]))[
            ..., None
        ]
    parts = [make_part(cap, cap_n, alb, tint, **kw)]
    # Side wall with a rounded front edge (quarter circle of radius `rim`).
    nh = max(int(thickness * k * 1.2), 4)
    nq = max(int(rim * np.pi / 2 * k * 1.5), 4)
    h = np.concatenate([np.linspace(0, thickness - rim, nh), np.full(nq, thickness - rim)])
    q = np.concatenate([np.zeros(nh), np.linspace(0, np.pi / 2, nq)])
    rad = radius - rim + rim * np.cos(q)
    hh = h + rim * np.sin(q)
    radial = np.cos(ang)[..., None] * u + np.sin(ang)[..., None] * v  # (1, na, 3)
    wall = centre + hh[:, None, None] * axis + rad[:, None, None] * radial
    wall_n = np.cos(q)[:, None, None] * radial + np.sin(q)[:, None, None] * axis
    wall_n = np.broadcast_to(wall_n, wall.shape)
    parts.append(make_part(wall, wall_n, np.asarray(side_albedo, float), tint, **kw))
    return parts


def strap_path(
    hull: Hull,
    phi0: float,
    y0: float,
    sign: float,
    span_deg: float,
    y_end: float,
    lift: float = 0.012,
) -> np.ndarray:
    """A strap or loop leaving a mask edge and following the head backwards (a stub)."""
    k = np.linspace(0.0, 1.0, 24)
    phi = phi0 + sign * np.radians(span_deg) * k
    y = y0 + (y_end - y0) * k
    path = hull.point(phi, y)
    path[:, 0] += sign * lift
    return path


def outward(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Normals n of samples p of a Hull-based surface, turned to point away from its axis."""
    out = p - np.stack(
        [np.zeros_like(p[..., 0]), p[..., 1], np.full_like(p[..., 0], Hull.AXIS_Z)], -1
    )
    return np.where(np.sum(n * out, -1, keepdims=True) < 0, -n, n)


def superellipse_radius(
    phis: np.ndarray, half_width: float, front: float, back: float, exponent: float = 2.5
) -> np.ndarray:
    """Distance from the Hull axis to a superellipse section: half_width across, front/back deep."""
    sx = np.abs(np.sin(phis)) / half_width
    sz = np.abs(np.cos(phis)) / np.where(np.cos(phis) >= 0, front, back)
    return (sx**exponent + sz**exponent) ** (-1.0 / exponent)
