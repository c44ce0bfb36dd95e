"""Draw every mask template and occluder PNG and templates.json, deterministically.

    python mask_templates/draw_templates.py [OUT_DIR] [--only NAME ...]   (default: this folder)

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

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import gaussian_filter, maximum_filter
from scipy.spatial import ConvexHull

PX_PER_UNIT = 250.0  # final template pixels per unit
SS = 3  # supersampling factor
SAMPLE_SPACING = 0.75  # supersampled pixels between surface samples (< 1: few holes)
YAW_DEG = 35.0
# Soft key light from above, slightly from the image's left (so folds and seams read).
LIGHT = np.array([-0.25, -0.45, 1.0]) / np.linalg.norm([-0.25, -0.45, 1.0])
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
_SLICE_EXPONENT = 5.0  # superellipse exponent of a face slice: boxy, as turned faces show
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


_NOSE_SIGMA = [(-0.6, 0.1), (0.0, 0.1), (0.25, 0.15), (0.34, 0.2), (0.42, 0.3), (0.75, 0.32),
               (1.0, 0.3), (1.3, 0.3)]


class FaceDepth:
    """Depth z of the face's front surface (nose and lips included) at (x, y); -inf off the face."""

    def __init__(self) -> None:
        ys = np.linspace(-0.6, 1.3, 120)
        xs = np.linspace(-1.0, 1.0, 201)
        z = np.full((len(ys), len(xs)), -1.0)
        for i, y in enumerate(ys):
            sec = head_slice(float(y))[1:-1]
            row = np.interp(xs, sec[:, 0], sec[:, 1], left=np.nan, right=np.nan)
            centre = float(np.interp(0.0, sec[:, 0], sec[:, 1]))
            bump = max(float(ridge_depth(y)) - centre, 0.0)
            sigma = float(interp(_NOSE_SIGMA, y))
            row = row + bump * np.exp(-0.5 * (xs / sigma) ** 2)
            z[i] = row
        self._w = interp(_HALF_WIDTH, ys)
        self._ys = ys
        self._spline = RectBivariateSpline(ys, xs, np.nan_to_num(z, nan=-1.0), kx=1, ky=1)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = self._spline.ev(y, x)
        off = np.abs(x) > np.interp(y, self._ys, self._w)
        return np.where(off, -np.inf, z)


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
    slice (offset by `standoff`) and the midline profile's own convex hull; floor(y, phis), when
    given, is a least radius per direction (fabric spanning away from the face, e.g. a tube).

    depth(phi, y) gives the radius from the axis (x = 0, z = AXIS_Z) at azimuth phi (radians,
    0 = straight ahead, positive to the image's right) and height y, smoothly interpolated.
    """

    AXIS_Z = 0.1

    def __init__(self, standoff: float, y_range: tuple[float, float], sag_taut: float = 1.0,
                 ridge_extra: Callable[[np.ndarray], np.ndarray] | None = None,
                 min_half_width: list[tuple[float, float]] | None = None,
                 smooth_deg: float = 10.0, smooth_y: float = 0.05,
                 floor: Callable[[float, np.ndarray], np.ndarray] | None = None) -> None:
        ys = np.linspace(y_range[0], y_range[1], 90)
        prof_y = np.linspace(-0.6, 1.3, 400)
        if y_range[1] > 1.3:  # coverings that hang over the neck: profile continued flat
            prof_y = np.linspace(-0.6, y_range[1], int(400 * (y_range[1] + 0.6) / 1.9))
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
            if floor is not None:
                # Fabric that does not follow the face in (a tube over the neck) stands off it.
                radii[i] = np.maximum(radii[i], floor(float(y), phis))
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


def tube(path: np.ndarray, radius, albedo, tint: float = 0.0, caps: bool = False,
         **kw) -> Part:
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


def sphere(centre: np.ndarray, radius: float, albedo, tint: float = 0.0,
           hemisphere: np.ndarray | None = None, **kw) -> Part:
    """A sphere (or the half facing `hemisphere`)."""
    k = PX_PER_UNIT * SS / SAMPLE_SPACING
    n = max(int(np.pi * radius * k * 1.2), 6)
    th = np.linspace(0, np.pi, n)[:, None]
    ph = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)[None, :]
    nrm = np.stack(np.broadcast_arrays(np.sin(th) * np.cos(ph), np.cos(th),
                                       np.sin(th) * np.sin(ph)), -1)
    keep = None if hemisphere is None else (nrm @ np.asarray(hemisphere, float)) >= -0.05
    return make_part(np.asarray(centre) + radius * nrm, nrm, np.asarray(albedo, float), tint,
                     keep=keep, **kw)


def merge_parts(parts: list[Part]) -> Part:
    """One Part from several with the same material settings (those of the first)."""
    first = parts[0]
    return Part(np.concatenate([p.points for p in parts]),
                np.concatenate([p.normals for p in parts]),
                np.concatenate([p.albedo for p in parts]),
                np.concatenate([p.tint for p in parts]),
                visible=first.visible, specular=first.specular, shininess=first.shininess,
                sheen=first.sheen)


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


def surgical() -> list[Part]:
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
    return parts


def ellipsoid_part(centre, axes, face: FaceDepth, albedo_fn,
                   taper: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                   theta_max_deg: float = 110.0, clearance: float = 0.004,
                   nose_bridge: float | None = None, **kw) -> tuple[Part, dict]:
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
        return np.stack([a * np.sin(th) * np.cos(psi), cy + b * np.sin(th) * np.sin(psi),
                         cz + c * np.cos(th)], -1)

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
        push = 0.5 * (d + np.sqrt(d * d + 0.02**2)) * smoothstep(nose_bridge - 0.06,
                                                                 nose_bridge + 0.04, p[..., 1])
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


def disc(centre: np.ndarray, axis: np.ndarray, radius: float, thickness: float,
         face_albedo, side_albedo, tint: float = 0.0, rim: float = 0.02,
         face_pattern: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
         **kw) -> list[Part]:
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
        np.cos(ang)[..., None] * u + np.sin(ang)[..., None] * v)
    cap_n = np.broadcast_to(axis, cap.shape).copy()
    alb = np.broadcast_to(np.asarray(face_albedo, float), cap.shape).copy()
    if face_pattern is not None:
        alb *= face_pattern(np.broadcast_to(r, cap.shape[:2]),
                            np.broadcast_to(ang, cap.shape[:2]))[..., None]
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


def strap_path(hull: Hull, phi0: float, y0: float, sign: float, span_deg: float,
               y_end: float, lift: float = 0.012) -> np.ndarray:
    """A strap or loop leaving a mask edge and following the head backwards (a stub)."""
    k = np.linspace(0.0, 1.0, 24)
    phi = phi0 + sign * np.radians(span_deg) * k
    y = y0 + (y_end - y0) * k
    path = hull.point(phi, y)
    path[:, 0] += sign * lift
    return path


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

    body, info = ellipsoid_part(centre, axes, face, albedo_fn, taper=nose_taper(0.72),
                                nose_bridge=-0.1, sheen=0.5)
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

        parts += disc(pos, axis, 0.19, 0.1, hex_to_rgb("#e2e3e0"), hex_to_rgb("#c9cbc8"),
                      rim=0.035, face_pattern=slots, specular=0.12, shininess=30)
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

    hull = Hull(standoff=0.03, y_range=(-0.3, 1.3), ridge_extra=ridge_extra,
                min_half_width=[(-0.3, 0.82), (0.6, 0.76), (0.85, 0.66), (1.0, 0.5), (1.3, 0.4)],
                smooth_deg=4.0, smooth_y=0.04)
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
    border = np.maximum.reduce([band(np.abs(S), 0.975, 1.1, 0.004),
                                band(T, -0.1, 0.03, 0.003), band(T, 0.97, 1.1, 0.003),
                                band(S, -0.012, 0.012, 0.003)])
    jj, ii = np.meshgrid(np.arange(ns), np.arange(nt))
    dots = 0.5 + 0.5 * np.cos(jj * 0.9) * np.cos(ii * 0.9)
    weld = 1.0 - border * (0.06 + 0.1 * dots)
    edge_line = 1.0 - 0.1 * np.maximum.reduce([band(np.abs(S), 0.968, 0.973, 0.002),
                                               band(T, 0.033, 0.037, 0.002),
                                               band(T, 0.963, 0.967, 0.002)])
    albedo = color[None, None] * (grain * weld * edge_line)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.5)]
    loop_col = hex_to_rgb("#f3f3ef")
    for sign in (-1.0, 1.0):
        for t0, y_end in ((0.06, -0.05), (0.94, 0.3)):
            phi0, y0 = outline(np.array(sign), np.array(t0))
            path = strap_path(hull, float(phi0), float(y0), sign, 30.0,
                              float(y0) + (y_end - float(y0)) * 0.35)
            parts.append(tube(path, 0.011, loop_col, 0.0, sheen=0.3))
    parts.append(head_occluder())
    return parts


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


def cloth() -> list[Part]:
    """Contoured two-piece cloth mask: soft shape, sewn centre seam and hems, fabric loops."""

    def ridge_extra(y):
        return 0.05 * smoothstep(-0.1, 0.45, y) * (1 - smoothstep(0.7, 1.1, y))

    hull = Hull(standoff=0.03, y_range=(-0.35, 1.3), sag_taut=0.75, ridge_extra=ridge_extra,
                min_half_width=[(-0.3, 0.83), (0.6, 0.74), (0.85, 0.64), (1.0, 0.5), (1.3, 0.4)],
                smooth_deg=14.0, smooth_y=0.07)
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
    stitches = 1.0 - 0.14 * stitch_rows * np.maximum.reduce([
        band(np.abs(S), 0.955, 0.962, 0.002), band(T, 0.035, 0.042, 0.002),
        band(T, 0.958, 0.965, 0.002)])
    seam_shadow = 1.0 - 0.18 * band(np.abs(S), 0.0, 0.004, 0.003)
    grain = fabric_noise(S.shape, 43, 0.8, 0.025)
    albedo = color[None, None] * (grain * weave * stitches * seam_shadow)[..., None]
    parts = [make_part(p, n, albedo, 1.0, sheen=0.8)]
    # Loops cut from the same fabric: flat bands that start at the side edge.
    for sign in (-1.0, 1.0):
        for t0, y_end in ((0.07, -0.1), (0.93, 0.35)):
            phi0, y0 = outline(np.array(sign), np.array(t0))
            path = strap_path(hull, float(phi0) - sign * np.radians(3), float(y0), sign, 24.0,
                              float(y0) + (y_end - float(y0)) * 0.3, lift=0.006)
            parts.append(ribbon(path, 0.05, np.array([0.0, 1.0, 0.0]),
                                color * 0.97, 1.0, sheen=0.8))
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
    body, info = ellipsoid_part(centre, axes, face, albedo_fn, taper=taper, nose_bridge=-0.12,
                                specular=0.1, shininess=12.0)
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
        parts += disc(mount - axis * 0.03, axis, 0.16, 0.12, hex_to_rgb("#2e3136"),
                      hex_to_rgb("#2e3136"), rim=0.02, specular=0.15, shininess=20)
        parts += disc(mount + axis * 0.08, axis, 0.36, 0.17, pink, pink * 0.85, rim=0.05,
                      face_pattern=filter_face, specular=0.12, shininess=18)

    def slots(r, ang):
        y = r * np.sin(ang)
        return 1.0 - 0.45 * ((np.abs(np.cos(ang)) * r < 0.11) & (np.cos(y * 70) > 0.2)
                             & (r > 0.04))

    valve_pos = on_body(0.0, 0.68)
    parts += disc(valve_pos - np.array([0, 0, 0.06]), np.array([0.0, 0.35, 1.0]), 0.2, 0.13,
                  hex_to_rgb("#3a3d43"), hex_to_rgb("#33363b"), rim=0.05, face_pattern=slots,
                  specular=0.15, shininess=20)
    # No head-harness straps: at face scale their stubs read as stray sticks.
    parts.append(head_occluder())
    return parts


def outward(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Normals n of samples p of a Hull-based surface, turned to point away from its axis."""
    out = p - np.stack([np.zeros_like(p[..., 0]), p[..., 1], np.full_like(p[..., 0], Hull.AXIS_Z)],
                       -1)
    return np.where(np.sum(n * out, -1, keepdims=True) < 0, -n, n)


def superellipse_radius(phis: np.ndarray, half_width: float, front: float, back: float,
                        exponent: float = 2.5) -> np.ndarray:
    """Distance from the Hull axis to a superellipse section: half_width across, front/back deep."""
    sx = np.abs(np.sin(phis)) / half_width
    sz = np.abs(np.cos(phis)) / np.where(np.cos(phis) >= 0, front, back)
    return (sx**exponent + sz**exponent) ** (-1.0 / exponent)


GAITER_BOTTOM = 1.78  # the hem, over the neck well below the chin (y = 1)
# The top edge by azimuth (degrees): over the nose bridge above landmark 28, falling steeply
# off the nose so it stays below the eyes, then under the ears towards the nape.
_GAITER_TOP = [(0, -0.19), (3, -0.183), (6, -0.15), (10, -0.1), (18, -0.065), (30, -0.035),
               (45, 0.0), (70, 0.04), (90, 0.08), (120, 0.2), (150, 0.3)]
# Half-width of the tube by height: face-wide at the cheeks, in at the neck, out at the collar.
_GAITER_WIDTH = [(0.3, 0.84), (1.0, 0.8), (1.35, 0.71), (1.78, 0.76), (1.9, 0.77)]


def gaiter() -> list[Part]:
    """Neck gaiter: a seamless knit tube pulled up over the nose and down over chin and neck."""

    def floor(y, phis):
        # Below the mouth the tube stops following the face: it spans from the chin to the
        # collar, about as wide as the face at the ears, falling back a little towards the neck.
        down = smoothstep(1.0, 1.8, y)
        return superellipse_radius(phis, float(interp(_GAITER_WIDTH, y)), 0.7 - 0.28 * down,
                                   0.72, 3.0)

    hull = Hull(standoff=0.03, y_range=(-0.4, GAITER_BOTTOM + 0.06), sag_taut=0.9,
                min_half_width=[(-0.4, 0.86), (0.3, 0.86), (0.7, 0.84), (1.0, 0.78), (1.9, 0.6)],
                smooth_deg=12.0, smooth_y=0.08, floor=floor)
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
    bunch = (0.6 * np.sin(2 * np.pi * ring / 0.15) + 0.4 * np.sin(2 * np.pi * ring / 0.083 + 1.3))
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
_BANDANA_TOP = [(0, -0.17), (3, -0.163), (6, -0.135), (10, -0.095), (18, -0.065), (30, -0.045),
                (60, -0.02), (90, 0.02), (125, 0.05)]
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

    hull = Hull(standoff=0.04, y_range=(-0.35, BANDANA_POINT + 0.05), sag_taut=0.8,
                min_half_width=[(-0.35, 0.86), (0.6, 0.84), (1.0, 0.78), (1.8, 0.55)],
                smooth_deg=14.0, smooth_y=0.08, floor=floor)
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
        0.6 + 0.4 * soft_wrinkles(S, T, 107, 2.0))
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

    hull = Hull(standoff=0.035, y_range=(-0.35, 1.3), sag_taut=0.92, ridge_extra=ridge_extra,
                min_half_width=[(-0.3, 0.82), (0.6, 0.74), (0.85, 0.64), (1.0, 0.5), (1.3, 0.4)],
                smooth_deg=12.0, smooth_y=0.06)
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
        path = strap_path(hull, float(phi0) - sign * np.radians(3), float(y0), sign, 16.0,
                          float(y0) - 0.05, lift=0.006)
        parts.append(ribbon(path, 0.09, np.array([0.0, 1.0, 0.0]), color, 1.0, sheen=0.45))
    parts.append(head_occluder())
    return parts


