"""Weighted option specs (`surgical=2,cloth`) and the per-face random draw of appearance.

All randomness flows from a numpy Generator seeded per face (see face_seed), so the same seed and
input give the same choices in any process and in any order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class FaceParams:
    """Every choice made for one face, enough to reproduce its outputs."""

    mask_type: str
    variant: str
    color: tuple[int, int, int]
    pattern: str | None
    pattern_weight: float
    wear: str
    negative: str | None
    seed: int

    @property
    def color_hex(self) -> str:
        """The colour as #rrggbb."""
        return "#{:02x}{:02x}{:02x}".format(*self.color)

    @property
    def label(self) -> str:
        """Class of the masked output: masked (worn correctly) or incorrect."""
        return "masked" if self.wear == "correct" else "incorrect"
