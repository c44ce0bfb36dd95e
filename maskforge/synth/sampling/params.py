"""What the sampler draws for one face, as plain values render/ reads: no draw happens here
except `Grain.noise`, the one draw whose size is known only while rendering.

Field order and meaning are part of the synthesis.csv contract (FaceParams) and of a seed's
reproducibility: a seed gives the same parameters in any process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]


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


@dataclass(frozen=True)
class FramingParams:
    """How one output is cut from the photo (framing.frame_box turns it into a rectangle)."""

    name: str  # a choices.FRAMINGS name
    zoom: float = 1.0  # closeup / wide: the frame's side over the face box's
    cut: str = ""  # closeup: "chin" or "forehead", the edge the frame cuts into
    depth: float = 0.0  # closeup: how deep that cut goes, 0..1 (framing.py scales it)
    drop: float = 0.0  # wide: downward shift of the centre, in face box sides
    shift: float = 0.0  # closeup / wide: horizontal offset, standard normal, cut


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


@dataclass(frozen=True)
class FarCameraParams:
    """A pair seen by a camera far away (render.camera): the face's width in the written image,
    the optics' blur, the sensor's noise and the frame's JPEG quality, the same for every image
    of the pair (its noise comes from noise_seed, so both images get the same grain)."""

    face: int  # px: the face box's width at the camera's resolution (as written without --size)
    blur: float  # Gaussian sigma, px at that size
    noise: float  # sensor noise sigma, 0..255 levels
    jpeg: int  # JPEG quality of the camera's frame
    noise_seed: int

    def noise_field(self, shape: tuple[int, ...]) -> np.ndarray:
        """The sensor noise of the pair, float32 levels: the same field for every image."""
        return (
            np.random.default_rng(self.noise_seed).normal(0.0, self.noise, shape).astype(np.float32)
        )


class Grain:
    """The film grain of one face's overlays: noise that makes a mask no cleaner than the photo.

    Its size is the warped overlay's, known only while rendering, so the sampler hands render
    this object instead of a number: `noise` draws from the face's own stream at the moment
    render asks, in the order the other draws always had (a seed keeps its bytes), and render
    itself holds no random generator.
    """

    def __init__(self, rng: np.random.Generator):
        self._rng = rng

    def noise(self, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
        """Gaussian noise, float32, of the given shape and standard deviation (0..1 units)."""
        return self._rng.normal(0.0, sigma, size=shape).astype(np.float32)
