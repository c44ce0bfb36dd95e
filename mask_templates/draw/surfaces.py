"""Surfaces sampled densely enough to render as points, their primitives (tube, sphere,
ribbon, the invisible head), texture helpers, and the renderer: shading, z-buffer at SS times
the final resolution, anti-aliased downsampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .head import head_slice, rotate_yaw

PX_PER_UNIT = 250.0  # final template pixels per unit
SS = 3  # supersampling factor
SAMPLE_SPACING = 0.75  # supersampled pixels between surface samples (< 1: few holes)
# Soft key light from above, slightly from the image's left (so folds and seams read).
LIGHT = np.array([-0.25, -0.45, 1.0]) / np.linalg.norm([-0.25, -0.45, 1.0])


@dataclass
class Part:
    """Surface samples of one part of a model, all (N, ...) arrays."""

    points: np.ndarray  # (N, 3)
    normals: np.ndarray  # (N, 3), unit
    albedo: np.ndarray  # (N, 3), linear-ish RGB 0..1
    tint: np.ndarray  # (N,)
    visible: bool = True  # False: occludes (z-buffer) but draws nothing, e.g. the head
    specular: float = 0.0
    shininess: float = 20.0
    sheen: float = 0.0  # fabric-like brightening at grazing angles


def grid_counts(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    s_range: tuple[float, float],
    t_range: tuple[float, float],
) -> tuple[int, int]:
    """Sample counts along s and t that keep samples < SAMPLE_SPACING supersampled px apart."""
    s = np.linspace(*s_range, 64)
    t = np.linspace(*t_range, 64)
    S, T = np.meshgrid(s, t)
    p = fn(S, T)
    len_s = np.linalg.norm(np.diff(p, axis=1), axis=-1).sum(axis=1).max()
    len_t = np.linalg.norm(np.diff(p, axis=0), axis=-1).sum(axis=0).max()
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    # Local stretching can exceed the average: add a margin.
    return max(int(len_s * k * 1.15), 8), max(int(len_t * k * 1.15), 8)


def sample_surface(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    s_range: tuple[float, float] = (-1.0, 1.0),
    t_range: tuple[float, float] = (0.0, 1.0),
    counts: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense grid samples of fn(s, t) -> (..., 3): returns S, T (nt, ns), points, normals."""
    ns, nt = counts or grid_counts(fn, s_range, t_range)
    s = np.linspace(*s_range, ns)
    t = np.linspace(*t_range, nt)
    S, T = np.meshgrid(s, t)
    p = fn(S, T)
    normals = grid_normals(p)
    return S, T, p, normals


def grid_normals(p: np.ndarray) -> np.ndarray:
    """Unit normals of a (nt, ns, 3) sampled surface (sign arbitrary; fixed at shading)."""
    du = np.gradient(p, axis=1)
    dv = np.gradient(p, axis=0)
    n = np.cross(du, dv)
    return n / (np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12)


def make_part(
    p: np.ndarray,
    n: np.ndarray,
    albedo: np.ndarray,
    tint: np.ndarray | float,
    keep: np.ndarray | None = None,
    **kw,
) -> Part:
    """Flatten grid arrays into a Part, keeping only samples where keep is True."""
    shape = p.shape[:-1]
    albedo = np.broadcast_to(albedo, shape + (3,))
    tint = np.broadcast_to(np.asarray(tint, np.float64), shape)
    if keep is None:
        keep = np.ones(shape, bool)
    return Part(p[keep], n[keep], albedo[keep], tint[keep], **kw)


