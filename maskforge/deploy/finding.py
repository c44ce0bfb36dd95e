"""Decode an image (or take a video frame) and find its faces: rows and model-ready face crops.

This is predict's per-image work that needs no model, so it runs in worker processes while the
main process classifies; `make_finder` is the worker factory core.parallel.pool_map expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
from maskforge.core.parallel import one_thread_in_workers
from maskforge.faces.boxes import find_face_boxes


@dataclass
class Found:
    """What one image or frame holds: a row per face (or one for the whole image), without the
    class yet; one crop per row to classify (status ok or whole_image), in row order; and the
    decoded image when an annotated copy is to be drawn."""

    rows: list[dict]
    crops: list[np.ndarray]
    image: np.ndarray | None = None


def fit_crop(image: np.ndarray, size: int) -> np.ndarray:
    """image resized to size x size with area interpolation: the eval transform's own resize,
    done here so that workers ship small crops (the transform's resize is then a no-op)."""
    image = np.ascontiguousarray(image)
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def face_size(box) -> int:
    """The short side of a (left, top, right, bottom) box, in pixels."""
    return int(min(box[2] - box[0], box[3] - box[1]))


def find_faces(
    rgb: np.ndarray, detector: str, min_face: int, img_size: int, no_face: str
) -> tuple[list[dict], list[np.ndarray]]:
    """Rows and crops of one RGB uint8 image (see Found)."""
    faces = find_face_boxes(rgb, detector)
    if not faces:
        if no_face == "whole":
            # The detectors miss many masked faces (the mask hides what they look for); a tight
            # face photo is what the model was trained on anyway.
            h, w = rgb.shape[:2]
            row = {
                "status": "whole_image",
                "reason": "no face found; the whole image was classified",
                "box": f"0 0 {w} {h}",
            }
            return [row], [fit_crop(rgb, img_size)]
        return [{"status": "no_face", "reason": "no face found"}], []
    rows, crops = [], []
    for k, face in enumerate(faces):
        row = {
            "face": k,
            "box": " ".join(str(v) for v in face["box"]),
            "detector": face["detector"],
        }
        if face_size(face["box"]) >= min_face:
            left, top, right, bottom = face["crop"]
            row["status"] = "ok"
            crops.append(fit_crop(rgb[max(top, 0) : bottom, max(left, 0) : right], img_size))
        else:
            row["status"] = "too_small"
            row["reason"] = f"face is {face_size(face['box'])} px, below --min-face {min_face}"
        rows.append(row)
    return rows, crops


def make_finder(detector: str, min_face: int, img_size: int, no_face: str, keep_image: bool):
    """Worker factory: task (key, path or RGB frame) -> (key, Found)."""
    one_thread_in_workers()

    def run(task: tuple) -> tuple:
        key, payload = task
        if payload is None:  # a marker (the end of a video): nothing to find
            return key, Found([], [])
        if isinstance(payload, np.ndarray):
            rgb = payload
        else:
            try:
                rgb = read_image(Path(payload))
            except (UnreadableImageError, ImageTooLargeError) as exc:
                return key, Found([{"status": "unreadable", "reason": str(exc)}], [])
        rows, crops = find_faces(rgb, detector, min_face, img_size, no_face)
        return key, Found(rows, crops, rgb if keep_image else None)

    return run
