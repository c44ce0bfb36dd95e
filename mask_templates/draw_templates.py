"""Draw every mask template and occluder PNG and templates.json, deterministically.

    python mask_templates/draw_templates.py [OUT_DIR]      (default: this folder)

Each mask is modelled as a 3D surface worn on a simple head model and rendered with numpy:
dense surface samples are shaded under a soft light, z-buffered at 3x resolution and
downsampled with INTER_AREA (anti-aliasing). The anchors are 3D face points projected by the
same camera, so anchors and pixels agree exactly in every view.

Units: 1 = the vertical distance from the nose-bridge landmark (dlib 28) to the chin (dlib 8).
Axes: x to the image's right, y down, z towards the camera; the face's frontal silhouette lies
in the plane z = 0, landmark 28 is at x = y = 0. The face proportions (contour widths, anchor
heights, and where turned faces put their anchors) were measured on dlib landmarks of real
photos (../shared/faces/unmasked).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull

PX_PER_UNIT = 250.0  # final template pixels per unit
SS = 3  # supersampling factor
SAMPLE_SPACING = 0.75  # supersampled pixels between surface samples (< 1: few holes)
YAW_DEG = 35.0
LIGHT = np.array([0.0, -0.45, 1.0]) / np.linalg.norm([0.0, -0.45, 1.0])
ANCHOR_NAMES = ("nose", "cheek_left", "cheek_right", "jaw_left", "jaw_right", "chin")

# ---------------------------------------------------------------------------------------------
# Face model
# ---------------------------------------------------------------------------------------------

# Frontal half-width of the face contour by height (mean of dlib landmarks 0..16 on frontal
# faces, normalised so that landmark 28 -> 8 is one unit); continued as the jaw underside.
_HALF_WIDTH = [(-0.6, 0.86), (-0.16, 0.84), (0.05, 0.83), (0.24, 0.80), (0.43, 0.75),
               (0.61, 0.67), (0.76, 0.56), (0.88, 0.44), (0.97, 0.32), (1.05, 0.3),
               (1.3, 0.3)]
# Depth of the widest point of each slice (the jaw line comes forward towards the chin).
_SLICE_BACK = [(-0.6, 0.0), (0.3, 0.0), (0.61, 0.05), (0.76, 0.14), (0.88, 0.26),
               (0.97, 0.36), (1.05, 0.2), (1.3, 0.0)]
# Depth of the cheek/mouth surface in front of the silhouette plane.
_FRONT = [(-0.6, 0.72), (0.0, 0.75), (0.3, 0.78), (0.6, 0.8), (0.88, 0.78), (0.97, 0.72),
          (1.05, 0.45), (1.3, 0.25)]
# Midline profile: forehead, nose bridge (28), nose tip, upper lip, lips, chin, under the chin.
_RIDGE = [(-0.6, 0.78), (-0.25, 0.86), (0.0, 0.95), (0.15, 1.07), (0.25, 1.16), (0.31, 1.08),
          (0.36, 0.95), (0.48, 0.94), (0.58, 0.9), (0.68, 0.92), (0.8, 0.86), (0.9, 0.85),
          (1.0, 0.76), (1.06, 0.5), (1.3, 0.25)]
_SLICE_EXPONENT = 3.2  # superellipse exponent of a face slice (a face is boxy in section)
_CHIN_Y = 1.0
_JAW_Y = 0.608  # mean height of landmarks 4/12
# Turned faces: dlib's far-side jaw point rides up, the near-side one down; the near-side
# points sit on the jaw in front of the ear rather than on the silhouette.
_JAW_Y_FAR, _JAW_Y_NEAR = 0.56, 0.66
_NEAR_DEPTH = {"cheek": -0.02, "jaw": 0.16}


def interp(table: list[tuple[float, float]], y: np.ndarray | float) -> np.ndarray:
    """Piecewise-linear lookup of a (y, value) table."""
    ys, vs = zip(*table, strict=True)
    return np.interp(y, ys, vs)


def head_slice(y: float, n: int = 241) -> np.ndarray:
    """(n + 2, 2) points (x, z) of the face's horizontal section at height y, left to right.

    Front half: a superellipse from the silhouette (x = -w) round the front to x = +w; the two
    extra points continue straight back past the silhouette, towards the ears.
    """
    w = float(interp(_HALF_WIDTH, y))
    z0 = float(interp(_SLICE_BACK, y))
    d = max(float(interp(_FRONT, y)) - z0, 0.05)
    phi = np.linspace(-np.pi / 2, np.pi / 2, n)
    e = 2.0 / _SLICE_EXPONENT
    x = w * np.sign(np.sin(phi)) * np.abs(np.sin(phi)) ** e
    z = z0 + d * np.abs(np.cos(phi)) ** e
    back = z0 - 0.6
    return np.concatenate([[[-w, back]], np.stack([x, z], 1), [[w, back]]])


def ridge_depth(y: np.ndarray | float) -> np.ndarray:
    """Depth of the face's midline profile (nose, lips, chin) at height y."""
    return interp(_RIDGE, y)


