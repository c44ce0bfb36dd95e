"""Mask templates and occluders (mask_templates/): loading, checking, template-space recolouring.

Coordinates are template pixels, (x, y), x to the right and y down. Images are RGBA uint8
(H, W, 4); tints are float32 (H, W) in 0..1 (1 = fabric that takes the user's colour/pattern).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskforge.choices import OCCLUDER_KINDS, VARIANTS
from maskforge.synth.sampling.patterns import PATTERN_NAMES
from maskforge.synth.sampling.specs import parse_color

__all__ = [
    "ANCHOR_NAMES",
    "VARIANTS",
    "MaskTemplate",
    "Occluder",
    "TemplateVariant",
    "default_root",
    "load_occluders",
    "load_templates",
    "render_appearance",
]

ANCHOR_NAMES = ("nose", "cheek_left", "cheek_right", "jaw_left", "jaw_right", "chin")
TEMPLATES_FILE = "templates.json"

# Saturation (max - min of RGB, 0..1) above which an untinted template pixel is an accent.
ACCENT_MIN_SATURATION = 0.25

# Shrunk views are kept at quarter-octave steps, so a run resizes each view a few times instead of
# once per face (the resize was ~0.7 ms of the ~7 ms a face's compositing costs).
SHRINK_STEP = 2**0.25


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
    it typically comes in (`patterns`: PATTERN_NAMES names or "none" for plain, a name listed twice
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
    return _load(template_folder(root))[0]


def load_occluders(root: Path | None = None) -> dict[str, Occluder]:
    """All occluders in root/templates.json (default: default_root()), cached; arrays read-only."""
    return _load(template_folder(root))[1]


def template_folder(root: Path | None = None) -> Path:
    """The template folder in use: root, or the installed mask_templates."""
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
    unknown = sorted(set(patterns) - set(PATTERN_NAMES) - {"none"})
    if unknown:
        raise ValueError(
            f"template {name!r}: unknown pattern(s) {unknown}; use {', '.join(PATTERN_NAMES)}, none"
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