# name: (builder, description, default colour, realistic palette for color="random"; a colour
# listed twice is drawn twice as often, as in real photos where light blue, white and black
# surgical masks dominate).
MASKS: dict[str, tuple[Callable[[], list[Part]], str, str, list[str]]] = {
    "surgical": (surgical, "pleated surgical mask with nose wire and ear loops", "#a8d4ec",
                 ["#a8d4ec", "#a8d4ec", "#9cc8e6", "#bcd9f0", "#f2f3f1", "#f2f3f1", "#2a2b2e",
                  "#2a2b2e", "#f2b8c8", "#a9dcc0", "#e6d3c0"]),
    "n95": (n95, "moulded N95 cup respirator with head straps", "#eeeeea",
            ["#eeeeea", "#eeeeea", "#f2f2ef", "#e9e5da", "#e4e6e8"]),
    "n95_valve": (lambda: n95(valve=True),
                  "moulded N95 cup respirator with exhalation valve and head straps", "#eeeeea",
                  ["#eeeeea", "#eeeeea", "#f2f2ef", "#e9e5da", "#e4e6e8"]),
    "kn95": (kn95, "folded KN95 with vertical centre seam and ear loops", "#f1f1ef",
             ["#f1f1ef", "#f1f1ef", "#26272a", "#8c8f94", "#e9e5da", "#a8c8e8", "#f2c4d0"]),
    "cloth": (cloth, "contoured cloth mask with centre seam and fabric ear loops", "#5b7fa8",
              ["#26272a", "#26272a", "#3c3e44", "#8c8f94", "#283a5e", "#5b7fa8", "#f2f3f1",
               "#d8c4a4", "#f2b8c8", "#6b6e3c", "#b8323a", "#6e2430", "#2f8c8a", "#c3b4e0"]),
    "gas": (gas, "half-face elastomeric respirator (gas mask) with twin filter cartridges",
            "#4a4e55", ["#4a4e55", "#3a3d42", "#26272a", "#5c6670", "#6d7278", "#3d4a5c"]),
    "gaiter": (gaiter, "neck gaiter: knit tube pulled over the nose, down over chin and neck",
               "#2b2c30", ["#26272a", "#26272a", "#26272a", "#3c3e44", "#3c3e44", "#283a5e",
                           "#283a5e", "#8c8f94", "#6b6e3c", "#6e2430", "#3f6fb5", "#2f8c8a",
                           "#f2f3f1", "#b8323a"]),
    "bandana": (bandana, "bandana: square scarf folded to a triangle over nose and mouth, "
                "knotted behind the head, the point hanging below the chin", "#b8323a",
                ["#b8323a", "#b8323a", "#b8323a", "#26272a", "#26272a", "#26272a", "#283a5e",
                 "#283a5e", "#2f4f8f", "#6e2430", "#6b6e3c", "#8c8f94", "#f2f3f1", "#6c4c94"]),
    "sports": (sports, "fitted sports mask of neoprene-like knit with a contoured centre seam "
               "and wide loops", "#26272a",
               ["#26272a", "#26272a", "#26272a", "#26272a", "#3c3e44", "#3c3e44", "#283a5e",
                "#283a5e", "#8c8f94", "#f2f3f1", "#b8323a", "#3f6fb5", "#2f8c8a"]),
}

