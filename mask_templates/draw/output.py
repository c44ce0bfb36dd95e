"""Render every view and write the PNGs and templates.json."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from .head import ANCHOR_NAMES, HALF_WIDTH, face_anchors_3d, interp
from .masks import MASKS
from .occluders import MOUTH, OCCLUDERS
from .surfaces import PX_PER_UNIT, Part, Rendered, mirror, render

YAW_DEG = 35.0  # the head turn of the left and right views


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
    spec = MASKS[name]
    meta = {
        "description": spec.description,
        "default_color": spec.default_colour,
        "colors": list(spec.palette),
    }
    if spec.patterns is not None:
        meta["patterns"] = list(spec.patterns)
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
        views = render_views(MASKS[name].builder())
        variants = {}
        for key, r in views.items():
            image, tint = f"{name}_{key}.png", f"{name}_{key}_tint.png"
            _write(out_dir / image, encode_png(r.rgba))
            _write(out_dir / tint, encode_png(r.tint))
            variants[key] = {
                "image": image,
                "tint": tint,
                "anchors": [[round(float(x), 2), round(float(y), 2)] for x, y in r.anchors],
            }
        meta["templates"][name] = {**template_meta(name), "variants": variants}
    if not names or "occluders" in names:
        (out_dir / "occluders").mkdir(exist_ok=True)
        for name, spec in OCCLUDERS.items():
            r = render(spec.builder(), 0.0, MOUTH[None])
            image, tint = f"occluders/{name}.png", f"occluders/{name}_tint.png"
            _write(out_dir / image, encode_png(r.rgba))
            _write(out_dir / tint, encode_png(r.tint))
            mouth = [round(float(v), 2) for v in r.anchors[0]]
            face_width = round(2 * float(interp(HALF_WIDTH, 0.0)) * PX_PER_UNIT, 2)
            meta["occluders"][name] = {
                "kind": spec.kind,
                "image": image,
                "tint": tint,
                "mouth": mouth,
                "face_width": face_width,
                "default_color": spec.default_colour,
            }
    # Keep the order of the drawing code, whatever was drawn in this run.
    meta["templates"] = {k: meta["templates"][k] for k in MASKS if k in meta["templates"]}
    meta["occluders"] = {k: meta["occluders"][k] for k in OCCLUDERS if k in meta["occluders"]}
    _write(out_dir / "templates.json", (json.dumps(meta, indent=1) + "\n").encode())
    return meta
