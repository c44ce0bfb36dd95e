"""Weighted option specs (`surgical=2,cloth`) and the per-face random draws of appearance.

All randomness flows from a numpy Generator seeded per face (see face_seed), so the same seed and
input give the same choices in any process and in any order. The draws here are the sampler
half of synthesis: FaceParams (drawn by pipeline.Synthesizer), then MaskLook (the fabric texture
and accent colour) and, for a hard negative, OccluderParams; render.py composites from them;
then FramingParams (framing.py cuts the output) and, sometimes, NearHandParams (hands.py).
One face's generator is consumed in that order, so that a seed keeps giving the same images;
a new kind of draw goes after the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]
# Cartridge colours of real respirators (NIOSH colour code: P100 magenta, organic vapour black,
# acid gas white, OV/AG yellow, multi-gas olive, ammonia green).
ACCENT_COLORS = {
    "gas": ("#d64a86", "#2a2a2c", "#e8e8e4", "#d8b23a", "#6b6e3c", "#4f8a4b"),
}
OCCLUDER_COLORS = (
    "black", "darkgray", "gray", "white", "beige", "brown", "navy", "blue", "teal", "green",
    "olive", "maroon", "red", "orange", "yellow", "purple", "pink", "lavender",
)  # fmt: skip
SCARF_PATTERNS = ("stripes", "checks", "plaid", "heather", "dots")
SCARF_PATTERN_RATE = 0.5
# How far a hard negative strays from the face's own size and roll: a scale factor in
# OCCLUDER_SCALE and up to OCCLUDER_TURN degrees of extra roll.
OCCLUDER_SCALE = (0.9, 1.12)
OCCLUDER_TURN = 12.0


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


@dataclass(frozen=True)
class MaskLook:
    """The draws for one mask made after FaceParams: its fabric texture, then its accent colour."""

    # The fabric pattern, float32 (h, w, 3) 0..1 at the template view's working size (see
    # render.mask_shape); None for plain fabric.
    texture: np.ndarray | None = field(default=None, compare=False, repr=False)
    accent: RGB | None = None  # respirator cartridges (ACCENT_COLORS); None: the template's own


def draw_look(
    rng: np.random.Generator, template, params: FaceParams, shape: tuple[int, int]
) -> MaskLook:
    """The texture of params.pattern over shape = (h, w), then the accent colour of templates
    that have accents (ACCENT_COLORS); template: a templates.MaskTemplate."""
    from maskforge.synth.patterns import make_pattern
    from maskforge.synth.templates import parse_color

    # Pattern sizes are fractions of the template's width, so drawing at the working size
    # keeps their scale on the mask independent of the face's size in the photo.
    texture = make_pattern(params.pattern, shape, rng, params.color) if params.pattern else None
    accents = ACCENT_COLORS.get(template.name)
    accent = parse_color(accents[int(rng.integers(len(accents)))]) if accents else None
    return MaskLook(texture, accent)


@dataclass(frozen=True)
class OccluderParams:
    """Every choice for one hard negative (a hand, object or scarf over the mouth)."""

    mirrored: bool  # held from the other side
    scale: float  # times the face's width over the occluder's own
    turn: float  # degrees of roll on top of the face's
    shift: tuple[float, float]  # mouth offset, standard normal (render.OCCLUDER_SHIFT scales it)
    color: RGB | None  # None: the face's own skin colour (hands)
    pattern: str | None = None  # a SCARF_PATTERNS name
    texture: np.ndarray | None = field(default=None, compare=False, repr=False)


def draw_occluder(rng: np.random.Generator, occluder) -> OccluderParams:
    """Side, size, roll, offset, then colour and (for scarves, sometimes) a woven pattern.

    occluder: a templates.Occluder. One scarf or notebook colour everywhere would let a
    classifier learn "maroon knit = unmasked": the colour is drawn; hands take the face's skin.
    """
    from maskforge.synth.patterns import make_pattern
    from maskforge.synth.templates import parse_color

    mirrored = bool(rng.random() < 0.5)
    scale = float(rng.uniform(*OCCLUDER_SCALE))
    turn = float(rng.uniform(-OCCLUDER_TURN, OCCLUDER_TURN))
    shift = tuple(float(v) for v in rng.standard_normal(2))
    color, pattern, texture = None, None, None
    if occluder.kind != "hand":
        color = parse_color(OCCLUDER_COLORS[int(rng.integers(len(OCCLUDER_COLORS)))])
        if occluder.kind == "scarf" and rng.random() < SCARF_PATTERN_RATE:
            pattern = SCARF_PATTERNS[int(rng.integers(len(SCARF_PATTERNS)))]
            texture = make_pattern(pattern, occluder.rgba.shape[:2], rng, base_color=color)
    return OccluderParams(mirrored, scale, turn, shift, color, pattern, texture)


# -- framing and hands near the mask: drawn after every draw above, so that adding them left
# the outputs of earlier runs unchanged (a single-option choice and a zero rate draw nothing).

# closeup: the frame's side as a share of the face box's, and how often the chin (rather than
# the forehead) is cut; wide: the side in face boxes and how far the centre drops towards the
# shoulders (face box sides). The horizontal offset is a standard normal cut at +-FRAME_SHIFT_CUT.
CLOSEUP_ZOOM = (0.72, 0.92)
CLOSEUP_CHIN_RATE = 0.6
WIDE_ZOOM = (2.2, 3.6)
WIDE_DROP = (0.15, 0.5)
FRAME_SHIFT_CUT = 1.5
# A hand near the mask: where it is raised (framing.py and hands.py say how), how far outside
# the face it starts (face widths) and how much it leans from upright (degrees).
NEAR_SPOTS = ("temple", "cheek", "jaw")
NEAR_GAP = (0.05, 0.3)
NEAR_TILT = (-25.0, 25.0)
NEAR_SCALE = (0.7, 0.95)


@dataclass(frozen=True)
class FramingParams:
    """How one output is cut from the photo (framing.frame_box turns it into a rectangle)."""

    name: str  # a choices.FRAMINGS name
    zoom: float = 1.0  # closeup / wide: the frame's side over the face box's
    cut: str = ""  # closeup: "chin" or "forehead", the edge the frame cuts into
    depth: float = 0.0  # closeup: how deep that cut goes, 0..1 (framing.py scales it)
    drop: float = 0.0  # wide: downward shift of the centre, in face box sides
    shift: float = 0.0  # closeup / wide: horizontal offset, standard normal, cut


def draw_framing(
    rng: np.random.Generator, choice: Choice, full: bool | None, wear: str
) -> FramingParams:
    """The framing of one face, then its closeup or wide geometry.

    full: None for a photo's first face, whose draw decides whether the photo is written whole;
    True for the later faces of such a photo (nothing drawn), False for the later faces of a
    photo cut per face (drawn among the other framings). A chin-worn mask is never cut off by
    a closeup: its closeup cuts the forehead.
    """
    if full:
        return FramingParams("full")
    if full is None or "full" not in choice.options:
        name = choice.draw(rng)
    else:
        kept = [(o, w) for o, w in zip(choice.options, choice.weights) if o != "full"]
        name = Choice(*map(tuple, zip(*kept))).draw(rng)
    if name == "closeup":
        zoom = float(rng.uniform(*CLOSEUP_ZOOM))
        chin = bool(rng.random() < CLOSEUP_CHIN_RATE) and wear != "chin"
        depth = float(rng.random())
        shift = float(np.clip(rng.standard_normal(), -FRAME_SHIFT_CUT, FRAME_SHIFT_CUT))
        return FramingParams(name, zoom, "chin" if chin else "forehead", depth, shift=shift)
    if name == "wide":
        zoom = float(rng.uniform(*WIDE_ZOOM))
        drop = float(rng.uniform(*WIDE_DROP))
        shift = float(np.clip(rng.standard_normal(), -FRAME_SHIFT_CUT, FRAME_SHIFT_CUT))
        return FramingParams(name, zoom, drop=drop, shift=shift)
    return FramingParams(name)


@dataclass(frozen=True)
class NearHandParams:
    """A hand raised beside a masked face (hands.py places it off the mask)."""

    occluder: str  # name of a hand sprite (templates.Occluder of kind hand)
    spot: str  # a NEAR_SPOTS name
    side: int  # -1: the image's left of the face, 1: its right
    gap: float  # face widths between the face's edge and the hand's anchor
    tilt: float  # degrees from upright (outward positive)
    scale: float  # times the face's width over the sprite's own
    mirrored: bool


def draw_near_hand(
    rng: np.random.Generator, hands: Sequence[str], rate: float
) -> NearHandParams | None:
    """With probability rate (nothing drawn at 0): which hand sprite (hands: their names,
    sorted), where, how far out, its lean, size and side; else None."""
    if rate <= 0 or rng.random() >= rate:
        return None
    occluder = hands[int(rng.integers(len(hands)))]
    spot = NEAR_SPOTS[int(rng.integers(len(NEAR_SPOTS)))]
    side = -1 if rng.random() < 0.5 else 1
    gap = float(rng.uniform(*NEAR_GAP))
    tilt = float(rng.uniform(*NEAR_TILT))
    scale = float(rng.uniform(*NEAR_SCALE))
    mirrored = bool(rng.random() < 0.5)
    return NearHandParams(occluder, spot, side, gap, tilt, scale, mirrored)