# The prints a type typically comes in (templates.json "patterns"; "none" = plain; a name listed
# twice is twice as common): gaiters are often printed, bandanas mostly paisley or plain.
PRINTS: dict[str, list[str]] = {
    "gaiter": ["none", "none", "camo", "jersey", "heather", "heather", "stripes", "paisley",
               "floral"],
    "bandana": ["paisley", "paisley", "paisley", "none", "none"],
    "sports": ["none", "none", "none", "jersey", "jersey", "heather", "camo"],
}


# ---------------------------------------------------------------------------------------------
# Occluders (hard negatives): seen from the front only
# ---------------------------------------------------------------------------------------------

MOUTH = np.array([0.0, 0.58, float(ridge_depth(0.58))])
SKIN_GRAY = np.array([0.8, 0.8, 0.8])


class Drape:
    """Smooth envelope of the face (nose and lips bridged), extended off the face by falling
    back: the depth at which a hand or object resting on the lower face lies."""

    def __init__(self, reach: float = 0.14, blur: float = 0.1) -> None:
        face = FaceDepth()
        xs = np.linspace(-2.0, 2.0, 201)
        ys = np.linspace(-0.6, 2.4, 151)
        X, Y = np.meshgrid(xs, ys)
        yc = np.minimum(Y, 1.25)
        z = face(X, yc)
        edge = interp(_SLICE_BACK, yc)
        over = np.abs(X) - interp(_HALF_WIDTH, yc)
        fallback = edge - 1.2 * np.maximum(over, 0.0)
        z = np.where(np.isfinite(z), z, fallback)
        z = z - 0.6 * np.maximum(Y - 1.25, 0.0)  # the neck and chest lie further back
        step = xs[1] - xs[0]
        z = maximum_filter(z, size=int(2 * reach / step) | 1)
        z = gaussian_filter(z, blur / step)
        self._spline = RectBivariateSpline(ys, xs, z, kx=3, ky=3, s=0)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._spline.ev(y, x)


