"""Weighted option specs (`surgical=2,cloth`), colour specs, and the seeds every draw starts from.

`Choice.draw` is a draw (this is the sampler's package); the rest is parsing and hashing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

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

_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


@dataclass(frozen=True)
class Choice:
    """Named options with relative weights; draw() picks one with a Generator."""

    options: tuple[str, ...]
    weights: tuple[float, ...]

    def draw(self, rng: np.random.Generator) -> str:
        """One option, chosen with probability proportional to its weight."""
        if len(self.options) == 1:
            return self.options[0]
        p = np.asarray(self.weights, dtype=np.float64)
        return self.options[int(rng.choice(len(self.options), p=p / p.sum()))]

    def __str__(self) -> str:
        if len(set(self.weights)) == 1:
            return ",".join(self.options)
        return ",".join(f"{o}={w:g}" for o, w in zip(self.options, self.weights))


def parse_choice(
    spec: str,
    allowed: Sequence[str] | None,
    what: str,
    random_weights: dict[str, float] | None = None,
) -> Choice:
    """Parse `a,b=2,c` (weights default 1) or `random`, checking names against `allowed`.

    allowed None accepts any name (e.g. colours, checked elsewhere). `random` expands to
    random_weights, or to every allowed name with equal weight.
    """
    spec = (spec or "").strip()
    if not spec:
        raise ValueError(f"Empty {what} list.")
    options: dict[str, float] = {}
    for part in spec.split(","):
        name, _, weight_text = part.strip().partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"Empty name in {what} list {spec!r}.")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(
                f"Invalid weight {weight_text!r} for {what} {name!r} (use name=NUMBER)."
            ) from None
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"Invalid weight {weight_text!r} for {what} {name!r}: must be >= 0.")
        if name == "random":
            if random_weights is None and allowed is None:
                raise ValueError(f"'random' is not available for {what}.")
            expanded = random_weights or {a: 1.0 for a in allowed}
            total = sum(expanded.values())
            for key, w in expanded.items():
                options[key] = options.get(key, 0.0) + weight * w / total
            continue
        if allowed is not None and name not in allowed:
            raise ValueError(f"Invalid {what} {name!r}. Choose from: {', '.join(allowed)}, random.")
        options[name] = options.get(name, 0.0) + weight
    if sum(options.values()) <= 0:
        raise ValueError(f"All weights in {what} list {spec!r} are zero.")
    kept = {k: v for k, v in options.items() if v > 0}
    return Choice(tuple(kept), tuple(kept.values()))


def stable_hash(text: str) -> int:
    """A 63-bit integer hash of text, the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def face_seed(seed: int, key: str, face: int) -> int:
    """The seed every random choice for one face is drawn from (recorded in synthesis.csv)."""
    return stable_hash(f"{seed}\x00{key}\x00{face}")


def draw_key(key: str, draw: int) -> str:
    """The seed key of a photo's `draw`-th mask per face (`--masks-per-face`): the photo's own
    key for the first, so a run with one mask per face draws what it always drew."""
    return key if draw == 0 else f"{key}\x00mask{draw}"


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


def parse_size_range(spec: str) -> tuple[int, int]:
    """'MIN-MAX' pixels (e.g. '20-100'; one number: that size only) as (MIN, MAX)."""
    parts = spec.replace(" ", "").split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
    except ValueError:
        low, high = 0, -1
    if not 8 <= low <= high <= 1000:
        raise ValueError(
            f"{spec!r} is not a size range: give MIN-MAX pixels, 8 <= MIN <= MAX <= 1000 "
            "(e.g. 20-100)"
        )
    return low, high


def format_color(rgb: tuple[int, int, int]) -> str:
    """'#rrggbb' for an RGB triple (the form recorded in synthesis.csv)."""
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))
