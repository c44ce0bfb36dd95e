"""Mask templates and occluders (mask_templates/): loading, colours, and template-space recolouring.

Coordinates are template pixels, (x, y), x to the right and y down. Images are RGBA uint8
(H, W, 4); tints are float32 (H, W) in 0..1 (1 = fabric that takes the user's colour/pattern).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskforge.choices import OCCLUDER_KINDS, VARIANTS
from maskforge.synth.patterns import PATTERNS, make_pattern

__all__ = [
    "ANCHOR_NAMES",
    "NAMED_COLORS",
    "PATTERNS",
    "VARIANTS",
    "MaskTemplate",
    "Occluder",
    "TemplateVariant",
    "default_root",
    "describe_templates",
    "format_color",
    "load_occluders",
    "load_templates",
    "make_pattern",
    "parse_color",
    "render_appearance",
    "sample_color",
    "write_template_sheet",
]

ANCHOR_NAMES = ("nose", "cheek_left", "cheek_right", "jaw_left", "jaw_right", "chin")
TEMPLATES_FILE = "templates.json"

# Names accepted by --color; values are what a mask of that name looks like, not pure primaries.
NAMED_COLORS: dict[str, str] = {
    "white": "#f2f3f1",
    "offwhite": "#e9e5da",
    "black": "#26272a",
    "gray": "#8c8f94",
    "grey": "#8c8f94",
    "darkgray": "#4a4c50",
    "lightblue": "#a8d4ec",
    "blue": "#3f6fb5",
    "navy": "#283a5e",
    "skyblue": "#7cc0e8",
    "teal": "#2f8c8a",
    "lightgreen": "#a9dcc0",
    "green": "#4f8a4b",
    "olive": "#6b6e3c",
    "pink": "#f2b8c8",
    "red": "#b8323a",
    "maroon": "#6e2430",
    "purple": "#6c4c94",
    "lavender": "#c3b4e0",
    "yellow": "#ecd36a",
    "orange": "#e48a3c",
    "beige": "#d8c4a4",
    "brown": "#6e4e36",
}

# Saturation (max - min of RGB, 0..1) above which an untinted template pixel is an accent.
ACCENT_MIN_SATURATION = 0.25

# Shrunk views are kept at quarter-octave steps, so a run resizes each view a few times instead of
# once per face (the resize was ~0.7 ms of the ~7 ms a face's compositing costs).
SHRINK_STEP = 2**0.25

_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


@dataclass(frozen=True)
class TemplateVariant:
    """One view of a mask.

    rgba: (H, W, 4) uint8, the mask in its default colour with shading baked in;
    tint: (H, W) float32 0..1, 1 where the fabric takes the user's colour, 0 outside alpha;
    anchors: (6, 2) float64 template pixels (x, y) in ANCHOR_NAMES order.
    """

    rgba: np.ndarray
    tint: np.ndarray
    anchors: np.ndarray
    _shrunk: dict = field(default_factory=dict, compare=False, repr=False)

    def shrunk(self, factor: float) -> TemplateVariant:
        """This view shrunk to the quarter-octave step at or just below factor (< 1), cached."""
        step = max(1, math.ceil(-math.log(factor) / math.log(SHRINK_STEP) - 1e-9))
        if step not in self._shrunk:
            self._shrunk[step] = self.scaled(SHRINK_STEP**-step)
        return self._shrunk[step]

    def scaled(self, factor: float) -> TemplateVariant:
        """The same view resized by factor (INTER_AREA when shrinking), anchors scaled to match."""
        h, w = self.rgba.shape[:2]
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        fx, fy = size[0] / w, size[1] / h
        return TemplateVariant(
            rgba=cv2.resize(self.rgba, size, interpolation=interp),
            tint=cv2.resize(self.tint, size, interpolation=interp),
            anchors=self.anchors * np.array([fx, fy]),
        )


@dataclass(frozen=True)
class MaskTemplate:
    """A mask type: its palette, its front/left/right views (keys of `variants`) and the prints
    it typically comes in (`patterns`: PATTERNS names or "none" for plain, a name listed twice
    twice as common; empty when the type has no typical prints)."""

    name: str
    description: str
    default_color: tuple[int, int, int]
    colors: tuple[tuple[int, int, int], ...]
    variants: dict[str, TemplateVariant]
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Occluder:
    """A hard-negative sprite (hand, object, scarf) placed by a similarity transform.

    rgba: (H, W, 4) uint8; tint: (H, W) float32 0..1 (1 = takes the skin/colour tint);
    mouth: (2,) float64 sprite pixel (x, y) that lands on the mouth centre;
    face_width: sprite pixels that span the distance between the cheek anchors.
    """

    name: str
    kind: str
    rgba: np.ndarray
    tint: np.ndarray
    mouth: np.ndarray
    face_width: float
    default_color: tuple[int, int, int]


def default_root() -> Path:
    """The mask_templates/ of the source tree this maskforge was imported from, else the folder
    of the installed `maskforge.mask_templates` package."""
    # A checkout (or git worktree) on PYTHONPATH uses its own templates, not those of an
    # editable install of another checkout.
    source = Path(__file__).resolve().parents[2] / "mask_templates"
    if (source / TEMPLATES_FILE).is_file():
        return source
    try:
        spec = importlib.util.find_spec("maskforge.mask_templates")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return source


def load_templates(root: Path | None = None) -> dict[str, MaskTemplate]:
    """All templates in root/templates.json (default: default_root()), cached; arrays read-only."""
    return _load(_resolve(root))[0]


def load_occluders(root: Path | None = None) -> dict[str, Occluder]:
    """All occluders in root/templates.json (default: default_root()), cached; arrays read-only."""
    return _load(_resolve(root))[1]


def _resolve(root: Path | None) -> Path:
    return (Path(root) if root is not None else default_root()).resolve()


@functools.lru_cache(maxsize=8)
def _load(root: Path) -> tuple[dict[str, MaskTemplate], dict[str, Occluder]]:
    meta_path = root / TEMPLATES_FILE
    if not meta_path.is_file():
        raise ValueError(f"mask template metadata not found: {meta_path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc})") from None
    try:
        names = tuple(meta.get("anchor_names", ANCHOR_NAMES))
        if names != ANCHOR_NAMES:
            raise ValueError(f"anchor_names must be {list(ANCHOR_NAMES)}, got {list(names)}")
        templates = {
            name: _parse_template(root, name, entry) for name, entry in meta["templates"].items()
        }
        occluders = {
            name: _parse_occluder(root, name, entry)
            for name, entry in meta.get("occluders", {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{meta_path}: malformed template metadata ({exc!r})") from None
    except ValueError as exc:
        raise ValueError(f"{meta_path}: {exc}") from None
    if not templates:
        raise ValueError(f"{meta_path}: no templates defined")
    return templates, occluders


def _parse_template(root: Path, name: str, entry: dict) -> MaskTemplate:
    variants = {}
    for key in VARIANTS:
        if key not in entry["variants"]:
            raise ValueError(f"template {name!r} has no {key!r} variant")
        item = entry["variants"][key]
        rgba = _read_rgba(root / item["image"])
        tint = _read_tint(root / item["tint"], rgba) if item.get("tint") else _full_tint(rgba)
        anchors = np.asarray(item["anchors"], dtype=np.float64)
        if anchors.shape != (len(ANCHOR_NAMES), 2) or not np.isfinite(anchors).all():
            raise ValueError(f"template {name!r} variant {key!r}: anchors must be 6 (x, y) pairs")
        anchors.setflags(write=False)
        variants[key] = TemplateVariant(rgba=rgba, tint=tint, anchors=anchors)
    default = parse_color(entry["default_color"])
    colors = tuple(parse_color(c) for c in entry.get("colors", [])) or (default,)
    patterns = tuple(str(p) for p in entry.get("patterns", []))
    unknown = sorted(set(patterns) - set(PATTERNS) - {"none"})
    if unknown:
        raise ValueError(
            f"template {name!r}: unknown pattern(s) {unknown}; use {', '.join(PATTERNS)}, none"
        )
    return MaskTemplate(
        name=name,
        description=str(entry.get("description", "")),
        default_color=default,
        colors=colors,
        variants=variants,
        patterns=patterns,
    )


def _parse_occluder(root: Path, name: str, entry: dict) -> Occluder:
    kind = entry["kind"]
    if kind not in OCCLUDER_KINDS:
        raise ValueError(f"occluder {name!r}: kind {kind!r} is not one of {list(OCCLUDER_KINDS)}")
    rgba = _read_rgba(root / entry["image"])
    tint = _read_tint(root / entry["tint"], rgba) if entry.get("tint") else _full_tint(rgba)
    mouth = np.asarray(entry["mouth"], dtype=np.float64)
    face_width = float(entry["face_width"])
    if mouth.shape != (2,) or not np.isfinite(mouth).all() or not face_width > 0:
        raise ValueError(f"occluder {name!r}: mouth must be (x, y) and face_width positive")
    mouth.setflags(write=False)
    return Occluder(
        name=name,
        kind=kind,
        rgba=rgba,
        tint=tint,
        mouth=mouth,
        face_width=face_width,
        default_color=parse_color(entry["default_color"]),
    )


def _read_png(path: Path, flags: int) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"template image not found: {path}")
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise ValueError(f"template image cannot be decoded: {path}")
    return img


def _read_rgba(path: Path) -> np.ndarray:
    img = _read_png(path, cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"template image must be 8-bit RGBA: {path} has shape {img.shape}")
    rgba = np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
    rgba.setflags(write=False)
    return rgba


def _read_tint(path: Path, rgba: np.ndarray) -> np.ndarray:
    img = _read_png(path, cv2.IMREAD_GRAYSCALE)
    if img.shape != rgba.shape[:2]:
        raise ValueError(f"tint {path} is {img.shape[::-1]}, its image is {rgba.shape[1::-1]}")
    tint = img.astype(np.float32) / 255.0
    tint[rgba[..., 3] == 0] = 0.0
    tint.setflags(write=False)
    return tint


def _full_tint(rgba: np.ndarray) -> np.ndarray:
    tint = (rgba[..., 3] > 0).astype(np.float32)
    tint.setflags(write=False)
    return tint


def parse_color(spec: str) -> tuple[int, int, int]:
    """A colour name from NAMED_COLORS (case, spaces, '-' and '_' ignored), '#rrggbb' or '#rgb'."""
    text = str(spec).strip()
    key = re.sub(r"[\s_-]+", "", text.lower())
    if key in NAMED_COLORS:
        text = NAMED_COLORS[key]
    if _HEX.fullmatch(text):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    raise ValueError(
        f"Invalid colour {spec!r}. Use #rrggbb, #rgb or one of: {', '.join(NAMED_COLORS)}."
    )


def format_color(rgb: tuple[int, int, int]) -> str:
    """'#rrggbb' for an RGB triple (the form recorded in synthesis.csv)."""
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def sample_color(template: MaskTemplate, rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour from the template's realistic palette with small brightness/hue jitter."""
    base = np.asarray(template.colors[int(rng.integers(len(template.colors)))], np.float64)
    # Same dye looks a little different between batches, brands and washes.
    jittered = base * rng.normal(1.0, 0.035) + rng.normal(0.0, 3.0, size=3)
    return tuple(int(v) for v in np.clip(np.rint(jittered), 0, 255))  # type: ignore[return-value]