def tube(path: np.ndarray, radius, albedo, tint: float = 0.0, caps: bool = False, **kw) -> Part:
    """A round tube along a (M, 3) polyline.

    radius: a float or (M,) radii along the path; albedo: RGB, or a function
    (frac (m, 1), ang (1, n), normals (m, n, 3)) -> (m, n, 3) for markings such as nails;
    caps: close both ends with half spheres (fingers).
    """
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    radii = np.broadcast_to(np.asarray(radius, float), (len(path),))
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    m = max(int(arc[-1] * k * 1.2), 2)
    a = np.linspace(0, arc[-1], m)
    c = np.stack([np.interp(a, arc, path[:, i]) for i in range(3)], 1)
    r = np.interp(a, arc, radii)
    tang = np.gradient(c, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    ref = np.where(np.abs(tang[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(tang, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(tang, u)
    nring = max(int(2 * np.pi * radii.max() * k * 1.2), 8)
    ang = np.linspace(0, 2 * np.pi, nring, endpoint=False)
    nrm = np.cos(ang)[None, :, None] * u[:, None] + np.sin(ang)[None, :, None] * v[:, None]
    pts = c[:, None] + r[:, None, None] * nrm
    if callable(albedo):
        alb = albedo((a / max(arc[-1], 1e-9))[:, None], ang[None, :], nrm)
    else:
        alb = np.asarray(albedo, float)
    part = make_part(pts, nrm, alb, tint, **kw)
    if caps:
        for end, direction in ((0, -tang[0]), (-1, tang[-1])):
            end_alb = alb[end].mean(0) if np.ndim(alb) == 3 else alb
            cap = sphere(c[end], r[end], end_alb, tint, hemisphere=direction, **kw)
            part = merge_parts([part, cap])
    return part


def sphere(
    centre: np.ndarray,
    radius: float,
    albedo,
    tint: float = 0.0,
    hemisphere: np.ndarray | None = None,
    **kw,
) -> Part:
    """A sphere (or the half facing `hemisphere`)."""
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    n = max(int(np.pi * radius * k * 1.2), 6)
    th = np.linspace(0, np.pi, n)[:, None]
    ph = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)[None, :]
    nrm = np.stack(
        np.broadcast_arrays(np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)), -1
    )
    keep = None if hemisphere is None else (nrm @ np.asarray(hemisphere, float)) >= -0.05
    return make_part(
        np.asarray(centre) + radius * nrm, nrm, np.asarray(albedo, float), tint, keep=keep, **kw
    )


def merge_parts(parts: list[Part]) -> Part:
    """One Part from several with the same material settings (those of the first)."""
    first = parts[0]
    return Part(
        np.concatenate([p.points for p in parts]),
        np.concatenate([p.normals for p in parts]),
        np.concatenate([p.albedo for p in parts]),
        np.concatenate([p.tint for p in parts]),
        visible=first.visible,
        specular=first.specular,
        shininess=first.shininess,
        sheen=first.sheen,
    )


@dataclass
class Rendered:
    """A rendered view: RGBA uint8, tint uint8, anchors (x, y) in its pixels."""

    rgba: np.ndarray
    tint: np.ndarray
    anchors: np.ndarray
    extra: dict = field(default_factory=dict)


def render(
    parts: list[Part], yaw_deg: float, anchors3d: np.ndarray, margin_px: float = 8.0
) -> Rendered:
    """Shade, z-buffer and anti-alias parts seen with the head turned by yaw_deg."""
    pts = [rotate_yaw(p.points, yaw_deg) for p in parts]
    nrm = [rotate_yaw(p.normals, yaw_deg) for p in parts]
    anchors = rotate_yaw(anchors3d, yaw_deg)[:, :2] if len(anchors3d) else np.zeros((0, 2))
    vis = np.concatenate([q[:, :2] for q, p in zip(pts, parts, strict=True) if p.visible])
    lo = np.minimum(vis.min(0), anchors.min(0) if len(anchors) else vis.min(0))
    hi = np.maximum(vis.max(0), anchors.max(0) if len(anchors) else vis.max(0))
    pad = margin_px / PX_PER_UNIT
    lo, hi = lo - pad, hi + pad
    width = int(np.ceil((hi[0] - lo[0]) * PX_PER_UNIT))
    height = int(np.ceil((hi[1] - lo[1]) * PX_PER_UNIT))
    W, H = width * SS, height * SS

    colors, tints, alphas, flat_idx, depth = [], [], [], [], []
    view = np.array([0.0, 0.0, 1.0])
    half = LIGHT + view
    half /= np.linalg.norm(half)
    for q, n, part in zip(pts, nrm, parts, strict=True):
        n = np.where((n @ view)[:, None] < 0, -n, n)  # two-sided surfaces
        ndl = np.clip(n @ LIGHT, 0.0, 1.0)
        ndv = np.clip(n @ view, 0.0, 1.0)
        shade = 0.5 + 0.55 * ndl
        col = part.albedo * shade[:, None]
        if part.sheen:
            col = col + part.sheen * (1.0 - ndv)[:, None] ** 3 * 0.25
        if part.specular:
            col = col + part.specular * (np.clip(n @ half, 0, 1) ** part.shininess)[:, None]
        u = (q[:, 0] - lo[0]) * PX_PER_UNIT * SS + (SS - 1) / 2
        v = (q[:, 1] - lo[1]) * PX_PER_UNIT * SS + (SS - 1) / 2
        iu, iv = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
        ok = (iu >= 0) & (iu < W) & (iv >= 0) & (iv < H)
        flat_idx.append((iv * W + iu)[ok])
        depth.append(q[ok, 2])
        colors.append(col[ok])
        tints.append(part.tint[ok])
        alphas.append(np.full(int(ok.sum()), 1.0 if part.visible else 0.0))
    idx = np.concatenate(flat_idx)
    z = np.concatenate(depth)
    order = np.lexsort((-z, idx))  # per pixel, nearest sample first
    idx_sorted = idx[order]
    first = np.ones(len(order), bool)
    first[1:] = idx_sorted[1:] != idx_sorted[:-1]
    win = order[first]
    pix = idx[win]
    img = np.zeros((H * W, 5), np.float64)
    img[pix, :3] = np.concatenate(colors)[win]
    img[pix, 3] = np.concatenate(alphas)[win]
    img[pix, 4] = np.concatenate(tints)[win]
    img = _fill_pinholes(img.reshape(H, W, 5))
    a = img[..., 3:4]
    prem = np.concatenate([img[..., :3] * a, a, img[..., 4:5] * a], -1).astype(np.float32)
    small = cv2.resize(prem, (width, height), interpolation=cv2.INTER_AREA)
    alpha = np.clip(small[..., 3], 0.0, 1.0)
    safe = np.maximum(alpha, 1e-6)[..., None]
    rgb = np.clip(small[..., :3] / safe, 0.0, 1.0)
    tint = np.clip(small[..., 4] / safe[..., 0], 0.0, 1.0)
    a8 = np.rint(alpha * 255).astype(np.uint8)
    rgba = np.dstack([np.rint(_encode(rgb) * 255).astype(np.uint8), a8])
    rgba[a8 == 0, :3] = 0
    t8 = np.rint(tint * 255).astype(np.uint8)
    t8[a8 == 0] = 0
    anchors_px = (anchors - lo) * PX_PER_UNIT
    return Rendered(rgba, t8, anchors_px)


def _fill_pinholes(img: np.ndarray) -> np.ndarray:
    """Fill empty supersampled pixels that are nearly surrounded by drawn ones."""
    drawn = (img[..., 3] > 0).astype(np.float32)
    count = cv2.boxFilter(drawn, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    holes = (drawn == 0) & (count >= 6)
    if holes.any():
        sums = np.dstack(
            [
                cv2.boxFilter(
                    (img[..., c] * drawn).astype(np.float32),
                    -1,
                    (3, 3),
                    normalize=False,
                    borderType=cv2.BORDER_CONSTANT,
                )
                for c in range(5)
            ]
        )
        img[holes] = sums[holes] / count[holes][:, None]
    return img


def _encode(rgb: np.ndarray) -> np.ndarray:
    """Shading is computed on display values; keep them (hook for a tone curve)."""
    return rgb


def mirror(r: Rendered) -> Rendered:
    """The mirror view: flipped pixels, anchors flipped with left/right names swapped."""
    w = r.rgba.shape[1]
    anchors = r.anchors.copy()
    anchors[:, 0] = (w - 1) - anchors[:, 0]
    anchors = anchors[[0, 2, 1, 4, 3, 5]]
    return Rendered(r.rgba[:, ::-1].copy(), r.tint[:, ::-1].copy(), anchors)


def hex_to_rgb(h: str) -> np.ndarray:
    """'#rrggbb' -> float RGB 0..1."""
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], np.float64) / 255.0


def soft_wrinkles(S: np.ndarray, T: np.ndarray, seed: int, cycles: float) -> np.ndarray:
    """Smooth random undulation over the (s, t) parameter grid, about -1..1."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(S)
    for _ in range(6):
        fs, ft = rng.uniform(0.5, cycles, 2) * np.pi
        out += np.sin(fs * S + rng.uniform(0, 2 * np.pi)) * np.sin(ft * T + rng.uniform(0, 6.3))
    return out / 3.0


def fabric_noise(shape: tuple[int, int], seed: int, scale: float, amount: float) -> np.ndarray:
    """Multiplicative grain around 1.0 on a (nt, ns) grid, features `scale` samples wide."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape).astype(np.float32)
    if scale > 0:
        n = cv2.GaussianBlur(n, (0, 0), scale)
        n /= max(float(n.std()), 1e-6)
    return 1.0 + amount * n.astype(np.float64)


def head_occluder(y_range: tuple[float, float] = (-0.5, 1.25)) -> Part:
    """The head itself, invisible: hides straps and loops that pass behind it."""
    ys = np.linspace(*y_range, 140)
    rows = [head_slice(float(y), 161) for y in ys]
    xs = np.array([r[:, 0] for r in rows])
    zs = np.array([r[:, 1] for r in rows])
    # Densify: interpolate the coarse slice grid.
    ns = int(4.0 * PX_PER_UNIT * SS / SAMPLE_SPACING / 4)
    nt = int((y_range[1] - y_range[0]) * PX_PER_UNIT * SS / SAMPLE_SPACING / 2)
    si = np.linspace(0, xs.shape[1] - 1, ns)
    ti = np.linspace(0, len(ys) - 1, nt)
    S, T = np.meshgrid(si, ti)
    x = cv2.remap(
        xs.astype(np.float32), S.astype(np.float32), T.astype(np.float32), cv2.INTER_LINEAR
    )
    z = cv2.remap(
        zs.astype(np.float32), S.astype(np.float32), T.astype(np.float32), cv2.INTER_LINEAR
    )
    y = np.interp(T, np.arange(len(ys)), ys)
    p = np.stack([x, y, z], -1).astype(np.float64)
    # Pull it slightly inside so that it never hides the mask resting on the face.
    p[..., 2] -= 0.03
    return make_part(p, grid_normals(p), np.zeros(3), 0.0, visible=False)


def ribbon(path: np.ndarray, width: float, up: np.ndarray, albedo, tint, **kw) -> Part:
    """A flat band of `width` along a (M, 3) polyline, its width along `up` (unit-ish)."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    m = max(int(arc[-1] * k * 1.2), 2)
    a = np.linspace(0, arc[-1], m)
    c = np.stack([np.interp(a, arc, path[:, i]) for i in range(3)], 1)
    nw = max(int(width * k * 1.2), 3)
    w = np.linspace(-width / 2, width / 2, nw)
    pts = c[:, None] + w[None, :, None] * np.asarray(up, float)[None, None]
    return make_part(pts, grid_normals(pts), np.asarray(albedo, float), tint, **kw)
