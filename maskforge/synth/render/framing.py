"""Framing: where each output is cut from the photo (`synthesize --framing`), as pure geometry.

A framing's random parts are drawn by the sampler (sampling.draws.draw_framing); `frame_box`
turns them, the face box and its 68 landmarks into a rectangle (left, top, right, bottom) of
the photo:

- crop: today's square of the face box grown by --margin (geometry.square_crop);
- closeup: a square that cuts into the face box as a selfie held close does: either its bottom
  edge crosses the chin (never above the mouth, so a mask stays in view; the forehead may go
  too), or its top edge crosses the forehead and the chin stays in;
- wide: a square two to four face boxes wide, its centre dropped towards the shoulders;
- full: the whole photo (every face of it masked, written once).

Every square is shifted, never shrunk, to stay inside the photo, and where the photo is smaller
than the square it is cut to the photo's short side: no frame is ever padded, since a padded
border is something no real photo has (so on a tight face photo `wide` gives what context there
is, up to the whole short side). `resize_output` is `--size`: squares become SIZE x SIZE and a
`full` photo keeps its aspect with its long side SIZE.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskforge.faces import geometry
from maskforge.synth.sampling.params import FramingParams

# What `--framing random` means: half the outputs today's crop, the rest the other framings.
RANDOM_FRAMING = {"crop": 3.0, "closeup": 1.0, "wide": 1.0, "full": 1.0}
Box = tuple[float, float, float, float]
Rect = tuple[int, int, int, int]
# closeup: where its cut edge lies, as a share of the span it may fall in (depth 0 -> lo, 1 -> hi):
# the bottom edge from the lower lip (0) to the chin (1); the top edge from the brows (0) to the
# eyes (1). The horizontal offset, per unit of FramingParams.shift, in frame sides.
CHIN_CUT = (0.4, 0.85)
FOREHEAD_CUT = (0.0, 0.6)
CLOSEUP_SHIFT = 0.05
CHIN_ROOM = 0.04  # face box sides kept below the chin by a closeup that cuts the forehead
WIDE_SHIFT = 0.06


def frame_box(
    params: FramingParams,
    box: Box,
    landmarks: np.ndarray,
    image_shape: tuple[int, ...],
    margin: float = geometry.CROP_MARGIN,
) -> Rect:
    """The rectangle of the photo that one output shows (see the module's docstring)."""
    height, width = image_shape[:2]
    if params.name == "crop":
        return geometry.square_crop(box, image_shape, margin)
    if params.name == "full":
        return 0, 0, width, height
    left, top, right, bottom = box
    face = max(right - left, bottom - top)
    side = int(round(min(params.zoom * face, width, height)))
    lm = np.asarray(landmarks, dtype=np.float64)
    if params.name == "closeup":
        cx = float(lm[27:31, 0].mean()) + params.shift * CLOSEUP_SHIFT * side
        if params.cut == "chin":
            lip, chin = lm[geometry.LOWER_LIP, 1], lm[geometry.CHIN, 1]
            edge = lip + _between(CHIN_CUT, params.depth) * (chin - lip)
            y0 = edge - side
        else:
            brows, eyes = lm[17:27, 1].mean(), lm[36:48, 1].mean()
            y0 = brows + _between(FOREHEAD_CUT, params.depth) * (eyes - brows)
            # Cutting the forehead keeps the chin (and a mask pulled down onto it) in view.
            reach = lm[geometry.CHIN, 1] + CHIN_ROOM * face - y0
            side = int(round(min(max(side, reach), width, height)))
    elif params.name == "wide":
        cx = (left + right) / 2 + params.shift * WIDE_SHIFT * side
        y0 = (top + bottom) / 2 + params.drop * face - side / 2
    else:
        raise ValueError(f"Invalid framing {params.name!r}.")
    return _square_inside(cx - side / 2, y0, side, width, height)


def check_box(params: FramingParams, frame: Rect, crop: Rect) -> Rect:
    """Where the share of the output showing the mask is measured (MIN_VISIBLE_MASK): the frame
    itself for a closeup, else the face's square crop (a wide or full frame holds that crop, and
    over a whole photo a small face's mask would always look too small)."""
    return frame if params.name == "closeup" else crop


def resize_output(image: np.ndarray, size: int | None) -> np.ndarray:
    """`--size`: a square to size x size, anything else to its long side = size, aspect kept."""
    if not size:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    shape = (size, size) if h == w else (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, shape, interpolation=interp))


def contains(outer: Rect, inner: Box) -> bool:
    """Whether the rectangle outer holds all of inner."""
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _between(span: tuple[float, float], t: float) -> float:
    return span[0] + float(np.clip(t, 0.0, 1.0)) * (span[1] - span[0])


def _square_inside(x0: float, y0: float, side: int, width: int, height: int) -> Rect:
    """A side x side square from (x0, y0), shifted to lie inside a width x height photo."""
    x = int(round(min(max(x0, 0), width - side)))
    y = int(round(min(max(y0, 0), height - side)))
    return x, y, x + side, y + side
