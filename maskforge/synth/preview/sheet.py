"""Contact sheets of a synthesize output folder: sample synthesis.csv rows, tile and label them.

`select_rows` reads and filters synthesis.csv and draws a seeded sample; `build_sheet` renders the
sample as one RGB image (a title, then a grid of tiles, each an image area above a text band);
`make_sheet` / `write_sheet` are the one-call forms. Images that cannot be read become grey tiles
that say why, so one bad file never stops a sheet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from maskforge.choices import FRAMINGS
from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image, write_image
from maskforge.faces.cascade import STAGES
from maskforge.faces.geometry import WEAR_STYLES
from maskforge.synth.run.records import (
    CSV_COLUMNS,
    JOURNAL,
    LATER_COLUMNS,
    RUN_FILE,
    STATUSES,
    read_synthesis_table,
)
from maskforge.synth.run.records import CSV_NAME as SYNTHESIS_CSV
from maskforge.synth.sampling.draws import sample_rows

# Columns of synthesis.csv that a sheet reads (docs/formats.md); the others are not needed, and
# those added later (framing, near_hand) read as empty where an older run did not write them.
REQUIRED_COLUMNS = tuple(
    c for c in CSV_COLUMNS if c not in ("label", "group", "seed", *LATER_COLUMNS)
)


DEFAULT_COUNT = 48
DEFAULT_TILE = 160
GAP = 4  # white gutter right of and below every tile
LABEL_LINES = 4
LINE_HEIGHT = 13
LABEL_HEIGHT = LABEL_LINES * LINE_HEIGHT + 4  # text band under each tile's image area
TITLE_HEIGHT = 2 * 15 + 6
MAX_SHEET_PIXELS = 100_000_000

_FONT_SIZE, _TITLE_FONT_SIZE = 11, 13
_INK = (20, 20, 20)
_MUTED = (95, 95, 95)
_ALERT = (200, 40, 30)
_BACKGROUND = 255
_UNREADABLE_GREY = 128
_BOX_COLOR = (235, 40, 30)


@dataclass(frozen=True)
class Filters:
    """Row filters; each tuple is a set of allowed values, empty meaning any."""

    mask_types: tuple[str, ...] = ()
    wears: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    negatives: bool = False
    framings: tuple[str, ...] = ()
    hands_near_mask: bool = False  # only outputs with a hand raised beside the mask

    def describe(self) -> str:
        """Human summary, e.g. 'status ok, mask_type surgical'."""
        statuses = ",".join(self.statuses or ("ok",))
        if set(self.statuses) == set(STATUSES):
            statuses = "all"
        parts = [f"status {statuses}"]
        for name, values in (
            ("mask_type", self.mask_types),
            ("wear", self.wears),
            ("detector", self.detectors),
            ("framing", self.framings),
        ):
            if values:
                parts.append(f"{name} {','.join(values)}")
        if self.negatives:
            parts.append("hard negatives")
        if self.hands_near_mask:
            parts.append("hands near masks")
        return ", ".join(parts)


@dataclass(frozen=True)
class Selection:
    """The sampled rows (in sheet order) and how many rows there were to sample from."""

    rows: pd.DataFrame
    matched: int  # rows passing the filters
    total: int  # rows in synthesis.csv


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of a sheet: a title band, then rows x columns cells of cell_w x cell_h."""

    tile: int
    columns: int
    rows: int
    side_by_side: bool

    @property
    def image_w(self) -> int:
        """Width of a tile's image area (two tile-wide images side by side)."""
        return self.tile * (2 if self.side_by_side else 1)

    @property
    def cell_w(self) -> int:
        """Width of a cell: image area plus the gutter."""
        return self.image_w + GAP

    @property
    def cell_h(self) -> int:
        """Height of a cell: image area, label band and gutter."""
        return self.tile + LABEL_HEIGHT + GAP

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of the sheet."""
        return (TITLE_HEIGHT + self.rows * self.cell_h, self.columns * self.cell_w, 3)

    def origin(self, index: int) -> tuple[int, int]:
        """(x, y) of the top-left pixel of tile `index`'s image area (row-major order)."""
        row, col = divmod(index, self.columns)
        return col * self.cell_w, TITLE_HEIGHT + row * self.cell_h


@dataclass(frozen=True)
class Sheet:
    """A rendered contact sheet and what went into it."""

    image: np.ndarray  # RGB uint8 (H, W, 3)
    layout: Layout
    selection: Selection
    unreadable: int  # tiles whose image could not be read (drawn grey)


