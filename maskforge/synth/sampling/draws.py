"""Every per-face random draw of synthesis, and the few draws of the pictures made of it.

All randomness flows from a numpy Generator seeded per face (see specs.face_seed), so the same
seed and input give the same choices in any process and in any order. `FaceSampler` holds one
face's generator and draws, in this order: the mask type, then the rest of FaceParams (colour,
pattern, wear, a hard negative), the MaskLook (fabric texture, accent colour), the mask's grain
(while rendering, see params.Grain), for a hard negative its OccluderParams and grain, then the
FramingParams, sometimes NearHandParams and the hand's grain, and last, sometimes, the
FarCameraParams of the pair. render/ composites from them.
One face's generator is consumed in that order, so that a seed keeps giving the same images; a
new kind of draw goes after the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from maskforge.synth.sampling.params import (
    RGB,
    FaceParams,
    FarCameraParams,
    FramingParams,
    Grain,
    MaskLook,
    NearHandParams,
    OccluderParams,
)
from maskforge.synth.sampling.patterns import PATTERN_NAMES, make_pattern
from maskforge.synth.sampling.specs import Choice, parse_color

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
# Moulded respirators come plain; a printed pattern on them looks fake.
PLAIN_TEMPLATES = frozenset({"n95", "n95_valve", "gas"})


class MaskMix(Protocol):
    """The options a face's parameters are drawn from (a run.pipeline.SynthesisOptions)."""

    colors: Choice | None
    patterns: Choice
    pattern_weight: float
    wear: Choice
    negatives: Choice | None
    negative_rate: float


class FaceSampler:
    """One face's draws from its seed, always in the same order (see the module's docstring).

    seed: the face's seed (specs.face_seed), or any seed numpy accepts (mask_face uses
    [seed, face]). `grain` is handed to render/ for the noise it adds while compositing.
    """

    def __init__(self, seed: int | Sequence[int]):
        self._rng = np.random.default_rng(seed)
        self.grain = Grain(self._rng)

    def mask_type(self, choice: Choice) -> str:
        """The face's first draw: its mask type."""
        return choice.draw(self._rng)

    def params(
        self,
        template,
        mix: MaskMix,
        variant: str,
        wear: str | None,
        occluder_kinds: Mapping[str, str],
        seed: int,
    ) -> FaceParams:
        """The rest of FaceParams: colour, pattern, wear, then a hard negative, in this order.

        template: a render.templates.MaskTemplate; variant: the template view (chosen from the
        face's yaw, not drawn); wear: a wear already decided for the photo (full frames), else
        None; occluder_kinds: occluder name -> kind.
        """
        rng = self._rng
        color = (
            sample_color(template, rng) if mix.colors is None else parse_color(mix.colors.draw(rng))
        )
        pattern = mix.patterns.draw(rng)
        if template.name in PLAIN_TEMPLATES:
            pattern = "none"  # drawn anyway, so the choices after it do not depend on the type
        drawn_wear = mix.wear.draw(rng)
        negative = None
        if mix.negatives is not None and rng.random() < mix.negative_rate:
            kind = mix.negatives.draw(rng)
            names = sorted(n for n, k in occluder_kinds.items() if k == kind)
            negative = names[int(rng.integers(len(names)))]
        return FaceParams(
            mask_type=template.name,
            variant=variant,
            color=color,
            pattern=None if pattern == "none" else pattern,
            pattern_weight=mix.pattern_weight,
            wear=wear or drawn_wear,
            negative=negative,
            seed=seed,
        )

    def color(self, template) -> RGB:
        """A colour from the template's realistic palette (sample_color)."""
        return sample_color(template, self._rng)

    def look(self, template, params: FaceParams, shape: tuple[int, int]) -> MaskLook:
        """The mask's texture and accent colour (draw_look)."""
        return draw_look(self._rng, template, params, shape)

    def occluder(self, occluder) -> OccluderParams:
        """A hard negative's placement and colour (draw_occluder)."""
        return draw_occluder(self._rng, occluder)

    def framing(self, choice: Choice, full: bool | None, wear: str) -> FramingParams:
        """How the output is cut (draw_framing)."""
        return draw_framing(self._rng, choice, full, wear)

    def near_hand(self, hands: Sequence[str], rate: float) -> NearHandParams | None:
        """A hand raised beside the mask, or None (draw_near_hand)."""
        return draw_near_hand(self._rng, hands, rate)

    def far_camera(self, share: float, faces: tuple[int, int]) -> FarCameraParams | None:
        """With probability share: the pair as a far camera sees it (draw_far_camera)."""
        return draw_far_camera(self._rng, share, faces)