def render_appearance(
    variant: TemplateVariant | Occluder,
    color: tuple[int, int, int] | None,
    pattern: np.ndarray | None = None,
    pattern_weight: float = 1.0,
) -> np.ndarray:
    """The template recoloured in template space: RGBA uint8 (H, W, 4), alpha unchanged.

    Tinted fabric takes `color` (None keeps the template's own colour), mixed with `pattern`
    (float32 (H, W, 3) 0..1, e.g. from make_pattern) by `pattern_weight`, and keeps the
    template's folds and seams: each pixel is modulated by its luminance relative to the
    fabric's median luminance. Untinted parts (loops, wire, valves, filters) are unchanged.
    An Occluder works the same way (a hand takes the skin colour given as `color`).
    """
    rgba = variant.rgba
    h, w = rgba.shape[:2]
    if pattern is not None and pattern.shape != (h, w, 3):
        raise ValueError(f"pattern shape {pattern.shape} does not match the template {(h, w, 3)}")
    if not 0.0 <= pattern_weight <= 1.0:
        raise ValueError(f"pattern_weight {pattern_weight} is outside 0..1")
    if color is None and (pattern is None or pattern_weight == 0.0):
        return rgba.copy()
    src = rgba[..., :3].astype(np.float32) / 255.0
    tint = variant.tint
    shade = _relative_shading(src, tint, rgba[..., 3])
    fabric = src if color is None else _shade(np.asarray(color, np.float32) / 255.0, shade)
    if pattern is not None and pattern_weight > 0.0:
        fabric = fabric + pattern_weight * (_shade(pattern.astype(np.float32), shade) - fabric)
    out = src + tint[..., None] * (fabric - src)
    result = np.empty_like(rgba)
    result[..., :3] = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    result[..., 3] = rgba[..., 3]
    return result