def _to_face(u: np.ndarray, v: np.ndarray, origin, angle_deg: float, flip: bool):
    """Local hand/object coordinates (u along, v across) -> image-plane x, y."""
    a = np.radians(angle_deg)
    v = -v if flip else v
    x = origin[0] + u * np.cos(a) - v * np.sin(a)
    y = origin[1] + u * np.sin(a) + v * np.cos(a)
    return x, y


def hand(angle_deg: float, origin: tuple[float, float], flip: bool) -> list[Part]:
    """The back of a hand resting on the face: palm, four fingers, thumb, wrist.

    Local frame: u from wrist to fingertips, v across (index finger at negative v). Skin is
    grey (tint 1) so that the user can tint it with the face's own skin colour.
    """
    drape = Drape()
    parts = []

    # Palm: a rounded slab draped over the face, higher over the knuckles.
    def palm_fn(s, t):
        u, v = s * 0.56, t * 0.42
        x, y = _to_face(u, v, origin, angle_deg, flip)
        r = (np.abs(s) ** 3 + np.abs(t) ** 3) ** (1 / 3)
        h = 0.15 * np.sqrt(np.clip(1 - r**2.5, 0, 1)) * (0.85 + 0.15 * s)
        # Knuckles: the metacarpal heads raise the far end of the back of the hand.
        for v0 in (-0.285, -0.095, 0.095, 0.27):
            h += 0.035 * np.exp(-(((u - 0.45) / 0.09) ** 2 + ((v - v0) / 0.07) ** 2))
        return np.stack([x, y, drape(x, y) + 0.02 + h], -1)

    S, T, p, n = sample_surface(palm_fn, (-1, 1), (-1, 1))
    r = (np.abs(S) ** 3 + np.abs(T) ** 3) ** (1 / 3)
    # Tendons fanning to the knuckles, veins faint; grey skin with pores.
    tendons = 1.0 - 0.04 * np.cos(T * np.pi * 3.3) * smoothstep(0.0, 0.8, S)
    alb = SKIN_GRAY * (fabric_noise(S.shape, 61, 1.0, 0.015) * tendons)[..., None]
    parts.append(make_part(p, n, alb, 1.0, keep=r <= 1.0, sheen=0.3))

    fingers = [  # v at knuckle, length, radius, fan angle (deg): neighbours touch
        (-0.285, 0.84, 0.095, -3.0),
        (-0.095, 0.94, 0.099, -1.0),
        (0.095, 0.88, 0.094, 1.5),
        (0.27, 0.7, 0.082, 4.5),
    ]
    for i, (v0, length, rad, fan) in enumerate(fingers):
        a = np.radians(fan)
        k = np.linspace(0, 1, 40)
        u = 0.42 + k * length * np.cos(a)
        v = v0 + k * length * np.sin(a)
        x, y = _to_face(u, v, origin, angle_deg, flip)
        # Rest on the face; the last joint curls down a little.
        z = drape(x, y) + rad + 0.02 - 0.05 * smoothstep(0.7, 1.0, k) - 0.004 * i
        path = np.stack([x, y, z], 1)
        radii = rad * (1.0 - 0.18 * k)

        def finger_albedo(frac, ang, nrm, _len=length):
            facing = np.clip(nrm[..., 2], 0, 1)
            crease = np.zeros(np.broadcast_shapes(frac.shape, ang.shape))
            for j in (0.45, 0.74):
                crease = np.maximum(crease, band(frac, j - 0.012, j + 0.012, 0.01)
                                    * np.broadcast_to(facing, crease.shape))
            nail = band(frac, 0.83, 0.99, 0.012) * smoothstep(0.55, 0.8, facing)
            g = 0.8 * (1 - 0.12 * crease) * (1 + 0.1 * nail)
            g = g * (1 - 0.1 * band(frac, 0.82, 0.835, 0.004) * smoothstep(0.5, 0.8, facing))
            return np.repeat(np.broadcast_to(g, frac.shape[:1] + ang.shape[1:])[..., None],
                             3, -1)

        parts.append(tube(path, radii, finger_albedo, 1.0, caps=True, sheen=0.3))

    # Thumb: along the index side, towards the fingertips.
    k = np.linspace(0, 1, 40)
    u = -0.3 + k * 0.68
    v = -0.4 - 0.07 * np.sin(k * np.pi)
    x, y = _to_face(u, v, origin, angle_deg, flip)
    z = drape(x, y) + 0.1
    parts.append(tube(np.stack([x, y, z], 1), 0.11 * (1 - 0.2 * k), SKIN_GRAY, 1.0,
                      caps=True, sheen=0.3))
    # Wrist and forearm, leaving the sprite.
    k = np.linspace(0, 1, 30)
    u = -0.35 - k * 0.95
    v = 0.0 * k
    x, y = _to_face(u, v, origin, angle_deg, flip)
    z = drape(x, y) + 0.17 + 0.05 * k
    parts.append(tube(np.stack([x, y, z], 1), 0.25 + 0.06 * k, SKIN_GRAY * 0.98, 1.0,
                      sheen=0.3))
    return parts