def rotate_yaw(p: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Rotate (..., 3) points about the vertical axis; positive yaw turns the nose to image-left."""
    t = np.radians(yaw_deg)
    c, s = np.cos(t), np.sin(t)
    out = np.array(p, dtype=np.float64, copy=True)
    out[..., 0] = p[..., 0] * c - p[..., 2] * s
    out[..., 2] = p[..., 0] * s + p[..., 2] * c
    return out


def face_anchors_3d(yaw_deg: float) -> np.ndarray:
    """(6, 3) face points of ANCHOR_NAMES for a head turned by yaw_deg (0 or positive).

    The far-side cheek/jaw anchors are silhouette points of the slice in this view (where
    dlib's contour lands on a turned face); the near-side ones lie on the jaw before the ear.
    """
    nose = np.array([0.0, 0.0, ridge_depth(0.0)])
    chin = np.array([0.0, _CHIN_Y, ridge_depth(_CHIN_Y)])
    if yaw_deg == 0:
        pts = {}
        for side, sign in (("left", -1), ("right", 1)):
            pts[f"cheek_{side}"] = [sign * float(interp(_HALF_WIDTH, 0.0)), 0.0, 0.0]
            w = float(interp(_HALF_WIDTH, _JAW_Y))
            pts[f"jaw_{side}"] = [sign * w, _JAW_Y, float(interp(_SLICE_BACK, _JAW_Y))]
    else:
        pts = {}
        for kind, y_far, y_near in (("cheek", 0.0, 0.0), ("jaw", _JAW_Y_FAR, _JAW_Y_NEAR)):
            sec = head_slice(y_far)[1:-1]
            p3 = np.stack([sec[:, 0], np.full(len(sec), y_far), sec[:, 1]], 1)
            far = p3[np.argmin(rotate_yaw(p3, yaw_deg)[:, 0])]
            w = float(interp(_HALF_WIDTH, y_near))
            near = [w, y_near, _NEAR_DEPTH[kind]]
            pts[f"{kind}_left"], pts[f"{kind}_right"] = far, near
    order = [nose, pts["cheek_left"], pts["cheek_right"], pts["jaw_left"], pts["jaw_right"], chin]
    return np.array(order, dtype=np.float64)


class Hull:
    """The taut envelope a worn fabric mask follows: per height, the convex hull of the face
    slice (offset by `standoff`) and the midline profile's own convex hull.

    depth(phi, y) gives the radius from the axis (x = 0, z = AXIS_Z) at azimuth phi (radians,
    0 = straight ahead, positive to the image's right) and height y, smoothly interpolated.
    """

    AXIS_Z = 0.1

    def __init__(self, standoff: float, y_range: tuple[float, float], sag_taut: float = 1.0,
                 ridge_extra: Callable[[np.ndarray], np.ndarray] | None = None,
                 min_half_width: list[tuple[float, float]] | None = None,
                 smooth_deg: float = 10.0, smooth_y: float = 0.05) -> None:
        ys = np.linspace(y_range[0], y_range[1], 90)
        prof_y = np.linspace(-0.6, 1.3, 400)
        prof_z = ridge_depth(prof_y)
        hull_z = _upper_hull(prof_y, prof_z)
        # sag_taut < 1 lets soft fabric follow the lips/chin a little instead of spanning.
        ridge = prof_z + sag_taut * (hull_z - prof_z)
        if ridge_extra is not None:
            ridge = ridge + ridge_extra(prof_y)
        phis = np.radians(np.linspace(-150, 150, 241))
        radii = np.empty((len(ys), len(phis)))
        for i, y in enumerate(ys):
            sec = head_slice(float(y))
            if min_half_width is not None:
                # Fabric spans from the cheek to the jaw instead of following the face in.
                w = float(interp(_HALF_WIDTH, y))
                sec[:, 0] *= max(float(interp(min_half_width, y)), w) / w
            sec = _offset_polygon(sec, standoff)
            rz = float(np.interp(y, prof_y, ridge)) + standoff
            pts = np.vstack([sec, [[0.0, rz]]])
            radii[i] = _ray_hull(pts, phis, self.AXIS_Z)
        # Round off the creases where the tent meets the face (fabric does not fold sharply);
        # the smoothing moves the surface inward at convex creases by about this much:
        sig = (smooth_y / (ys[1] - ys[0]), np.radians(smooth_deg) / (phis[1] - phis[0]))
        radii = gaussian_filter(radii, sig, mode="nearest") + 0.01
        self._spline = RectBivariateSpline(ys, phis, radii, kx=3, ky=3, s=0)

    def point(self, phi: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(..., 3) surface points at azimuth phi and height y (same shapes)."""
        r = self._spline.ev(y, phi)
        return np.stack([r * np.sin(phi), y, self.AXIS_Z + r * np.cos(phi)], -1)


def _upper_hull(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Upper convex hull of a sampled profile z(x), evaluated at the same x."""
    stack: list[int] = []
    for i in range(len(x)):
        while len(stack) >= 2:
            a, b = stack[-2], stack[-1]
            cross = (x[b] - x[a]) * (z[i] - z[a]) - (z[b] - z[a]) * (x[i] - x[a])
            if cross >= 0:
                stack.pop()
            else:
                break
        stack.append(i)
    return np.interp(x, x[stack], z[stack])


def _offset_polygon(pts: np.ndarray, dist: float) -> np.ndarray:
    """Move each point of an open polyline outward (away from its centroid side) by dist."""
    tangent = np.gradient(pts, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    # Orient normals away from the polygon's centroid.
    flip = np.sum((pts - pts.mean(0)) * normal, axis=1) < 0
    normal[flip] *= -1
    return pts + dist * normal


def _ray_hull(pts: np.ndarray, phis: np.ndarray, axis_z: float) -> np.ndarray:
    """Distance from (0, axis_z) to the convex hull of pts along directions phi."""
    hull = ConvexHull(pts)
    verts = pts[hull.vertices]
    a, b = verts, np.roll(verts, -1, axis=0)
    o = np.array([0.0, axis_z])
    d = np.stack([np.sin(phis), np.cos(phis)], 1)  # (x, z) directions
    e = b - a
    # Solve o + r d = a + u e for every (ray, edge).
    denom = d[:, None, 0] * e[None, :, 1] - d[:, None, 1] * e[None, :, 0]
    ao = a[None] - o
    r = (ao[..., 0] * e[None, :, 1] - ao[..., 1] * e[None, :, 0]) / np.where(
        np.abs(denom) < 1e-12, np.nan, denom)
    u = (ao[..., 0] * d[:, None, 1] - ao[..., 1] * d[:, None, 0]) / np.where(
        np.abs(denom) < 1e-12, np.nan, denom)
    valid = (u >= -1e-9) & (u <= 1 + 1e-9) & (r > 0)
    r = np.where(valid, r, np.inf)
    return r.min(axis=1)


# ---------------------------------------------------------------------------------------------
# Surfaces and rendering
# ---------------------------------------------------------------------------------------------


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


def grid_counts(fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                s_range: tuple[float, float], t_range: tuple[float, float]) -> tuple[int, int]:
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


def sample_surface(fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
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


def make_part(p: np.ndarray, n: np.ndarray, albedo: np.ndarray, tint: np.ndarray | float,
              keep: np.ndarray | None = None, **kw) -> Part:
    """Flatten grid arrays into a Part, keeping only samples where keep is True."""
    shape = p.shape[:-1]
    albedo = np.broadcast_to(albedo, shape + (3,))
    tint = np.broadcast_to(np.asarray(tint, np.float64), shape)
    if keep is None:
        keep = np.ones(shape, bool)
    return Part(p[keep], n[keep], albedo[keep], tint[keep], **kw)


def tube(path: np.ndarray, radius: float, albedo, tint: float = 0.0, **kw) -> Part:
    """A round tube of `radius` along a (M, 3) polyline."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    m = max(int(arc[-1] * k), 2)
    a = np.linspace(0, arc[-1], m)
    c = np.stack([np.interp(a, arc, path[:, i]) for i in range(3)], 1)
    tang = np.gradient(c, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    ref = np.where(np.abs(tang[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(tang, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(tang, u)
    nring = max(int(2 * np.pi * radius * k), 8)
    ang = np.linspace(0, 2 * np.pi, nring, endpoint=False)
    nrm = np.cos(ang)[None, :, None] * u[:, None] + np.sin(ang)[None, :, None] * v[:, None]
    pts = c[:, None] + radius * nrm
    return make_part(pts, nrm, np.asarray(albedo, float), tint, **kw)


@dataclass
class Rendered:
    """A rendered view: RGBA uint8, tint uint8, anchors (x, y) in its pixels."""

    rgba: np.ndarray
    tint: np.ndarray
    anchors: np.ndarray
    extra: dict = field(default_factory=dict)


def render(parts: list[Part], yaw_deg: float, anchors3d: np.ndarray,
           margin_px: float = 8.0) -> Rendered:
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
        sums = np.dstack([cv2.boxFilter((img[..., c] * drawn).astype(np.float32), -1, (3, 3),
                                        normalize=False, borderType=cv2.BORDER_CONSTANT)
                          for c in range(5)])
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
    x = cv2.remap(xs.astype(np.float32), S.astype(np.float32), T.astype(np.float32),
                  cv2.INTER_LINEAR)
    z = cv2.remap(zs.astype(np.float32), S.astype(np.float32), T.astype(np.float32),
                  cv2.INTER_LINEAR)
    y = np.interp(T, np.arange(len(ys)), ys)
    p = np.stack([x, y, z], -1).astype(np.float64)
    # Pull it slightly inside so that it never hides the mask resting on the face.
    p[..., 2] -= 0.03
    return make_part(p, grid_normals(p), np.zeros(3), 0.0, visible=False)


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def band(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """1 inside [lo, hi], 0 outside, with soft edges."""
    return smoothstep(lo - soft, lo + soft, x) * (1 - smoothstep(hi - soft, hi + soft, x))


def surgical() -> tuple[list[Part], dict]:
    """Three-pleat surgical mask with bound side edges, nose wire and ear-loop stubs."""
    hull = Hull(standoff=0.035, y_range=(-0.3, 1.3),
                min_half_width=[(-0.3, 0.84), (0.6, 0.78), (0.85, 0.7), (1.0, 0.55), (1.3, 0.4)])
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
    meta = {"description": "pleated surgical mask with nose wire and ear loops",
            "default_color": "#a8d4ec",
            "colors": ["#a8d4ec", "#a8d4ec", "#9cc8e6", "#f2f3f1", "#2a2b2e", "#f2b8c8",
                       "#a9dcc0", "#bcd9f0"]}
    return parts, meta


MASKS: dict[str, Callable[[], tuple[list[Part], dict]]] = {
    "surgical": surgical,
}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def render_views(parts: list[Part]) -> dict[str, Rendered]:
    """front, left (nose to the image's left) and right (its mirror) views."""
    front = render(parts, 0.0, face_anchors_3d(0.0))
    left = render(parts, YAW_DEG, face_anchors_3d(YAW_DEG))
    return {"front": front, "left": left, "right": mirror(left)}


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of an RGBA (H, W, 4) or gray (H, W) uint8 image."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return buf.tobytes()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def draw_all(out_dir: Path, names: list[str] | None = None) -> dict:
    """Render the templates named (default: all) into out_dir; write templates.json; return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"version": 1, "anchor_names": list(ANCHOR_NAMES), "templates": {}, "occluders": {}}
    for name in names or list(MASKS):
        parts, info = MASKS[name]()
        views = render_views(parts)
        variants = {}
        for key, r in views.items():
            image, tint = f"{name}_{key}.png", f"{name}_{key}_tint.png"
            _write(out_dir / image, encode_png(r.rgba))
            _write(out_dir / tint, encode_png(r.tint))
            variants[key] = {"image": image, "tint": tint,
                             "anchors": [[round(float(x), 2), round(float(y), 2)]
                                         for x, y in r.anchors]}
        meta["templates"][name] = {**info, "variants": variants}
    _write(out_dir / "templates.json", (json.dumps(meta, indent=1) + "\n").encode())
    return meta


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent
    meta = draw_all(out)
    print(f"wrote {len(meta['templates'])} templates, {len(meta['occluders'])} occluders to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
