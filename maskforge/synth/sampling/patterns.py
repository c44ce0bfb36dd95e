"""Procedural fabric textures (stripes, dots, checks, camo, paisley, ...), novelty prints (skulls,
grins, pop art, ...) and image-file patterns.

Every pattern is float32 RGB (h, w, 3) in 0..1, drawn in template pixels, and a deterministic
function of (spec, shape, rng state, base colour).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

PATTERN_NAMES = (
    "stripes", "dots", "checks", "plaid", "camo", "floral", "heather", "paisley", "jersey",
    "novelty",
)  # fmt: skip
# What `novelty` draws, one motif per mask: the printed masks sold as novelties and fan wear.
NOVELTY_MOTIFS = (
    "skull", "grin", "pop_art", "graffiti", "smileys", "lettering", "leopard", "tiger", "flag",
    "halftone",
)  # fmt: skip

RGB = tuple[int, int, int]

# Second colours that commonly pair with a base colour on printed cloth masks.
_ACCENTS = np.array(
    [
        [245, 244, 238],  # white
        [32, 33, 38],  # black
        [40, 58, 96],  # navy
        [184, 50, 58],  # red
        [236, 211, 106],  # yellow
        [120, 160, 200],  # denim blue
        [95, 120, 80],  # sage
        [230, 150, 170],  # pink
    ],
    dtype=np.float32,
)


def make_pattern(
    spec: str,
    shape: tuple[int, int],
    rng: np.random.Generator,
    base_color: RGB | None = None,
) -> np.ndarray:
    """A texture covering `shape` = (h, w): float32 (h, w, 3) RGB 0..1.

    `spec` is a name from PATTERN_NAMES or the path of an image file (tiled when small, otherwise
    scaled to cover and centre-cropped). `base_color` is the main colour of procedural
    patterns (random from a cloth palette when None); scale, angle, phase and the accent
    colour come from `rng`.
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"pattern shape must be positive, got {shape}")
    name = str(spec).strip().lower()
    if name in _DRAWERS:
        base = (
            np.asarray(base_color, np.float32)
            if base_color is not None
            else _ACCENTS[int(rng.integers(len(_ACCENTS)))]
        )
        accent = _pick_accent(base, rng)
        out = _DRAWERS[name](h, w, rng, base / 255.0, accent / 255.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
    path = Path(str(spec)).expanduser()
    if path.suffix and path.is_file():
        return _image_pattern(path, h, w)
    raise ValueError(
        f"Invalid pattern {spec!r}. Use an image file or one of: {', '.join(PATTERN_NAMES)}."
    )


def _pick_accent(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # An accent that contrasts with the base: at least some distance away in RGB.
    return _pick_colour(rng, _ACCENTS, base, 90.0)


def _pick_colour(
    rng: np.random.Generator, palette: np.ndarray, avoid: np.ndarray | None, min_dist: float
) -> np.ndarray:
    """A colour of `palette` more than min_dist from `avoid` in RGB (any, where none is or
    avoid is None)."""
    choices = np.arange(len(palette))
    if avoid is not None:
        far = np.flatnonzero(np.linalg.norm(palette - avoid, axis=1) > min_dist)
        choices = far if far.size else choices
    return palette[int(rng.choice(choices))]


def _grid(h: int, w: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by angle (radians): (u, v) float32 (h, w)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return x * c + y * s, -x * s + y * c


def _smoothstep_edge(d: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased step: 0 for d << 0, 1 for d >> 0, over `width` pixels."""
    return np.clip(0.5 + d / max(width, 1e-3), 0.0, 1.0)


def _mix(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1.0 - m[..., None]) + b[None, None, :] * m[..., None]


def _stripes(h, w, rng, base, accent):
    period = w * rng.uniform(0.06, 0.14)
    angle = float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])) + rng.normal(0, 0.05)
    duty = rng.uniform(0.2, 0.45)  # fraction of accent stripes
    u, _ = _grid(h, w, angle)
    phase = (u / period + rng.uniform()) % 1.0
    # Distance to the stripe boundary in pixels, for anti-aliasing.
    d = np.minimum(phase, duty - phase) * period
    return _mix(base, accent, _smoothstep_edge(d, 1.0))


def _dots(h, w, rng, base, accent):
    period = w * rng.uniform(0.05, 0.1)
    radius = period * rng.uniform(0.18, 0.3)
    u, v = _grid(h, w, rng.uniform(0, np.pi / 4))
    u = u / period + rng.uniform()
    v = v / period + rng.uniform()
    # Staggered rows, like most polka-dot prints.
    u = u + 0.5 * (np.floor(v) % 2)
    du = (u - np.round(u)) * period
    dv = (v - np.round(v)) * period
    d = radius - np.sqrt(du**2 + dv**2)
    return _mix(base, accent, _smoothstep_edge(d, 1.0))


def _checks(h, w, rng, base, accent):
    period = w * rng.uniform(0.06, 0.12)
    u, v = _grid(h, w, float(rng.choice([0.0, np.pi / 4])))
    a = ((u / period + rng.uniform()) % 2.0) < 1.0
    b = ((v / period + rng.uniform()) % 2.0) < 1.0
    m = (a ^ b).astype(np.float32)
    m = cv2.GaussianBlur(m, (0, 0), 0.6)
    return _mix(base, accent, m)


def _plaid(h, w, rng, base, accent):
    # Gingham/tartan: semi-transparent bands of the accent in both directions.
    period = w * rng.uniform(0.08, 0.16)
    u, v = _grid(h, w, 0.0)
    band_u = (((u / period) + rng.uniform()) % 1.0) < 0.35
    band_v = (((v / period) + rng.uniform()) % 1.0) < 0.35
    thin_u = (((u / period) + 0.62) % 1.0) < 0.06
    thin_v = (((v / period) + 0.62) % 1.0) < 0.06
    m = 0.45 * band_u + 0.45 * band_v + 0.5 * (thin_u | thin_v)
    m = cv2.GaussianBlur(np.clip(m, 0, 1).astype(np.float32), (0, 0), 0.6)
    return _mix(base, accent, m)


def _smooth_noise(h, w, rng, scale):
    """Band-limited noise in 0..1 with features about `scale` pixels wide."""
    sh, sw = max(2, int(np.ceil(h / scale)) + 3), max(2, int(np.ceil(w / scale)) + 3)
    coarse = rng.random((sh, sw)).astype(np.float32)
    big = cv2.resize(coarse, (int(sw * scale), int(sh * scale)), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), scale * 0.3)
    out = big[:h, :w]
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _camo(h, w, rng, base, accent):
    # Woodland-style blobs in four tones: the base and earthy shades mixed from it.
    olive = np.array([0.36, 0.4, 0.24], np.float32)
    brown = np.array([0.4, 0.31, 0.22], np.float32)
    tones = [base, 0.55 * base + 0.45 * olive, 0.5 * base + 0.5 * brown, 0.35 * base + 0.05]
    scale = w * rng.uniform(0.08, 0.14)
    out = np.empty((h, w, 3), np.float32)
    out[:] = tones[0]
    for i, level in enumerate((0.52, 0.6, 0.68), start=1):
        n = _smooth_noise(h, w, rng, scale)
        m = _smoothstep_edge(n - level, 0.015)
        out = out * (1.0 - m[..., None]) + np.asarray(tones[i], np.float32) * m[..., None]
    return out


def _floral(h, w, rng, base, accent):
    # Small five-petal flowers scattered on a jittered grid.
    period = w * rng.uniform(0.09, 0.15)
    petal = period * 0.16
    m = np.zeros((h, w), np.float32)
    centre = np.zeros((h, w), np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rows = int(np.ceil(h / period)) + 1
    cols = int(np.ceil(w / period)) + 1
    for r in range(rows):
        for c in range(cols):
            cx = (c + 0.5 * (r % 2)) * period + rng.normal(0, period * 0.12)
            cy = r * period + rng.normal(0, period * 0.12)
            x0, x1 = int(max(cx - period, 0)), int(min(cx + period, w))
            y0, y1 = int(max(cy - period, 0)), int(min(cy + period, h))
            if x0 >= x1 or y0 >= y1:
                continue
            dx, dy = x[y0:y1, x0:x1] - cx, y[y0:y1, x0:x1] - cy
            rot = rng.uniform(0, 2 * np.pi)
            ang = np.arctan2(dy, dx) + rot
            rad = np.sqrt(dx**2 + dy**2)
            edge = petal * (1.2 + 0.9 * np.cos(5 * ang))
            m[y0:y1, x0:x1] = np.maximum(m[y0:y1, x0:x1], _smoothstep_edge(edge - rad, 1.0))
            centre[y0:y1, x0:x1] = np.maximum(
                centre[y0:y1, x0:x1], _smoothstep_edge(petal * 0.45 - rad, 1.0)
            )
    out = _mix(base, accent, m)
    eye = np.array([0.93, 0.8, 0.35], np.float32)
    return out * (1.0 - centre[..., None]) + eye * centre[..., None]


def _heather(h, w, rng, base, accent):
    # Melange knit: fine streaky noise around the base colour.
    n = rng.random((h, w)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=2.5, sigmaY=0.6)
    n = (n - n.mean()) / max(float(n.std()), 1e-6)
    light = np.clip(1.0 + 0.12 * n, 0.0, 2.0)
    return base[None, None, :] * light[..., None]


def _teardrop(length: float, bend: float, n: int = 48) -> np.ndarray:
    """(n, 2) outline of a paisley "boteh": round at the bottom, the tip at the top curled
    sideways by bend (a fraction of the length), centred on the origin; y up."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    x = np.sin(t) * np.sin(t / 2.0) ** 1.2 * 0.75
    y = np.cos(t)
    x = x + bend * ((y + 1.0) / 2.0) ** 3
    return np.stack([x, y], axis=1) * (length / 2.0)


def _fill(canvas: np.ndarray, points: np.ndarray) -> None:
    """Fill a polygon (float pixel points) anti-aliased into a uint8 canvas, in place."""
    pts = np.round(points * 16.0).astype(np.int32)  # 4 bits of sub-pixel precision
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, shift=4)


def _disc(canvas: np.ndarray, centre: np.ndarray, radius: float) -> None:
    c = tuple(int(v) for v in np.round(np.asarray(centre) * 16.0))
    cv2.circle(canvas, c, max(int(round(radius * 16.0)), 1), 255, -1, cv2.LINE_AA, shift=4)


def _paisley(h, w, rng, base, accent):
    # Bandana paisley: teardrop motifs in the accent (an outline ring, a solid core and a ring
    # of dots round each), tossed at random angles on a staggered grid, small flowers between.
    period = w * rng.uniform(0.12, 0.17)
    if rng.random() < 0.85:
        # Bandanas are mostly printed white (black on light cloth), whatever the other accents.
        ink = _ACCENTS[0] / 255.0 if np.linalg.norm(base - _ACCENTS[0] / 255.0) > 0.35 else None
        accent = ink if ink is not None else _ACCENTS[1] / 255.0
    motif = np.zeros((h, w), np.uint8)  # accent
    hole = np.zeros((h, w), np.uint8)  # back to the base inside the outline ring
    core = np.zeros((h, w), np.uint8)  # a darker tone of the base at the heart of the motif
    rows, cols = int(np.ceil(h / period)) + 2, int(np.ceil(w / period)) + 2
    phase = rng.uniform(0, period, 2)
    for r in range(-1, rows):
        for c in range(-1, cols):
            centre = np.array([(c + 0.5 * (r % 2)) * period, r * period * 0.9]) + phase
            centre = centre + rng.normal(0, period * 0.06, 2)
            angle = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            length = period * rng.uniform(0.6, 0.72)
            bend = rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.6)
            shape = _teardrop(length, bend)
            _fill(motif, shape @ rot.T + centre)
            _fill(hole, 0.74 * shape @ rot.T + centre + rot @ [0, -0.04 * length])
            _fill(core, 0.42 * shape @ rot.T + centre + rot @ [0, -0.12 * length])
            ring = _teardrop(length * 1.28, bend * 0.9, 22)
            for q in ring @ rot.T + centre:
                _disc(motif, q, period * 0.018)
            # A small five-dot flower in the gap beside each motif.
            flower = centre + np.array([period * 0.5, period * 0.45])
            for a in np.linspace(0, 2 * np.pi, 5, endpoint=False) + rng.uniform(0, 1):
                _disc(
                    motif,
                    flower + period * 0.055 * np.array([np.cos(a), np.sin(a)]),
                    period * 0.028,
                )
            _disc(core, flower, period * 0.025)
    m = motif.astype(np.float32) / 255.0 * (1.0 - hole.astype(np.float32) / 255.0)
    out = _mix(base, accent, m)
    dark = base * 0.35
    k = core.astype(np.float32)[..., None] / 255.0
    return out * (1.0 - k) + dark[None, None, :] * k


def _jersey(h, w, rng, base, accent):
    # Logo-free sports print: a diagonal colour block in a shade of the base, a bold accent
    # panel along its edge with a pinstripe beside it, and a halftone dot fade.
    angle = float(rng.choice([-1.0, 1.0])) * rng.uniform(0.35, 0.75)
    u, v = _grid(h, w, angle)
    u = u - u.min()
    span = float(u.max())
    edge = span * rng.uniform(0.55, 0.7)
    panel = w * rng.uniform(0.07, 0.11)
    shade = np.clip(base * 0.72 + 0.04, 0.0, 1.0)
    out = _mix(base, shade, _smoothstep_edge(u - edge - panel, 1.0))
    accent_m = _smoothstep_edge(u - edge, 1.0) * _smoothstep_edge(edge + panel - u, 1.0)
    gap, thin = w * 0.025, w * 0.012
    pin = _smoothstep_edge(u - (edge - gap - thin), 1.0) * _smoothstep_edge(edge - gap - u, 1.0)
    out = (
        out * (1.0 - np.maximum(accent_m, pin)[..., None])
        + accent[None, None, :] * (np.maximum(accent_m, pin)[..., None])
    )
    # Halftone: dots that grow towards the panel, on a grid along the stripes.
    cell = w * 0.028
    du = ((u / cell) % 1.0 - 0.5) * cell
    dv = ((v / cell + 0.5 * (np.floor(u / cell) % 2)) % 1.0 - 0.5) * cell
    grow = np.clip((u - (edge - gap - thin - 0.3 * span)) / (0.3 * span), 0.0, 1.0)
    grow = grow * (u < edge - gap - thin - 0.5 * cell)
    dot = _smoothstep_edge(0.42 * cell * grow - np.sqrt(du**2 + dv**2), 1.0) * (grow > 0.05)
    tone = 0.55 * base + 0.45 * accent
    return out * (1.0 - dot[..., None]) + tone[None, None, :] * dot[..., None]


# Saturated inks of novelty prints, beside the cloth accents.
_INKS = np.array(
    [
        [255, 40, 120], [40, 220, 120], [40, 160, 255], [255, 230, 0], [255, 120, 0],
        [180, 60, 255], [245, 244, 238], [20, 20, 24], [220, 20, 20], [20, 30, 160],
    ],
    dtype=np.float32,
)  # fmt: skip


def _novelty(h, w, rng, base, accent):
    # One bold printed motif at the scale real novelty masks print it (a skull or a grin
    # spanning the mask, pop-art shards, graffiti strokes ...), drawn with OpenCV in RGB.
    motif = NOVELTY_MOTIFS[int(rng.integers(len(NOVELTY_MOTIFS)))]
    unit = max(h, w) / 320.0 * rng.uniform(0.8, 1.1)
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = np.round(base * 255).astype(np.uint8)
    _MOTIFS[motif](canvas, rng, unit, base * 255, accent * 255)
    return canvas.astype(np.float32) / 255.0


def _ink(rng: np.random.Generator, avoid: np.ndarray | None = None) -> tuple[int, ...]:
    """A saturated ink, some distance from `avoid` (the ground it is printed on)."""
    return tuple(int(c) for c in _pick_colour(rng, _INKS, avoid, 120.0))


def _contrast(ground: np.ndarray) -> tuple[int, int, int]:
    """Near-black on a light ground, off-white on a dark one."""
    return (20, 20, 24) if float(ground @ [0.299, 0.587, 0.114]) > 140 else (245, 244, 238)


def _skull(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    bone = _contrast(base)
    unit = h / 280.0 * rng.uniform(0.8, 1.0)  # the skull (260 units tall) fits the height
    cx = int(w / 2 + rng.normal(0, 0.04) * w)
    cy = int(h / 2 + 10 * unit)

    def u(v: float) -> int:
        return max(1, int(round(v * unit)))

    ground = tuple(int(c) for c in base)
    cv2.ellipse(im, (cx, cy - u(40)), (u(110), u(100)), 0, 0, 360, bone, -1, cv2.LINE_AA)
    cv2.rectangle(im, (cx - u(70), cy + u(30)), (cx + u(70), cy + u(120)), bone, -1)
    for dx in (-45, 45):
        eye = (cx + int(round(dx * unit)), cy - u(40))
        cv2.ellipse(im, eye, (u(32), u(38)), 0, 0, 360, ground, -1, cv2.LINE_AA)
    nose = np.array([[cx, cy + u(5)], [cx - u(15), cy + u(35)], [cx + u(15), cy + u(35)]])
    cv2.fillPoly(im, [nose.astype(np.int32)], ground, cv2.LINE_AA)
    for x in range(cx - u(60), cx + u(61), u(24)):
        cv2.line(im, (x, cy + u(60)), (x, cy + u(120)), ground, u(4))
    cv2.line(im, (cx - u(70), cy + u(90)), (cx + u(70), cy + u(90)), ground, u(4))


def _grin(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    cx, cy = w // 2, int(h * rng.uniform(0.5, 0.6))
    axes = (int(w * rng.uniform(0.3, 0.4)), int(h * rng.uniform(0.18, 0.26)))
    cv2.ellipse(im, (cx, cy), axes, 0, 0, 180, (25, 10, 12), -1, cv2.LINE_AA)
    cv2.ellipse(im, (cx, cy), axes, 0, 0, 180, (0, 0, 0), max(2, int(6 * unit)), cv2.LINE_AA)
    tooth, gap = max(3, int(24 * unit)), max(1, int(4 * unit))
    for x in range(cx - axes[0] + gap, cx + axes[0] - tooth, tooth + gap):
        cv2.rectangle(im, (x, cy), (x + tooth, cy + int(axes[1] * 0.4)), (250, 250, 248), -1)


def _pop_art(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    for _ in range(int(rng.integers(5, 12))):
        n = int(rng.integers(3, 7))
        pts = np.stack([rng.integers(-w // 8, w + w // 8, n), rng.integers(-h // 8, h + h // 8, n)])
        pts = pts.T.astype(np.int32)
        cv2.fillPoly(im, [pts], _ink(rng), cv2.LINE_AA)
        cv2.polylines(im, [pts], True, (0, 0, 0), max(2, int(5 * unit)), cv2.LINE_AA)


def _graffiti(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    im[:] = np.round(base * 0.3).astype(np.uint8)
    for _ in range(int(rng.integers(6, 14))):
        start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        pts = np.cumsum(rng.normal(0, 40 * unit, (8, 2)), axis=0) + start
        width = max(2, int(rng.uniform(6, 22) * unit))
        cv2.polylines(im, [pts.astype(np.int32)], False, _ink(rng), width, cv2.LINE_AA)


def _smileys(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    cell = max(8, int(80 * unit))
    r = int(cell * 0.38)
    face = (255, 215, 0) if np.linalg.norm(base - [255, 215, 0]) > 120 else (245, 244, 238)
    ox, oy = int(rng.integers(cell)), int(rng.integers(cell))
    for row, y in enumerate(range(oy - cell, h + cell, cell)):
        for x in range(ox - cell + (row % 2) * cell // 2, w + cell, cell):
            cv2.circle(im, (x, y), r, face, -1, cv2.LINE_AA)
            cv2.circle(im, (x, y), r, (0, 0, 0), max(1, r // 14), cv2.LINE_AA)
            for ex in (-1, 1):
                cv2.circle(im, (x + ex * r // 3, y - r // 4), max(1, r // 8), (0, 0, 0), -1)
            cv2.ellipse(
                im, (x, y + r // 6), (r // 2, r // 3), 0, 0, 180, (0, 0, 0), max(1, r // 10)
            )


def _lettering(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    ink = _ink(rng, base)
    scale, line = 2.0 * unit, max(8, int(70 * unit))
    for y in range(int(line * rng.uniform(0.6, 1.0)), h + line // 2, line):
        word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 8))))
        x = int(rng.uniform(-0.1, 0.2) * w)
        font = cv2.FONT_HERSHEY_DUPLEX
        cv2.putText(im, word, (x, y), font, scale, ink, max(2, int(6 * unit)), cv2.LINE_AA)


def _leopard(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    im[:] = np.array([200, 150, 80]) * rng.uniform(0.8, 1.1)
    for _ in range(int(70 * h * w / (320.0 * unit) ** 2)):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = max(2, int(rng.uniform(8, 20) * unit))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(
            im, (x, y), (r, int(r * 0.7)), angle, 0, 300, (30, 20, 10), max(1, int(5 * unit))
        )


def _tiger(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    im[:] = np.array([230, 120, 20]) * rng.uniform(0.85, 1.05)
    step, phase = max(4, int(30 * unit)), rng.uniform(0, 2 * np.pi)
    for y in range(0, h + step, step):
        xs = np.arange(0, w + 10, max(2, int(10 * unit)))
        ys = y + 12 * unit * np.sin(xs / (25 * unit) + y + phase)
        pts = np.stack([xs, ys], axis=1).astype(np.int32)
        cv2.polylines(im, [pts], False, (10, 10, 10), max(2, int(rng.uniform(5, 12) * unit)))


def _flag(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    stripe = max(4, int(40 * unit))
    light = (250, 250, 250)
    for i, y in enumerate(range(0, h, stripe)):
        if i % 2:
            im[y : y + stripe] = light
    ch, cw = int(h * rng.uniform(0.4, 0.55)), int(w * rng.uniform(0.35, 0.5))
    im[:ch, :cw] = np.round(accent).astype(np.uint8)
    star, size = max(6, int(36 * unit)), max(4, int(18 * unit))
    for y in range(star // 2, ch - size // 2, star):
        for x in range(star // 2, cw - size // 2, star):
            cv2.drawMarker(im, (x, y), light, cv2.MARKER_STAR, size, max(1, int(3 * unit)))


def _halftone(im, rng, unit, base, accent):
    h, w = im.shape[:2]
    im[:] = (245, 244, 238)
    ink = tuple(int(c) for c in base) if float(base @ [0.299, 0.587, 0.114]) < 200 else _ink(rng)
    cell = max(4, int(16 * unit * rng.uniform(0.8, 1.25)))
    grow_x, flip = bool(rng.integers(2)), bool(rng.integers(2))
    ox, oy = int(rng.integers(cell)), int(rng.integers(cell))
    for y in range(oy - cell, h + cell, cell):
        for x in range(ox - cell, w + cell, cell):
            t = np.clip(x / w if grow_x else y / h, 0.0, 1.0)
            t = 1.0 - t if flip else t
            cv2.circle(im, (x, y), max(1, int(cell * (0.12 + 0.38 * t))), ink, -1, cv2.LINE_AA)


_MOTIFS: dict[str, Callable[..., None]] = {
    "skull": _skull,
    "grin": _grin,
    "pop_art": _pop_art,
    "graffiti": _graffiti,
    "smileys": _smileys,
    "lettering": _lettering,
    "leopard": _leopard,
    "tiger": _tiger,
    "flag": _flag,
    "halftone": _halftone,
}


_DRAWERS: dict[str, Callable[..., np.ndarray]] = {
    "stripes": _stripes,
    "dots": _dots,
    "checks": _checks,
    "plaid": _plaid,
    "camo": _camo,
    "floral": _floral,
    "heather": _heather,
    "paisley": _paisley,
    "jersey": _jersey,
    "novelty": _novelty,
}


def _image_pattern(path: Path, h: int, w: int) -> np.ndarray:
    from maskforge.core.imageio import read_image

    try:
        img = read_image(path)
    except ValueError as exc:
        raise ValueError(f"pattern image {path}: {exc}") from None
    ih, iw = img.shape[:2]
    if ih * 2 <= h and iw * 2 <= w:
        # A small swatch repeats like a printed fabric.
        reps = (int(np.ceil(h / ih)), int(np.ceil(w / iw)), 1)
        out = np.tile(img, reps)[:h, :w]
    else:
        scale = max(h / ih, w / iw)
        size = (max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale))))
        big = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        out = big[y0 : y0 + h, x0 : x0 + w]
    return out.astype(np.float32) / 255.0