def read_synthesis_csv(out_dir: Path) -> pd.DataFrame:
    """synthesis.csv of a synthesize output folder, all columns as str ('' for empty cells).

    Raises FileNotFoundError / NotADirectoryError / ValueError with a one-line reason.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise FileNotFoundError(f"Output folder {out_dir} does not exist.")
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is not a folder (expected a synthesize output).")
    path = out_dir / SYNTHESIS_CSV
    if not path.is_file():
        hint = (
            "a synthesize run there has not finished; rerun it to resume"
            if (out_dir / JOURNAL).is_file()
            else "is it a `maskforge synthesize` output folder?"
        )
        raise FileNotFoundError(f"{path} does not exist ({hint}).")
    table = read_synthesis_table(path, REQUIRED_COLUMNS)
    for column in LATER_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    return table


def select_rows(table: pd.DataFrame, count: int, seed: int, filters: Filters) -> Selection:
    """Rows passing `filters`, then `count` of them drawn without replacement by `seed`.

    Rows are sorted by (input, face) before sampling, so the sample does not depend on the
    order in which synthesize workers finished. Raises ValueError when no row matches.
    """
    if count < 1:
        raise ValueError(f"Invalid count {count}: must be at least 1.")
    _check_allowed("status", filters.statuses, STATUSES)
    _check_allowed("wear", filters.wears, WEAR_STYLES)
    _check_allowed("detector", filters.detectors, STAGES)
    _check_allowed("framing", filters.framings, FRAMINGS)
    keep = table["status"].isin(filters.statuses or ("ok",))
    if filters.negatives:
        keep &= table["negative"] != ""
    if filters.hands_near_mask:
        keep &= table["near_hand"] != ""
    for column, values in (
        ("mask_type", filters.mask_types),
        ("wear", filters.wears),
        ("detector", filters.detectors),
        ("framing", filters.framings),
    ):
        if values:
            keep &= table[column].isin(values)
    matched = table[keep]
    if matched.empty:
        raise ValueError(_no_match_message(table, filters))
    face = pd.to_numeric(matched["face"], errors="coerce").fillna(-1)
    ordered = matched.assign(_face=face).sort_values(["input", "_face"], kind="stable")
    picked = sample_rows(seed, len(ordered), count)
    rows = ordered.iloc[picked].drop(columns="_face").reset_index(drop=True)
    return Selection(rows=rows, matched=len(matched), total=len(table))


def _check_allowed(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"Invalid {name} {bad[0]!r}. Allowed: {', '.join(allowed)}.")


def _no_match_message(table: pd.DataFrame, filters: Filters) -> str:
    found = []
    for column, values in (
        ("status", filters.statuses),
        ("mask_type", filters.mask_types),
        ("wear", filters.wears),
        ("detector", filters.detectors),
        ("framing", filters.framings),
    ):
        if values or column == "status":
            present = sorted(v for v in table[column].unique() if v)
            found.append(f"{column}: {', '.join(present) or 'none'}")
    if filters.negatives and not (table["negative"] != "").any():
        found.append("no hard negatives at all (synthesize with --negatives makes them)")
    if filters.hands_near_mask and not (table["near_hand"] != "").any():
        found.append("no hands near masks at all (synthesize with --hands-near-mask adds them)")
    return f"No rows of synthesis.csv match ({filters.describe()}); present are {'; '.join(found)}."


def layout_for(count: int, tile: int, columns: int | None, side_by_side: bool) -> Layout:
    """The grid for `count` tiles: `columns` wide (default 8, or 4 side by side), at most count."""
    if tile < 16:
        raise ValueError(f"Invalid tile size {tile}: must be at least 16 pixels.")
    columns = columns or (4 if side_by_side else 8)
    if columns < 1:
        raise ValueError(f"Invalid columns {columns}: must be at least 1.")
    columns = max(1, min(columns, count))
    layout = Layout(tile, columns, -(-count // columns), side_by_side)
    h, w, _ = layout.shape
    if h * w > MAX_SHEET_PIXELS:
        raise ValueError(
            f"A sheet of {count} tiles at --tile {tile} would be {w}x{h} pixels, over the "
            f"limit of {MAX_SHEET_PIXELS:,}; use a smaller --count or --tile."
        )
    return layout


def build_sheet(
    out_dir: Path,
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    filters: Filters | None = None,
    side_by_side: bool = False,
    tile: int = DEFAULT_TILE,
    columns: int | None = None,
    progress: bool | None = None,
) -> Sheet:
    """Read out_dir/synthesis.csv, sample `count` rows by `seed`, and render them as a Sheet.

    progress: tqdm bar (None: only on a terminal).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    filters = filters or Filters()
    selection = select_rows(read_synthesis_csv(out_dir), count, seed, filters)
    layout = layout_for(len(selection.rows), tile, columns, side_by_side)
    sheet = np.full(layout.shape, _BACKGROUND, np.uint8)
    title = (
        f"{out_dir.as_posix()}",
        f"{len(selection.rows)} of {selection.matched} rows ({filters.describe()}; "
        f"{selection.total} in synthesis.csv), sampling seed {seed}",
    )
    sheet[:TITLE_HEIGHT] = _text_band(title, sheet.shape[1], TITLE_HEIGHT, _TITLE_FONT_SIZE, 15)
    input_root = _input_root(out_dir)
    unreadable = 0
    rows = selection.rows.to_dict("records")
    disable = None if progress is None else not progress
    bar = tqdm(rows, desc="preview", unit="tile", disable=disable)
    for i, row in enumerate(bar):
        cell, bad = render_tile(row, out_dir, input_root, layout, filters.negatives)
        unreadable += bad
        x, y = layout.origin(i)
        sheet[y : y + tile + LABEL_HEIGHT, x : x + layout.image_w] = cell
    return Sheet(sheet, layout, selection, unreadable)


