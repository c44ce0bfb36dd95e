"""Annotated copies: a labelled box per face, coloured by class, drawn on the image in place."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Box colours (RGB) per class; other class names take the palette in order.
CLASS_COLORS = {"unmasked": (230, 40, 40), "masked": (40, 190, 70), "incorrect": (245, 150, 0)}
PALETTE = [(60, 120, 240), (200, 60, 200), (0, 190, 190), (150, 110, 60)]
SMALL_COLOR = (160, 160, 160)


def class_color(name: str, classes: Sequence[str]) -> tuple[int, int, int]:
    """Drawing colour of a class (RGB)."""
    if name in CLASS_COLORS:
        return CLASS_COLORS[name]
    others = [c for c in classes if c not in CLASS_COLORS]
    return PALETTE[others.index(name) % len(PALETTE)] if name in others else PALETTE[0]


def draw_box(image: np.ndarray, box, text: str, color) -> None:
    """Draw a labelled box in place on RGB uint8; line width and text scale follow the image."""
    h, w = image.shape[:2]
    thick = max(2, round(max(h, w) / 300))
    # Face boxes of tight crops run off the frame; draw the visible part so every edge shows.
    left, top, right, bottom = (int(v) for v in box)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, w - 1), min(bottom, h - 1)
    cv2.rectangle(image, (left, top), (right, bottom), color, thick)
    scale = max(0.4, min(1.2, (right - left) / 160))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    # Label above the box, or inside its top when there is no room above.
    y0 = top - th - base - 2 if top - th - base - 2 >= 0 else top + thick
    x0 = min(max(left, 0), max(w - tw - 4, 0))
    cv2.rectangle(image, (x0, y0), (x0 + tw + 4, y0 + th + base + 2), color, -1)
    cv2.putText(
        image,
        text,
        (x0 + 2, y0 + th + 1),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )


def annotate(rgb: np.ndarray, rows: list[dict], classes: Sequence[str]) -> np.ndarray:
    """A copy of rgb with each row's box and label drawn (rows as predict writes them)."""
    canvas = rgb.copy()
    h, w = rgb.shape[:2]
    for row in rows:
        if row["status"] == "whole_image":
            label = f"{row['class']} {row['probability']:.2f} (whole)"
            draw_box(canvas, (0, 0, w - 1, h - 1), label, class_color(row["class"], classes))
        elif row["status"] == "ok":
            label = f"{row['class']} {row['probability']:.2f}"
            draw_box(canvas, _box(row), label, class_color(row["class"], classes))
        elif row["status"] == "too_small":
            draw_box(canvas, _box(row), "too small", SMALL_COLOR)
    return canvas


def _box(row: dict) -> tuple[int, ...]:
    return tuple(int(v) for v in str(row["box"]).split())
