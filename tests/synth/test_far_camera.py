"""--far-camera: a pair seen by a far camera shares size, blur, noise and JPEG; seeds repeat."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskforge.synth.render.camera import far_camera, far_scale
from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
from maskforge.synth.sampling.draws import FaceSampler, draw_far_camera
from maskforge.synth.sampling.params import FarCameraParams
from maskforge.synth.sampling.specs import Choice, parse_size_range

SURGICAL = Choice(("surgical",), (1.0,))


def _high_pass(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return gray - cv2.GaussianBlur(gray, (0, 0), 2.0)


def test_far_camera_brings_both_images_down_with_one_noise_field():
    rng = np.random.default_rng(1)
    # A smooth picture (no texture of its own), so that what is left after a high-pass is the
    # camera's noise and JPEG blocks.
    ramp = np.linspace(60, 200, 240, dtype=np.float32)
    a = np.dstack([np.add.outer(ramp, ramp) / 2] * 3).astype(np.uint8)
    b = a.copy()
    b[150:, 60:180] = (120, 170, 210)  # the "mask" region differs
    params = FarCameraParams(face=40, blur=0.6, noise=4.0, jpeg=60, noise_seed=7)
    out_a, out_b = far_camera([a, b], face_width=120.0, params=params)
    assert out_a.shape == out_b.shape == (80, 80, 3)  # 240 * 40 / 120
    top_a, top_b = _high_pass(out_a)[5:40, 5:75], _high_pass(out_b)[5:40, 5:75]
    assert np.abs(out_a[:40].astype(int) - out_b[:40].astype(int)).mean() < 1.5
    assert np.corrcoef(top_a.ravel(), top_b.ravel())[0, 1] > 0.9  # the same grain on both
    other = far_camera([a], 120.0, FarCameraParams(40, 0.6, 4.0, 60, noise_seed=8))[0]
    assert np.corrcoef(top_a.ravel(), _high_pass(other)[5:40, 5:75].ravel())[0, 1] < 0.5
    assert np.array_equal(far_camera([a], 120.0, params)[0], out_a)  # deterministic
    assert rng is not None


def test_far_camera_never_enlarges_a_small_face():
    params = FarCameraParams(face=60, blur=0.5, noise=1.0, jpeg=80, noise_seed=0)
    assert far_scale(30.0, params) == 1.0
    image = np.full((50, 50, 3), 128, np.uint8)
    assert far_camera([image], 30.0, params)[0].shape == (50, 50, 3)


def test_draws_are_within_range_and_nothing_is_drawn_at_zero_share():
    drawn = [draw_far_camera(np.random.default_rng(s), 1.0, (20, 100)) for s in range(200)]
    faces = [d.face for d in drawn]
    assert min(faces) >= 20 and max(faces) <= 100
    assert 38 < np.median(faces) < 52  # log-uniform: as many faces under 45 px as over
    rng = np.random.default_rng(3)
    assert draw_far_camera(rng, 0.0, (20, 100)) is None
    assert rng.random() == np.random.default_rng(3).random()  # the stream did not move
    share = np.mean(
        [draw_far_camera(np.random.default_rng(s), 0.3, (20, 100)) is not None for s in range(400)]
    )
    assert 0.24 < share < 0.36
    assert FaceSampler(5).far_camera(1.0, (30, 30)).face == 30
    assert FaceSampler(5).far_camera(1.0, (20, 100)) == FaceSampler(5).far_camera(1.0, (20, 100))


@pytest.mark.parametrize(
    "spec, expected", [("20-100", (20, 100)), ("32", (32, 32)), (" 16 - 64 ", (16, 64))]
)
def test_size_ranges_parse(spec, expected):
    assert parse_size_range(spec) == expected


@pytest.mark.parametrize("spec", ["100-20", "4-20", "20-2000", "a-b", "1-2-3", ""])
def test_bad_size_ranges_are_refused_in_words(spec):
    with pytest.raises(ValueError, match="MIN-MAX pixels"):
        parse_size_range(spec)


@pytest.mark.parametrize("size", [None, 96])
def test_a_pair_is_written_as_the_far_camera_sees_it(unmasked_dir, tmp_path, size):
    options = SynthesisOptions(mask_types=SURGICAL, far_camera=1.0, landmarks="dlib", size=size)
    synth = Synthesizer(options)
    rows = synth.run_file(unmasked_dir / "120.jpg", "120.jpg", tmp_path, "120")
    (row,) = [r for r in rows if r["status"] == "ok"]
    masked = cv2.imread(str(tmp_path / row["output"]))
    plain = cv2.imread(str(tmp_path / row["original"]))
    assert masked.shape == plain.shape
    left, _, right, _ = (int(v) for v in row["box"].split())
    frame = [int(v) for v in row["frame"].split()]
    if size is None:
        # The recorded face width is the face box's width in the written image.
        written = (right - left) * masked.shape[1] / (frame[2] - frame[0])
        assert abs(written - row["far_face"]) <= 1
        assert masked.shape[1] < frame[2] - frame[0]
    else:
        assert masked.shape[:2] == (size, size)
    assert 20 <= row["far_face"] <= 100 and 35 <= row["far_jpeg"] <= 90
    # The pair differs by the mask only: above the nose they agree (noise and JPEG shared).
    top = masked.shape[0] // 4
    diff = np.abs(masked[:top].astype(int) - plain[:top].astype(int)).mean()
    assert diff < 2.5, diff
    again = tmp_path / "again"
    rows_again = synth.run_file(unmasked_dir / "120.jpg", "120.jpg", again, "120")
    assert rows_again == rows
    assert (again / row["output"]).read_bytes() == (tmp_path / row["output"]).read_bytes()


def test_off_by_default_and_recorded_only_when_drawn(unmasked_dir, tmp_path):
    synth = Synthesizer(SynthesisOptions(mask_types=SURGICAL, landmarks="dlib"))
    (row,) = [r for r in synth.run_file(unmasked_dir / "120.jpg", "a.jpg", tmp_path, "a")]
    assert "far_face" not in row
    assert cv2.imread(str(tmp_path / row["output"])).shape[1] > 100


def test_a_full_frame_records_the_one_camera_it_was_seen_by_for_every_face(photo_faces):
    ((rgb, face),) = photo_faces(["120.jpg"])
    two = np.hstack([rgb, rgb])  # the same face twice, side by side
    left = tuple(int(v) for v in face.box)
    right = (left[0] + rgb.shape[1], left[1], left[2] + rgb.shape[1], left[3])
    full = Choice(("full",), (1.0,))
    options = SynthesisOptions(mask_types=SURGICAL, framing=full, far_camera=1.0, landmarks="dlib")
    for key in ("a.jpg", "b.jpg"):
        first, second = _process_two(options, two, key, [left, right])
        # One image: the second face was seen by the first face's camera, at its own width.
        assert (second.far.blur, second.far.jpeg) == (first.far.blur, first.far.jpeg)
        assert abs(second.far.face - first.far.face) <= 2
        assert first.masked.shape[1] < two.shape[1]


def _process_two(options, rgb, key, boxes):
    results = Synthesizer(options).process(rgb, key, boxes)
    assert [r.status for r in results] == ["ok", "ok"], [r.reason for r in results]
    return results