def sample_color(template, rng: np.random.Generator) -> RGB:
    """A colour from the template's realistic palette (a render.templates.MaskTemplate's
    `colors`) with small brightness/hue jitter."""
    base = np.asarray(template.colors[int(rng.integers(len(template.colors)))], np.float64)
    # Same dye looks a little different between batches, brands and washes.
    jittered = base * rng.normal(1.0, 0.035) + rng.normal(0.0, 3.0, size=3)
    return tuple(int(v) for v in np.clip(np.rint(jittered), 0, 255))  # type: ignore[return-value]


def draw_look(
    rng: np.random.Generator, template, params: FaceParams, shape: tuple[int, int]
) -> MaskLook:
    """The texture of params.pattern over shape = (h, w), then the accent colour of templates
    that have accents (ACCENT_COLORS); template: a templates.MaskTemplate."""
    # Pattern sizes are fractions of the template's width, so drawing at the working size
    # keeps their scale on the mask independent of the face's size in the photo.
    texture = make_pattern(params.pattern, shape, rng, params.color) if params.pattern else None
    accents = ACCENT_COLORS.get(template.name)
    accent = parse_color(accents[int(rng.integers(len(accents)))]) if accents else None
    return MaskLook(texture, accent)


def draw_occluder(rng: np.random.Generator, occluder) -> OccluderParams:
    """Side, size, roll, offset, then colour and (for scarves, sometimes) a woven pattern.

    occluder: a templates.Occluder. One scarf or notebook colour everywhere would let a
    classifier learn "maroon knit = unmasked": the colour is drawn; hands take the face's skin.
    """
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


# A far camera (synthesize --far-camera): the face's width in the written image is drawn
# log-uniformly over --far-faces (street and CCTV cameras: most annotated faces of
# ../shared/faces/scenes are 10-60 px wide); then the optics' blur (Gaussian sigma, px at that
# size), sensor noise (sigma, levels of 255) and the JPEG quality of a CCTV or phone frame.
FAR_BLUR = (0.3, 1.1)
FAR_NOISE = (0.5, 4.0)
FAR_JPEG = (35, 90)


def draw_far_camera(
    rng: np.random.Generator, share: float, faces: tuple[int, int]
) -> FarCameraParams | None:
    """With probability share (nothing drawn at 0): face width (log-uniform over faces, px),
    blur, noise, JPEG quality and the noise's seed, in this order; else None."""
    if share <= 0 or rng.random() >= share:
        return None
    face = int(round(np.exp(rng.uniform(np.log(faces[0]), np.log(faces[1])))))
    blur = float(rng.uniform(*FAR_BLUR))
    noise = float(rng.uniform(*FAR_NOISE))
    jpeg = int(rng.integers(FAR_JPEG[0], FAR_JPEG[1] + 1))
    return FarCameraParams(face, blur, noise, jpeg, int(rng.integers(2**31)))


def draw_sheet_samples(seed: int, templates: Iterable) -> list[tuple[RGB, str, np.ndarray]]:
    """For a contact sheet of the templates: per template, a palette colour, a print it typically
    comes in (else any pattern) and that print's texture at the front view's size."""
    rng = np.random.default_rng(seed)
    samples = []
    for t in templates:
        color = sample_color(t, rng)
        prints = [p for p in t.patterns if p != "none"] or list(PATTERN_NAMES)
        name = prints[int(rng.integers(len(prints)))]
        samples.append(
            (color, name, make_pattern(name, t.variants["front"].rgba.shape[:2], rng, color))
        )
    return samples


def sample_rows(seed: int, n: int, count: int) -> np.ndarray:
    """`count` distinct row indices out of n, in a random order (a preview's sample)."""
    return np.random.default_rng(seed).permutation(n)[:count]
