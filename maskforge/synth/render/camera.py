"""A pair as a camera far away sees it (`synthesize --far-camera`): brought down to a small face,
blurred by the optics, noisy like a small sensor, and JPEG-compressed like a CCTV or phone frame.

Real masked faces are mostly seen this way (street, shop and transport cameras), and a mask's
look at 20-100 px (its edges gone soft, pleats merged, colour bleeding into the skin by JPEG's
chroma subsampling) is not the look of a 150 px portrait made smaller at training time. Every
image of a pair gets the same treatment, noise field included, so the pair still differs only
by the mask.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from maskforge.synth.render.framing import resize_output
from maskforge.synth.sampling.params import FarCameraParams


def far_scale(face_width: float, params: FarCameraParams) -> float:
    """How much the pair is brought down: face_width px to params.face px, never enlarged."""
    return min(1.0, params.face / max(face_width, 1.0))


def far_camera(
    images: list[np.ndarray], face_width: float, params: FarCameraParams
) -> list[np.ndarray]:
    """The images of one pair (RGB uint8, the same size), each as the far camera sees it."""
    scale = far_scale(face_width, params)
    h, w = images[0].shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    noise = params.noise_field((size[1], size[0], 1))
    out = []
    for image in images:
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
        soft = cv2.GaussianBlur(small, (0, 0), params.blur) if params.blur > 0 else small
        # Luminance-like noise (one field on all channels), as a sensor's is mostly.
        noisy = np.clip(soft.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", noisy[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg])
        if not ok:
            raise RuntimeError("could not JPEG-encode a far-camera frame")
        out.append(np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]))
    return out


def seen_far(
    images: list[np.ndarray], face_width: float, params: FarCameraParams, size: int | None
) -> tuple[list[np.ndarray], FarCameraParams, float]:
    """A pair's images (its face face_width px wide in them) as the far camera sees them, then
    brought back to size (--size) if given; params with face set to the face's width at the
    camera's resolution; the scale applied."""
    seen = far_camera(images, face_width, params)
    scale = far_scale(face_width, params)
    if size:
        seen = [resize_output(image, size) for image in seen]
    return seen, replace(params, face=int(round(face_width * scale))), scale
