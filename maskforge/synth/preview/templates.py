"""The template library shown to a person: one row per template and occluder (`maskforge
templates`), and a contact sheet of every view with a sample colour and print (`--sheet`).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from maskforge.core.imageio import write_image
from maskforge.synth.render.templates import (
    TEMPLATES_FILE,
    MaskTemplate,
    load_occluders,
    load_templates,
    render_appearance,
    template_folder,
)
from maskforge.synth.sampling.draws import draw_sheet_samples
from maskforge.synth.sampling.specs import format_color


def describe_templates(root: Path | None = None) -> list[dict]:
    """One dict per template and occluder: name, kind, description, variants, image paths.

    kind is "mask" for templates, else the occluder's kind; `images` maps variant -> Path
    (occluders have one view, "front"). Loads (and so validates) everything first.
    """
    folder = template_folder(root)
    templates, occluders = load_templates(folder), load_occluders(folder)
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
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Invalid sheet file {str(path)!r}: the contact sheet is written as .png")
    templates = load_templates(root)
    occluders = load_occluders(root)
    samples = draw_sheet_samples(seed, templates.values())
    rows = []
    for (name, t), (color, pattern_name, pattern) in zip(templates.items(), samples):
        cells = []
        for key in ("front", "left", "right"):
            v = t.variants[key]
            cells.append(_cell(v.rgba, f"{name} {key}", v.anchors if anchors else None))
        front = t.variants["front"]
        cells.append(_cell(render_appearance(front, color, None), f"colour {format_color(color)}"))
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
