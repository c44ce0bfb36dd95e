"""The per-image pipeline: a mask pulled off a tight frame is not written; one photo's
unexpected failure is recorded as its row."""

from __future__ import annotations

import numpy as np
import pytest

FRONTAL = "0_0_caiguoqing_0146.jpg"  # a frontal photo where HOG finds the face


@pytest.fixture(scope="module")
def faces(photo_faces) -> list[tuple[np.ndarray, object]]:
    return photo_faces()


def test_lowered_mask_outside_a_tight_photo_is_not_written(faces):
    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
    from maskforge.synth.sampling.specs import Choice

    rgb, face = faces[1]
    # Cut the photo just under the lower lip: a mask pulled under the chin falls off the frame.
    bottom = int(face.landmarks[57, 1] + 0.15 * (face.landmarks[8, 1] - face.landmarks[57, 1]))
    tight = np.ascontiguousarray(rgb[:bottom])
    given = [face.box]
    chin = SynthesisOptions(
        mask_types=Choice(("surgical",), (1.0,)), wear=Choice(("chin",), (1.0,))
    )
    results = Synthesizer(chin).process(tight, "tight.jpg", given)
    assert results[0].status == "mask_off_frame" and results[0].masked is None
    assert "chin" in results[0].reason
    correct = SynthesisOptions(mask_types=Choice(("surgical",), (1.0,)))
    assert Synthesizer(correct).process(tight, "tight.jpg", given)[0].status == "ok"


def test_unexpected_failure_on_one_photo_is_recorded(unmasked_dir, tmp_path, monkeypatch):
    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer

    synth = Synthesizer(SynthesisOptions())

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(synth, "process", boom)
    rows = synth.run_file(unmasked_dir / FRONTAL, "a.jpg", tmp_path, "a")
    assert rows == [
        {
            "input": "a.jpg",
            "group": "a.jpg",
            "status": "error",
            "reason": "unexpected RuntimeError: kaboom second line",
        }
    ]


@pytest.mark.parametrize("cut", ["mouth", "eyes"])
def test_a_mouth_cut_by_the_frame_is_masked_an_eye_cut_is_not(faces, cut):
    """A close-up whose frame cuts the mouth still holds what a mask rests on (nose bridge,
    cheeks): it is masked, as real close-ups are. Cutting into the eyes leaves nothing to place
    the mask by: off_image. (Before, any eye, nose or mouth point off the photo was off_image:
    9 of ../shared/faces/unmasked's 956 tight crops.)"""
    import dataclasses

    from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
    from maskforge.synth.sampling.specs import Choice

    rgb, face = faces[0]
    lm = face.landmarks
    if cut == "mouth":  # the frame ends at the upper lip: most mouth points fall below it
        top, bottom = 0, int(lm[51, 1]) + 1
    else:  # the frame starts at the eyes' middle
        top, bottom = int(lm[36:48, 1].mean()), rgb.shape[0]
    photo = np.ascontiguousarray(rgb[top:bottom])
    left, upper, right, lower = face.box
    box = (left, upper - top, right, lower - top)
    moved = dataclasses.replace(face, landmarks=lm - [0, top], box=box)
    assert moved.points_outside(photo.shape) > 0  # eyes, nose and mouth: some are cut
    options = SynthesisOptions(mask_types=Choice(("surgical",), (1.0,)), landmarks="dlib")
    (result,) = Synthesizer(options).process(photo, "a.jpg", faces=[moved])
    if cut == "mouth":
        assert result.status == "ok", result.reason
        assert result.masked is not None and (result.masked != result.original).any()
    else:
        assert result.status == "off_image" and "eye and nose" in result.reason
