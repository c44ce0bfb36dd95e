"""Occluders (hard negatives), seen from the front only: hands, a phone, a notebook, a scarf."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import gaussian_filter, maximum_filter

from .head import HALF_WIDTH, SLICE_BACK, FaceDepth, interp, ridge_depth
from .shapes import band, smoothstep
from .surfaces import Part, fabric_noise, grid_normals, hex_to_rgb, make_part, sample_surface, tube

MOUTH = np.array([0.0, 0.58, float(ridge_depth(0.58))])
SKIN_GRAY = np.array([0.8, 0.8, 0.8])


@dataclass(frozen=True)
class Finger:
    """A finger of hand(), in its local frame (u from wrist to fingertips, v across)."""

    knuckle_v: float  # v at the knuckle
    length: float
    radius: float
    fan_deg: float  # its angle off the u axis


# Index to little finger: neighbours touch.
FINGERS = (
    Finger(-0.285, 0.84, 0.095, -3.0),
    Finger(-0.095, 0.94, 0.099, -1.0),
    Finger(0.095, 0.88, 0.094, 1.5),
    Finger(0.27, 0.7, 0.082, 4.5),
)


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
        edge = interp(SLICE_BACK, yc)
        over = np.abs(X) - interp(HALF_WIDTH, yc)
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

    for i, finger in enumerate(FINGERS):
        v0, length, rad, fan = finger.knuckle_v, finger.length, finger.radius, finger.fan_deg
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
                crease = np.maximum(
                    crease,
                    band(frac, j - 0.012, j + 0.012, 0.01) * np.broadcast_to(facing, crease.shape),
                )
            nail = band(frac, 0.83, 0.99, 0.012) * smoothstep(0.55, 0.8, facing)
            g = 0.8 * (1 - 0.12 * crease) * (1 + 0.1 * nail)
            g = g * (1 - 0.1 * band(frac, 0.82, 0.835, 0.004) * smoothstep(0.5, 0.8, facing))
            return np.repeat(np.broadcast_to(g, frac.shape[:1] + ang.shape[1:])[..., None], 3, -1)

        parts.append(tube(path, radii, finger_albedo, 1.0, caps=True, sheen=0.3))

    # Thumb: along the index side, towards the fingertips.
    k = np.linspace(0, 1, 40)
    u = -0.3 + k * 0.68
    v = -0.4 - 0.07 * np.sin(k * np.pi)
    x, y = _to_face(u, v, origin, angle_deg, flip)
    z = drape(x, y) + 0.1
    parts.append(
        tube(np.stack([x, y, z], 1), 0.11 * (1 - 0.2 * k), SKIN_GRAY, 1.0, caps=True, sheen=0.3)
    )
    # Wrist and forearm, leaving the sprite.
    k = np.linspace(0, 1, 30)
    u = -0.35 - k * 0.95
    v = 0.0 * k
    x, y = _to_face(u, v, origin, angle_deg, flip)
    z = drape(x, y) + 0.17 + 0.05 * k
    parts.append(tube(np.stack([x, y, z], 1), 0.25 + 0.06 * k, SKIN_GRAY * 0.98, 1.0, sheen=0.3))
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
    island = (
        rounded_rect(0.42, 0.42, 0.1, (lu - (w / 2 - 0.3)) / 0.21, (lv - (-h / 2 + 0.3)) / 0.21) < 0
    )
    alb[island] *= 0.8
    for cx, cy in (
        (w / 2 - 0.38, -h / 2 + 0.22),
        (w / 2 - 0.22, -h / 2 + 0.22),
        (w / 2 - 0.3, -h / 2 + 0.38),
    ):
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
        parts.append(tube(np.stack([x, y, z], 1), 0.011, wire, 0.0, specular=0.4, shininess=40))
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
        return np.stack([(a + folds) * np.sin(phi), y, (front + folds) * np.cos(phi) + 0.02], -1)

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


@dataclass(frozen=True)
class OccluderSpec:
    """An occluder: how to draw it, and its templates.json fields."""

    kind: str  # "hand" (tinted with the face's skin at run time), "object" or "scarf"
    builder: Callable[[], list[Part]]
    default_colour: str  # "default_color"


OCCLUDERS: dict[str, OccluderSpec] = {
    "hand_back": OccluderSpec("hand", lambda: hand(180.0, (0.52, 0.6), False), "#d9a88a"),
    "hand_diagonal": OccluderSpec("hand", lambda: hand(-150.0, (0.62, 0.9), True), "#c98f6e"),
    "phone": OccluderSpec("object", phone, "#2b2d31"),
    "notebook": OccluderSpec("object", notebook, "#3f6fb5"),
    "scarf": OccluderSpec("scarf", scarf, "#8b2e3a"),
}