def make_sheet(out_dir: Path, **options) -> np.ndarray:
    """The contact sheet of out_dir as RGB uint8 (H, W, 3); options: build_sheet's keywords
    (count, seed, filters, side_by_side, tile, columns), with no progress bar."""
    return build_sheet(out_dir, **options, progress=False).image


def write_sheet(path: Path, out_dir: Path, **options) -> Sheet:
    """Build the sheet (options: build_sheet's keywords) and write it atomically as the PNG
    file `path`."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Invalid sheet file {str(path)!r}: the contact sheet is written as .png")
    sheet = build_sheet(out_dir, **options)
    write_image(path, sheet.image)
    return sheet


def _input_root(out_dir: Path) -> Path | None:
    """The photo folder the run read (run.json's `input`), for showing failed inputs."""
    try:
        root = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8")).get("input")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(root) if isinstance(root, str) and root else None


# -- one tile ----------------------------------------------------------------------------------


def render_tile(
    row: dict, out_dir: Path, input_root: Path | None, layout: Layout, negatives: bool = False
) -> tuple[np.ndarray, bool]:
    """One tile (image area over label band) as RGB uint8 (tile + LABEL_HEIGHT, image_w, 3).

    ok rows show the output (or, with negatives, the hard negative); other rows show the input
    photo with the rejected face's box. Side by side, the unmasked original is on the left.
    Returns the tile and whether an image could not be read.
    """
    tile = layout.tile
    if row["status"] == "ok":
        shown = [row["negative"] if negatives else row["output"]]
        if layout.side_by_side:
            shown.insert(0, row["original"])
        images = [_image_or_note(out_dir / rel if rel else None, tile) for rel in shown]
        label = (_negative_label if negatives else _ok_label)(row, layout.image_w)
    else:
        photo = input_root / row["input"] if input_root is not None else None
        missing = f"input photo folder unknown ({RUN_FILE} missing or without 'input')"
        images = [_image_or_note(photo, tile, _parse_box(row["box"]), missing)]
        if layout.side_by_side:
            images.append((_note_tile(tile, f"not masked: {row['status']}", 235), False))
        label = _failure_label(row, layout.image_w)
    area = np.hstack([img for img, _ in images])
    band = _label_band(label, layout.image_w)
    return np.vstack([area, band]), any(bad for _, bad in images)


def _image_or_note(
    path: Path | None,
    tile: int,
    box: tuple[int, int, int, int] | None = None,
    missing: str = "no image recorded in synthesis.csv",
) -> tuple[np.ndarray, bool]:
    """The image at path fitted to tile x tile (box drawn in red), or a grey note and True."""
    if path is None:
        return _note_tile(tile, missing, _UNREADABLE_GREY), True
    try:
        image = read_image(path)
    except (UnreadableImageError, ImageTooLargeError) as exc:
        return _note_tile(tile, f"unreadable: {path.name}: {exc}", _UNREADABLE_GREY), True
    if box is not None:
        image = image.copy()
        thick = max(2, round(2 * max(image.shape[:2]) / tile))
        cv2.rectangle(image, box[:2], box[2:], _BOX_COLOR, thick)
    return fit_image(image, tile, tile), False


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 image scaled to fit width x height, aspect kept, centred on white.

    Shrinking uses INTER_AREA (no aliasing); enlarging small crops uses INTER_LINEAR, as
    INTER_AREA then degrades to blocky nearest-neighbour steps.
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, size, interpolation=interp)
    if size == (width, height):
        return small
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    x0, y0 = (width - size[0]) // 2, (height - size[1]) // 2
    canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = small
    return canvas


def _note_tile(tile: int, text: str, grey: int) -> np.ndarray:
    """A grey square with `text` wrapped on it (for images that cannot be shown)."""
    font = _font(_FONT_SIZE)
    lines = _wrap(text, font, tile - 8)[: max(1, (tile - 8) // LINE_HEIGHT)]
    img = Image.new("RGB", (tile, tile), (grey,) * 3)
    draw = ImageDraw.Draw(img)
    ink = (255, 255, 255) if grey < 170 else _INK
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * LINE_HEIGHT), line, font=font, fill=ink)
    return np.asarray(img, dtype=np.uint8).copy()


