"""Which images the Grad-CAM gallery shows, and the thumbnails and captions of the galleries."""

from __future__ import annotations

import numpy as np

from maskforge.evaluate.report_figures import _short, _thumb, cam_sample

# Rows 0, 1 and 7 are mistakes, rows 2-5 correct (two of each class), row 6 unreadable.
OK = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
CORRECT = np.array([0, 0, 1, 1, 1, 1, 0, 0], bool)
CONF = np.array([0.6, 0.9, 0.7, 0.8, 0.95, 0.55, 0.0, 0.8])
Y_TRUE = np.array([1, 0, 0, 0, 1, 1, 0, 1])


def test_cam_sample_mistakes_first_by_confidence_then_every_class():
    wrong, right = cam_sample(OK, CORRECT, CONF, Y_TRUE, 4, seed=0)
    assert list(wrong) == [1, 7]  # the two most confident of the three mistakes
    assert len(right) == 2 and {int(Y_TRUE[i]) for i in right} == {0, 1}
    assert right.dtype == np.int64 and set(right) <= {2, 3, 4, 5}
    again = cam_sample(OK, CORRECT, CONF, Y_TRUE, 4, seed=0)
    assert list(again[0]) == list(wrong) and list(again[1]) == list(right)


def test_cam_sample_sizes():
    wrong, right = cam_sample(OK, CORRECT, CONF, Y_TRUE, 1, seed=0)
    assert list(wrong) == [1] and len(right) == 0
    wrong, right = cam_sample(OK, CORRECT, CONF, Y_TRUE, 0, seed=0)
    assert len(wrong) == 0 and len(right) == 0
    wrong, right = cam_sample(OK, CORRECT, CONF, Y_TRUE, 20, seed=3)
    assert list(wrong) == [1, 7, 0] and sorted(right) == [2, 3, 4, 5]  # all there is
    none_wrong = cam_sample(OK, OK, CONF, Y_TRUE, 3, seed=0)
    assert len(none_wrong[0]) == 0 and len(none_wrong[1]) == 3


def test_thumb_fits_the_longer_side():
    image = np.zeros((300, 150, 3), np.uint8)
    assert _thumb(image).shape == (128, 64, 3)
    assert _thumb(np.zeros((10, 40, 3), np.uint8), 160).shape == (40, 160, 3)


def test_short_keeps_the_file_name_within_n_characters():
    assert _short("a/b/face.jpg") == "face.jpg"
    long = _short("x/" + "n" * 30 + ".jpg")
    assert len(long) == 24 and long.endswith("…")