def rounded_rect(w: float, h: float, r: float, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of local points (s*w/2, t*h/2) to a rounded rect."""
    qx = np.abs(s * w / 2) - (w / 2 - r)
    qy = np.abs(t * h / 2) - (h / 2 - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def phone() -> list[Part]:
    """A phone held landscape in front of mouth and chin, its back (case, cameras) facing us."""
    drape = Drape(reach=0.3)
    w, h, angle = 1.72, 0.84, -10.0
    origin = (0.05, 0.72)

    def fn(s, t):
        x, y = _to_face(s * w / 2, t * h / 2, origin, angle, False)
        d = rounded_rect(w, h, 0.13, s, t)
        bevel = 0.05 * np.sqrt(np.clip(1 - (np.clip(d + 0.05, 0, None) / 0.05) ** 2, 0, 1))
        return np.stack([x, y, np.full_like(x, 0.0) + bevel], -1)

    S, T, p, _ = sample_surface(fn, (-1, 1), (-1, 1))
    # Held flat, just in front of the nose tip and chin.
    xs, ys = p[..., 0], p[..., 1]
    base = float(np.max(drape(xs, ys))) + 0.08
    p[..., 2] += base
    n = grid_normals(p)
    d = rounded_rect(w, h, 0.13, S, T)
    case = hex_to_rgb("#2b2d31")
    alb = np.broadcast_to(case, S.shape + (3,)).copy()
    tint = np.ones(S.shape)
    # Camera island in a corner: dark glass lenses, not tinted.
    lu, lv = S * w / 2, T * h / 2
    island = rounded_rect(0.42, 0.42, 0.1, (lu - (w / 2 - 0.3)) / 0.21,
                          (lv - (-h / 2 + 0.3)) / 0.21) < 0
    alb[island] *= 0.8
    for cx, cy in ((w / 2 - 0.38, -h / 2 + 0.22), (w / 2 - 0.22, -h / 2 + 0.22),
                   (w / 2 - 0.3, -h / 2 + 0.38)):
        lens = np.hypot(lu - cx, lv - cy)
        ring = lens < 0.07
        alb[ring] = hex_to_rgb("#0f1012") + 0.25 * (lens[ring] > 0.05)[:, None]
        tint[ring] = 0.0
    logo = np.hypot(lu + 0.05, lv) < 0.08
    alb[logo] *= 1.25
    parts = [make_part(p, n, alb, tint, keep=d < 0, specular=0.25, shininess=40)]
    return parts


def notebook() -> list[Part]:
    """A spiral notebook held up in front of the lower face, cover towards the camera."""
    drape = Drape(reach=0.3)
    w, h, angle = 1.78, 2.3, 3.0
    origin = (0.08, 0.3 + h / 2)

    def fn(s, t):
        x, y = _to_face(s * w / 2, t * h / 2, origin, angle, False)
        return np.stack([x, y, -0.22 * s**2], -1)

    S, T, p, _ = sample_surface(fn, (-1, 1), (-1, 1))
    base = float(np.max(drape(p[..., 0], p[..., 1]))) + 0.1
    p[..., 2] += base
    n = grid_normals(p)
    cover = hex_to_rgb("#3f6fb5")
    grain = fabric_noise(S.shape, 71, 1.2, 0.02)
    alb = cover[None, None] * grain[..., None]
    tint = np.ones(S.shape)
    lu, lv = S * w / 2, T * h / 2
    label = (np.abs(lu) < 0.5) & (np.abs(lv + 0.45) < 0.18)
    alb[label] = hex_to_rgb("#f1efe6")
    alb[label & (np.abs(lv + 0.45) < 0.015)] *= 0.7
    tint[label] = 0.0
    # Page edges peeking out along the side.
    pages = lu > w / 2 - 0.025
    alb[pages] = hex_to_rgb("#f4f3ee") * (0.92 + 0.08 * np.cos(lv[pages] * 400))[:, None]
    tint[pages] = 0.0
    parts = [make_part(p, n, alb, tint, sheen=0.2)]
    # Spiral binding along the top edge.
    wire = hex_to_rgb("#b9bcc0")
    for i in range(-16, 17):
        u0 = i * 0.05
        ang = np.linspace(-0.4 * np.pi, 1.25 * np.pi, 24)
        lu_r = np.full_like(ang, u0)
        lv_r = -h / 2 + 0.06 - 0.07 * np.cos(ang)
        x, y = _to_face(lu_r, lv_r, origin, angle, False)
        z = base - 0.22 * (u0 / (w / 2)) ** 2 + 0.07 * np.sin(ang)
        parts.append(tube(np.stack([x, y, z], 1), 0.011, wire, 0.0, specular=0.4,
                          shininess=40))
    return parts


def scarf() -> list[Part]:
    """A chunky knitted scarf wrapped round the neck, pulled up over chin and lower lip."""
    color = hex_to_rgb("#8b2e3a")
    phi_max = np.radians(115.0)

    def fn(s, t):
        phi = s * phi_max
        y_top = 0.66 + 0.16 * s**2
        y = y_top + t * (1.75 - y_top)
        a = 0.9 + 0.08 * t
        front = 1.06 - 0.08 * t
        folds = 0.045 * np.sin(t * np.pi * 4.0 + 1.6 * s) * (0.3 + 0.7 * t)
        return np.stack([(a + folds) * np.sin(phi), y, (front + folds) * np.cos(phi) + 0.02],
                        -1)

    S, T, p0, n0 = sample_surface(fn)
    out = p0 - np.stack([np.zeros_like(S), p0[..., 1], np.zeros_like(S)], -1)
    n0 = np.where(np.sum(n0 * out, -1, keepdims=True) < 0, -n0, n0)
    ns = S.shape[1]
    ribs = np.cos(np.linspace(0, 2 * np.pi * 44, ns))[None, :]
    # V-shaped knit stitches in rows along each rib.
    stitch = np.cos(T * np.pi * 2 * 26 + 6.0 * np.abs(np.sin(np.linspace(0, np.pi * 44, ns))))
    disp = 0.018 * np.maximum(ribs, -0.3) + 0.006 * stitch * (ribs > 0)
    p = p0 + n0 * disp[..., None]
    n = grid_normals(p)
    knit = 1.0 - 0.18 * (ribs < -0.3) - 0.05 * (stitch < 0) * (ribs > 0)
    alb = color[None, None] * (knit * fabric_noise(S.shape, 81, 1.0, 0.03))[..., None]
    parts = [make_part(p, n, alb, 1.0, sheen=0.7)]
    # The rolled top edge resting on the lower lip.
    s_line = np.linspace(-1, 1, 80)
    top = fn(s_line, np.zeros_like(s_line))
    top[:, 2] += 0.02
    parts.append(tube(top, 0.055, color * 0.95, 1.0, sheen=0.7))
    return parts


OCCLUDERS: dict[str, tuple[str, Callable[[], list[Part]], str]] = {
    "hand_back": ("hand", lambda: hand(180.0, (0.52, 0.6), False), "#d9a88a"),
    "hand_diagonal": ("hand", lambda: hand(-150.0, (0.62, 0.9), True), "#c98f6e"),
    "phone": ("object", phone, "#2b2d31"),
    "notebook": ("object", notebook, "#3f6fb5"),
    "scarf": ("scarf", scarf, "#8b2e3a"),
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


def template_meta(name: str) -> dict:
    """templates.json fields of a template other than its variants."""
    _, description, default, colors = MASKS[name]
    meta = {"description": description, "default_color": default, "colors": colors}
    if name in PRINTS:
        meta["patterns"] = PRINTS[name]
    return meta


def draw_all(out_dir: Path, names: list[str] | None = None) -> dict:
    """Render the templates named (default: all, plus "occluders") into out_dir and write
    templates.json; entries for names not drawn are kept from an existing templates.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(names or []) - set(MASKS) - {"occluders"})
    if unknown:
        raise ValueError(f"unknown template(s) {unknown}; choose from {list(MASKS)}, occluders")
    meta = {"version": 1, "anchor_names": list(ANCHOR_NAMES), "templates": {}, "occluders": {}}
    old_path = out_dir / "templates.json"
    if names and old_path.is_file():
        meta = json.loads(old_path.read_text())
    for name in [n for n in names or MASKS if n in MASKS]:
        views = render_views(MASKS[name][0]())
        variants = {}
        for key, r in views.items():
            image, tint = f"{name}_{key}.png", f"{name}_{key}_tint.png"
            _write(out_dir / image, encode_png(r.rgba))
            _write(out_dir / tint, encode_png(r.tint))
            variants[key] = {"image": image, "tint": tint,
                             "anchors": [[round(float(x), 2), round(float(y), 2)]
                                         for x, y in r.anchors]}
        meta["templates"][name] = {**template_meta(name), "variants": variants}
    if not names or "occluders" in names:
        (out_dir / "occluders").mkdir(exist_ok=True)
        for name, (kind, build, default) in OCCLUDERS.items():
            r = render(build(), 0.0, MOUTH[None])
            image, tint = f"occluders/{name}.png", f"occluders/{name}_tint.png"
            _write(out_dir / image, encode_png(r.rgba))
            _write(out_dir / tint, encode_png(r.tint))
            mouth = [round(float(v), 2) for v in r.anchors[0]]
            face_width = round(2 * float(interp(_HALF_WIDTH, 0.0)) * PX_PER_UNIT, 2)
            meta["occluders"][name] = {"kind": kind, "image": image, "tint": tint,
                                       "mouth": mouth, "face_width": face_width,
                                       "default_color": default}
    # Keep the order of the drawing code, whatever was drawn in this run.
    meta["templates"] = {k: meta["templates"][k] for k in MASKS if k in meta["templates"]}
    meta["occluders"] = {k: meta["occluders"][k] for k in OCCLUDERS if k in meta["occluders"]}
    _write(out_dir / "templates.json", (json.dumps(meta, indent=1) + "\n").encode())
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command line: draw_templates.py [OUT_DIR] [--only NAME ...]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent,
                        help="folder to write PNGs and templates.json (default: this folder)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"redraw only these: {', '.join(MASKS)}, occluders")
    args = parser.parse_args(argv)
    meta = draw_all(args.out_dir, args.only)
    print(f"{len(meta['templates'])} templates, {len(meta['occluders'])} occluders in "
          f"{args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