def _parse_box(text: str) -> tuple[int, int, int, int] | None:
    try:
        left, top, right, bottom = (int(round(float(v))) for v in text.split())
    except ValueError:
        return None
    return left, top, right, bottom


# -- labels ------------------------------------------------------------------------------------

# A label line is a list of segments: (text, colour) or ("#rrggbb", None) for a colour swatch.
Segment = tuple[str, tuple[int, int, int] | None]


def _ok_label(row: dict, width: int) -> list[list[Segment]]:
    wear = row["wear"] or "?"
    return [
        [(row["mask_type"] or "?", _INK), ("  ", _INK)]
        + ([(row["color"], None), (" " + row["color"], _INK)] if row["color"] else []),
        [
            (row["pattern"] or "plain", _INK),
            ("  ", _INK),
            (wear, _INK if wear == "correct" else _ALERT),
            ("  " + _framing(row), _MUTED),
        ],
        [(_pose(row), _MUTED)],
        [(_where(row, width), _MUTED)],
    ]


def _negative_label(row: dict, width: int) -> list[list[Segment]]:
    return [
        [(f"negative: {row['negative_kind'] or '?'}", _ALERT)],
        [("label unmasked", _INK)],
        [(_pose(row), _MUTED)],
        [(_where(row, width), _MUTED)],
    ]


def _failure_label(row: dict, width: int) -> list[list[Segment]]:
    return [
        [(row["status"], _ALERT)] + ([(f"  {row['detector']}", _MUTED)] if row["detector"] else []),
        [(row["reason"] or "(no reason recorded)", _INK)],
        [("", _INK)],  # room for the reason to wrap into
        [(_where(row, width), _MUTED)],
    ]


def _framing(row: dict) -> str:
    """The framing, and '+hand' when a hand is raised near the mask ('' for older runs)."""
    return row.get("framing", "") + (" +hand" if row.get("near_hand") else "")


def _pose(row: dict) -> str:
    try:
        yaw = f"yaw {float(row['yaw']):+.0f}"
    except ValueError:
        yaw = "yaw ?"
    return f"{row['variant'] or '?'}  {yaw}  {row['detector'] or '?'}"


def _where(row: dict, width: int) -> str:
    """The input path and face index, cut at the start to fit (the file name matters most)."""
    text = f"{row['input']} #{row['face']}" if row["face"] not in ("", "-1") else row["input"]
    return _cut(text, _font(_FONT_SIZE), width - 6, left=True)


def _label_band(lines: list[list[Segment]], width: int) -> np.ndarray:
    """A LABEL_HEIGHT x width white band with the label lines (long ones wrap or are cut)."""
    font = _font(_FONT_SIZE)
    img = Image.new("RGB", (width, LABEL_HEIGHT), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(img)
    y = 2
    lines = _flow(lines, font, width - 6)
    for line in lines[:LABEL_LINES]:
        x = 3.0
        for text, color in line:
            if color is None:  # swatch: filled square in the mask colour, dark outline
                rgb = tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
                draw.rectangle((x, y + 2, x + 10, y + 11), fill=rgb, outline=_INK)
                x += 11
                continue
            text = _cut(text, font, width - 3 - x)
            draw.text((x, y), text, font=font, fill=color)
            x += font.getlength(text)
        y += LINE_HEIGHT
    return np.asarray(img, dtype=np.uint8).copy()


def _flow(lines: list[list[Segment]], font, width: float) -> list[list[Segment]]:
    """Wrap single-segment lines that are too long onto the following empty line."""
    out: list[list[Segment]] = []
    for line in lines:
        if out and line == [("", _INK)] and len(out[-1]) == 1 and out[-1][0][0]:
            text, color = out[-1][0]
            parts = _wrap(text, font, width)
            if len(parts) > 1:
                out[-1] = [(parts[0], color)]
                line = [(" ".join(parts[1:]), color)]
        out.append(line)
    return out


def _text_band(lines: tuple[str, ...], width: int, height: int, size: int, step: int) -> np.ndarray:
    font = _font(size)
    img = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((4, 3 + i * step), _cut(line, font, width - 8, left=i == 0), font=font, fill=_INK)
    return np.asarray(img, dtype=np.uint8).copy()


def _wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels (a word longer than a line is cut later)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _cut(text: str, font, width: float, left: bool = False) -> str:
    """text shortened with '...' to fit `width` pixels; left=True keeps the end (for paths)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(f"...{text}" if left else f"{text}...") > width:
        text = text[1:] if left else text[:-1]
    return f"...{text}" if left else f"{text}..."


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: no font file to ship or find, same pixels on every machine.
    return ImageFont.load_default(size=size)
