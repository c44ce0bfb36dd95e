"""The head model the coverings are worn on: face sections, the face's depth, the anchors.

Units: 1 = the vertical distance from the nose-bridge landmark (dlib 28) to the chin (dlib 8).
Axes: x to the image's right, y down, z towards the camera; the face's frontal silhouette lies
in the plane z = 0, landmark 28 is at x = y = 0. The face proportions (contour widths, anchor
heights, and where turned faces put their anchors) were measured on dlib landmarks of real
photos (../shared/faces/unmasked).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull

ANCHOR_NAMES = ("nose", "cheek_left", "cheek_right", "jaw_left", "jaw_right", "chin")

# Frontal half-width of the face contour by height (mean of dlib landmarks 0..16 on frontal
# faces, normalised so that landmark 28 -> 8 is one unit); continued as the jaw underside.
HALF_WIDTH = [
    (-0.6, 0.86),
    (-0.16, 0.84),
    (0.05, 0.83),
    (0.24, 0.80),
    (0.43, 0.75),
    (0.61, 0.67),
    (0.76, 0.56),
    (0.88, 0.44),
    (0.97, 0.32),
    (1.05, 0.3),
    (1.3, 0.3),
]
# Depth of the widest point of each slice (the jaw line comes forward towards the chin).
SLICE_BACK = [
    (-0.6, 0.0),
    (0.3, 0.0),
    (0.61, 0.05),
    (0.76, 0.14),
    (0.88, 0.26),
    (0.97, 0.36),
    (1.05, 0.2),
    (1.3, 0.0),
]
# Depth of the cheek/mouth surface in front of the silhouette plane.
_FRONT = [
    (-0.6, 0.72),
    (0.0, 0.75),
    (0.3, 0.78),
    (0.6, 0.8),
    (0.88, 0.78),
    (0.97, 0.72),
    (1.05, 0.45),
    (1.3, 0.25),
]
# Midline profile: forehead, nose bridge (28), nose tip, upper lip, lips, chin, under the chin.
_RIDGE = [
    (-0.6, 0.78),
    (-0.25, 0.86),
    (0.0, 0.95),
    (0.15, 1.07),
    (0.25, 1.16),
    (0.31, 1.08),
    (0.36, 0.95),
    (0.48, 0.94),
    (0.58, 0.9),
    (0.68, 0.92),
    (0.8, 0.86),
    (0.9, 0.85),
    (1.0, 0.76),
    (1.06, 0.5),
    (1.3, 0.25),
]
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
    w = float(interp(HALF_WIDTH, y))
    z0 = float(interp(SLICE_BACK, y))
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


_NOSE_SIGMA = [
    (-0.6, 0.1),
    (0.0, 0.1),
    (0.25, 0.15),
    (0.34, 0.2),
    (0.42, 0.3),
    (0.75, 0.32),
    (1.0, 0.3),
    (1.3, 0.3),
]


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
        self._w = interp(HALF_WIDTH, ys)
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
            pts[f"cheek_{side}"] = [sign * float(interp(HALF_WIDTH, 0.0)), 0.0, 0.0]
            w = float(interp(HALF_WIDTH, _JAW_Y))
            pts[f"jaw_{side}"] = [sign * w, _JAW_Y, float(interp(SLICE_BACK, _JAW_Y))]
    else:
        pts = {}
        for kind, y_far, y_near in (("cheek", 0.0, 0.0), ("jaw", _JAW_Y_FAR, _JAW_Y_NEAR)):
            sec = head_slice(y_far)[1:-1]
            p3 = np.stack([sec[:, 0], np.full(len(sec), y_far), sec[:, 1]], 1)
            far = p3[np.argmin(rotate_yaw(p3, yaw_deg)[:, 0])]
            w = float(interp(HALF_WIDTH, y_near))
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

    def __init__(
        self,
        standoff: float,
        y_range: tuple[float, float],
        sag_taut: float = 1.0,
        ridge_extra: Callable[[np.ndarray], np.ndarray] | None = None,
        min_half_width: list[tuple[float, float]] | None = None,
        smooth_deg: float = 10.0,
        smooth_y: float = 0.05,
        floor: Callable[[float, np.ndarray], np.ndarray] | None = None,
    ) -> None:
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
                w = float(interp(HALF_WIDTH, y))
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
        np.abs(denom) < 1e-12, np.nan, denom
    )
    u = (ao[..., 0] * d[:, None, 1] - ao[..., 1] * d[:, None, 0]) / np.where(
        np.abs(denom) < 1e-12, np.nan, denom
    )
    valid = (u >= -1e-9) & (u <= 1 + 1e-9) & (r > 0)
    r = np.where(valid, r, np.inf)
    return r.min(axis=1)