def recolour_accents(rgba: np.ndarray, tint: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """RGBA with the untinted, strongly coloured parts (e.g. filter cartridges) in `color`.

    Loops, straps and valves are grey, so saturation picks the accents out; each accent pixel
    keeps its luminance relative to the accents' median, so the cartridges' shading stays.
    """
    src = rgba[..., :3].astype(np.float32) / 255.0
    saturation = src.max(axis=2) - src.min(axis=2)
    accent = (tint < 0.05) & (saturation > ACCENT_MIN_SATURATION) & (rgba[..., 3] > 0)
    if not accent.any():
        return rgba.copy()
    lum = src @ np.array([0.299, 0.587, 0.114], np.float32)
    shade = (lum / max(float(np.median(lum[accent])), 1e-3))[..., None]
    recoloured = _shade(np.asarray(color, np.float32) / 255.0, shade)
    out = rgba.copy()
    out[..., :3][accent] = np.clip(np.rint(recoloured[accent] * 255.0), 0, 255).astype(np.uint8)
    return out


def _relative_shading(src: np.ndarray, tint: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 1) float32: each pixel's luminance over the median luminance of the fabric."""
    lum = src @ np.array([0.299, 0.587, 0.114], np.float32)
    fabric = (tint > 0.5) & (alpha > 0)
    median = float(np.median(lum[fabric])) if fabric.any() else 1.0
    return (lum / max(median, 1e-3))[..., None]


def _shade(color: np.ndarray, shade: np.ndarray) -> np.ndarray:
    # Multiply for shadows; screen-like lift for highlights so folds stay visible on black.
    dark = color * np.minimum(shade, 1.0)
    lift = np.clip(shade - 1.0, 0.0, 1.0)
    return dark + (1.0 - dark) * lift * 0.6


# -- listing and contact sheet ---------------------------------------------------------------------


def describe_templates(root: Path | None = None) -> list[dict]:
    """One dict per template and occluder: name, kind, description, variants, image paths.

    kind is "mask" for templates, else the occluder's kind; `images` maps variant -> Path
    (occluders have one view, "front"). Loads (and so validates) everything first.
    """
    folder = _resolve(root)
    templates, occluders = _load(folder)
    meta = json.loads((folder / TEMPLATES_FILE).read_text(encoding="utf-8"))
    rows = []
    for name, t in templates.items():
        entry = meta["templates"][name]["variants"]
        rows.append(
            {
                "name": name,
                "kind": "mask",
                "description": t.description,
                "default_color": format_color(t.default_color),
                "variants": list(t.variants),
                "images": {k: folder / entry[k]["image"] for k in t.variants},
            }
        )
    for name, o in occluders.items():
        rows.append(
            {
                "name": name,
                "kind": o.kind,
                "description": f"{o.kind} occluder (hard negative)",
                "default_color": format_color(o.default_color),
                "variants": ["front"],
                "images": {"front": folder / meta["occluders"][name]["image"]},
            }
        )
    return rows


_CELL = (300, 230)  # width, height of one sheet cell in pixels
_SMALL_WIDTH = 60  # a mask's width on a 150 px face crop


def write_template_sheet(
    path: Path, root: Path | None = None, anchors: bool = True, seed: int = 0
) -> Path:
    """A PNG contact sheet of every template (front/left/right, a palette colour, a pattern,
    and the front at face-crop size) and every occluder; anchors drawn as dots when asked."""
    from maskforge.core.imageio import write_image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Invalid sheet file {str(path)!r}: the contact sheet is written as .png")
    templates = load_templates(root)
    occluders = load_occluders(root)
    rng = np.random.default_rng(seed)
    rows = []
    for name, t in templates.items():
        cells = []
        for key in ("front", "left", "right"):
            v = t.variants[key]
            cells.append(_cell(v.rgba, f"{name} {key}", v.anchors if anchors else None))
        front = t.variants["front"]
        color = sample_color(t, rng)
        cells.append(_cell(render_appearance(front, color, None), f"colour {format_color(color)}"))
        # A print the type typically comes in, where it has some; else any pattern.
        prints = [p for p in t.patterns if p != "none"] or list(PATTERNS)
        pattern_name = prints[int(rng.integers(len(prints)))]
        pattern = make_pattern(pattern_name, front.rgba.shape[:2], rng, color)
        cells.append(_cell(render_appearance(front, color, pattern, 0.85), pattern_name))
        cells.append(_small_cell(t))
        rows.append(np.hstack(cells))
    if occluders:
        cells = []
        for name, o in occluders.items():
            color = o.default_color if o.kind == "hand" else None
            label = f"{name} ({o.kind})"
            cells.append(
                _cell(render_appearance(o, color, None), label, o.mouth[None] if anchors else None)
            )
        width = rows[0].shape[1] if rows else len(cells) * _CELL[0]
        for i in range(0, len(cells), width // _CELL[0]):
            row = np.hstack(cells[i : i + width // _CELL[0]])
            pad = np.full((row.shape[0], width - row.shape[1], 3), 255, np.uint8)
            rows.append(np.hstack([row, pad]))
    write_image(path, np.vstack(rows))
    return path


def _backdrop(h: int, w: int) -> np.ndarray:
    """A light checkerboard that shows where the template is transparent."""
    y, x = np.mgrid[0:h, 0:w]
    return np.where(((x // 12 + y // 12) % 2)[..., None] == 0, 222, 236).astype(np.float32) * (
        np.ones(3, np.float32)
    )


def _composite(rgba: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * a + backdrop * (1.0 - a)).astype(np.uint8)


def _cell(rgba: np.ndarray, label: str, points: np.ndarray | None = None) -> np.ndarray:
    cw, ch = _CELL
    h, w = rgba.shape[:2]
    scale = min((cw - 10) / w, (ch - 30) / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    cell = np.full((ch, cw, 3), 255, np.uint8)
    x0, y0 = (cw - size[0]) // 2, 22
    cell[y0 : y0 + size[1], x0 : x0 + size[0]] = _composite(small, _backdrop(size[1], size[0]))
    if points is not None:
        for i, (px, py) in enumerate(points):
            centre = (int(round(x0 + px * scale)), int(round(y0 + py * scale)))
            cv2.circle(cell, centre, 3, (0, 170, 0) if i == 0 else (220, 0, 0), -1, cv2.LINE_AA)
    cv2.putText(cell, label, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def _small_cell(t: MaskTemplate) -> np.ndarray:
    """The three variants at the size they have on a 150 px face, shown 1:1 and 2x."""
    cw, ch = _CELL
    cell = np.full((ch, cw, 3), 255, np.uint8)
    x = 8
    for key in ("front", "left", "right"):
        rgba = t.variants[key].rgba
        h, w = rgba.shape[:2]
        size = (_SMALL_WIDTH, max(1, round(h * _SMALL_WIDTH / w)))
        small = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
        img = _composite(small, _backdrop(size[1], size[0]))
        cell[30 : 30 + size[1], x : x + size[0]] = img
        big = cv2.resize(img, (size[0] * 2 // 1, size[1] * 2), interpolation=cv2.INTER_NEAREST)
        if key == "front":
            top = 30 + size[1] + 12
            big = big[: ch - top]  # a covering that hangs below the chin is cut at the cell
            cell[top : top + big.shape[0], 8 : 8 + big.shape[1]] = big
        x += size[0] + 12
    cv2.putText(
        cell,
        f"{_SMALL_WIDTH} px (face scale)",
        (5, 15),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.42,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return cell
