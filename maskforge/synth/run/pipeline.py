"""Per-image pipeline: faces -> checks -> random choices -> warp, light-match, blend -> crops.

`Synthesizer.run_file` turns one input photo into output files and synthesis.csv rows; the batch
runner (runner.py) only schedules it. Per face, the sampler (sampling/draws.py) draws every
choice and render/overlays.py composites from them; `mask_face` (api.py) does the same for a
user's own image.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from maskforge.choices import (
    DEFAULT_DETECTOR,
    DEFAULT_LANDMARKS,
    DEFAULT_PATTERNS,
    DEFAULT_RENDERER,
    FAR_CAMERA,
    FAR_FACES,
    FRAMINGS,
    LANDMARK_MODELS,
    MASKS_PER_FACE,
    RENDERERS,
    WEAR_STYLES,
)
from maskforge.core.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    UnreadableImageError,
    read_image,
    write_image,
)
from maskforge.core.outputs import is_storage_fault
from maskforge.core.paths import fit_stem, printable
from maskforge.faces import geometry
from maskforge.faces.cascade import (
    MASK_POINTS,
    MAX_FLIP_ERROR,
    MAX_RESIDUAL,
    Face,
    FaceFinder,
    check_detector,
    largest_first,
)
from maskforge.synth.render import camera, compose, framing, hands, overlays
from maskforge.synth.render.surface import mesh_from_68
from maskforge.synth.run.stems import mask_draw_suffix
from maskforge.synth.sampling.draws import FaceSampler
from maskforge.synth.sampling.params import FaceParams, FarCameraParams, FramingParams
from maskforge.synth.sampling.specs import Choice, draw_key, face_seed, parse_choice

# Prevalence-like default mix: surgical masks dominate real photos, respirators are rarer.
# Below this share of the written crop covered by the mask, the output is not written.
MIN_VISIBLE_MASK = 0.04
# `--wear random`: half the faces wear the mask correctly, so the masked and incorrect classes
# come out the same size.
RANDOM_WEAR = {"correct": 2.0, "nose_out": 1.0, "chin": 1.0}
DEFAULT_MASK_MIX = {
    "surgical": 4.0,
    "cloth": 3.0,
    "kn95": 1.5,
    "n95": 0.7,
    "n95_valve": 0.4,
    "gas": 0.4,
    # Coverings worn as masks: black foam sports masks are common in real street photos.
    "gaiter": 1.0,
    "bandana": 0.6,
    "sports": 1.5,
}


def default_mask_mix() -> dict[str, float]:
    """What `--mask-type random` means: DEFAULT_MASK_MIX over the installed templates (others 1)."""
    from maskforge.synth.render.templates import load_templates

    return {name: DEFAULT_MASK_MIX.get(name, 1.0) for name in load_templates()}


def every_pattern() -> dict[str, float]:
    """What `--pattern random` means: every procedural pattern, equally likely."""
    from maskforge.synth.sampling.patterns import PATTERN_NAMES

    return dict.fromkeys(PATTERN_NAMES, 1.0)


# SynthesisOptions' defaults for mask_types and patterns, parsed as the CLI parses its own
# (`random` over default_mask_mix, and choices.DEFAULT_PATTERNS), so that the library and
# `maskforge synthesize` draw the same by default.


def default_mask_types() -> Choice:
    """`--mask-type random`: the realistic mix (default_mask_mix)."""
    return parse_choice("random", None, "mask type", default_mask_mix())


def default_patterns() -> Choice:
    """choices.DEFAULT_PATTERNS: half of the masks plain, a sixth with a novelty print."""
    return parse_choice(DEFAULT_PATTERNS, None, "pattern", every_pattern())


@dataclass(frozen=True)
class SynthesisOptions:
    """Everything that decides what synthesize writes (recorded in out/run.json)."""

    seed: int = 0
    # The CLI's defaults: the realistic mix of mask types, half of them patterned.
    mask_types: Choice = field(default_factory=default_mask_types)
    colors: Choice | None = None  # None: each template's own realistic palette
    patterns: Choice = field(default_factory=default_patterns)
    pattern_weight: float = 0.7
    wear: Choice = Choice(("correct",), (1.0,))
    negatives: Choice | None = None
    negative_rate: float = 0.0
    finish: compose.Finish = field(default_factory=compose.Finish)
    margin: float = geometry.CROP_MARGIN
    size: int | None = None
    framing: Choice = Choice(("crop",), (1.0,))
    hands_near_mask: float = 0.0
    far_camera: float = FAR_CAMERA
    far_faces: tuple[int, int] = FAR_FACES
    masks_per_face: int = MASKS_PER_FACE
    max_faces: int | None = None
    min_face: int = 40
    max_yaw: float = 60.0
    max_residual: float = MAX_RESIDUAL
    variant_yaw: float = 30.0
    landmarks: str = DEFAULT_LANDMARKS
    renderer: str = DEFAULT_RENDERER
    out_format: str = ".jpg"
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        """Refuse values no run could use, naming the value and what is allowed. What needs the
        installed templates (mask types, pattern files, occluder kinds) Synthesizer checks."""
        _check_among("renderer", self.renderer, RENDERERS)
        _check_among("landmarks", self.landmarks, LANDMARK_MODELS)
        _check_among("output format", self.out_format, (".jpg", ".png"))
        for name in self.wear.options:
            _check_among("wear style", name, WEAR_STYLES)
        for name in self.framing.options:
            _check_among("framing", name, FRAMINGS)
        for name, value, low, high in (
            ("pattern_weight", self.pattern_weight, 0.0, 1.0),
            ("negative_rate", self.negative_rate, 0.0, 1.0),
            ("hands_near_mask", self.hands_near_mask, 0.0, 1.0),
            ("far_camera", self.far_camera, 0.0, 1.0),
            ("max_yaw", self.max_yaw, 0.0, 90.0),
            ("margin", self.margin, 0.0, float("inf")),
            ("max_residual", self.max_residual, 0.0, float("inf")),
            ("quality", self.quality, 1, 100),
            ("masks_per_face", self.masks_per_face, 1, float("inf")),
            ("min_face", self.min_face, 1, float("inf")),
            ("max_pixels", self.max_pixels, 1, float("inf")),
        ):
            if not low <= value <= high:
                raise ValueError(f"Invalid {name} {value!r}: must be within {low}..{high}.")
        low, high = self.far_faces
        if not 8 <= low <= high <= 1000:
            raise ValueError(
                f"Invalid far_faces {self.far_faces!r}: must be 8 <= MIN <= MAX <= 1000."
            )
        for name, value, low in (("size", self.size, 16), ("max_faces", self.max_faces, 1)):
            if value is not None and value < low:
                raise ValueError(f"Invalid {name} {value!r}: must be at least {low}.")

    def describe(self) -> dict:
        """Plain-value summary (for run.json and the console)."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Choice):
                value = str(value)
            elif isinstance(value, compose.Finish):
                value = dict(value.__dict__)
            elif isinstance(value, tuple):
                value = list(value)  # as run.json reads back, so that a resume compares equal
            out[key] = value
        return out


def _check_among(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Invalid {what} {value!r}. Only {', '.join(allowed)} are supported.")


@dataclass
class FaceResult:
    """What happened to one face: status, choices, and the images to write."""

    index: int
    face: Face | None
    status: str = "ok"
    reason: str = ""
    yaw: float | None = None
    params: FaceParams | None = None
    masked: np.ndarray | None = None
    original: np.ndarray | None = None
    negative: np.ndarray | None = None
    framing: FramingParams | None = None
    frame: tuple[int, int, int, int] | None = None  # the rectangle of the photo it shows
    near_hand: str = ""  # the hand sprite raised beside the mask, if any
    far: FarCameraParams | None = None  # seen by a far camera (--far-camera), if drawn


class Synthesizer:
    """Per-process state for synthesis: detector, landmark model and templates, loaded once."""

    def __init__(
        self,
        options: SynthesisOptions,
        detector: str = DEFAULT_DETECTOR,
        landmarks_model: Path | None = None,
        cnn_model: Path | None = None,
        templates_root: Path | None = None,
        load_models: bool = True,
    ):
        """load_models=False: check the detector and model files but do not load them (a
        driver that only validates options before its workers load their own)."""
        from maskforge.synth.render.templates import load_occluders, load_templates

        self.options = options
        if load_models:
            self.finder = FaceFinder(
                detector,
                landmarks_model,
                cnn_model,
                max_residual=options.max_residual,
                landmarks=options.landmarks,
            )
        else:
            check_detector(detector, landmarks_model, cnn_model, options.landmarks)
        self.templates = load_templates(templates_root)
        unknown = [m for m in options.mask_types.options if m not in self.templates]
        if unknown:
            raise ValueError(
                f"Unknown mask type(s) {unknown}. Available: {', '.join(self.templates)}."
            )
        from maskforge.synth.sampling.patterns import PATTERN_NAMES

        bad = [
            p
            for p in options.patterns.options
            if p not in (*PATTERN_NAMES, "none") and not Path(p).is_file()
        ]
        if bad:
            raise ValueError(
                f"Unknown pattern(s) {bad}: not a pattern name ({', '.join(PATTERN_NAMES)}, none) "
                "nor an image file."
            )
        self.occluders = {}
        negatives = options.negatives is not None and options.negative_rate > 0
        if negatives or options.hands_near_mask > 0:
            self.occluders = load_occluders(templates_root)
        self.occluder_kinds = {n: o.kind for n, o in self.occluders.items()}
        self.hands = sorted(n for n, o in self.occluders.items() if o.kind == "hand")
        if options.hands_near_mask > 0 and not self.hands:
            raise ValueError("--hands-near-mask needs a hand occluder; the templates have none.")
        if negatives:
            kinds = {o.kind for o in self.occluders.values()}
            missing = [k for k in options.negatives.options if k not in kinds]
            if missing:
                raise ValueError(
                    f"No occluders of kind {missing}. Available: {', '.join(sorted(kinds))}."
                )

    # -- one image -------------------------------------------------------------------------

    def process(
        self,
        rgb: np.ndarray,
        key: str,
        given: list | None = None,
        draw: int = 0,
        faces: list[Face] | None = None,
    ) -> list[FaceResult]:
        """Find, check and mask every face of an RGB image; `key` seeds the random choices.

        given: user-supplied faces, each a box (l, t, r, b) or a (68, 2) landmark array.
        draw: which of `masks_per_face` masks to draw (0: the one a single-mask run draws);
        faces: the image's faces when already found (the later draws of one photo).
        """
        opts = self.options
        faces = self._faces(rgb, given) if faces is None else faces
        results = []
        for i, face in enumerate(faces):
            result = FaceResult(i, face)
            if opts.max_faces is not None and i >= opts.max_faces:
                result.status, result.reason = "skipped", f"over --max-faces {opts.max_faces}"
            else:
                self._check(rgb, face, result)
            results.append(result)
        ok = [r for r in results if r.status == "ok"]
        if not ok:
            return results
        masked, negative, plain = rgb, rgb, rgb
        wear, full = None, None  # full: whether this photo is written whole (its first face's draw)
        for r in ok:
            seed = face_seed(opts.seed, draw_key(key, draw), r.index)
            sampler = FaceSampler(seed)
            lm, template = r.face.landmarks, self.templates[sampler.mask_type(opts.mask_types)]
            # Side views are chosen by the yaw the 68 points suggest (their threshold was set on
            # it); a mesh-rendered mask is always the front view laid on the face.
            variant = (
                "front"
                if opts.renderer == "mesh"
                else geometry.choose_variant(geometry.estimate_yaw(lm), opts.variant_yaw)
            )
            r.params = sampler.params(template, opts, variant, wear, self.occluder_kinds, seed)
            base = masked if full else rgb
            posed = None
            if opts.renderer == "mesh":
                posed = r.face.mesh if r.face.mesh is not None else mesh_from_68(lm)
            look = sampler.look(template, r.params, overlays.mask_shape(lm, template, r.params))
            face_masked, alpha = overlays.apply_mask(
                base, lm, template, r.params, look, opts.finish, sampler.grain, True, posed
            )
            face_negative = None
            if r.params.negative is not None:
                # Drawn after the mask's grain: one face's generator is used in this order.
                occluder = self.occluders[r.params.negative]
                face_negative = overlays.apply_occluder(
                    negative if full else rgb,
                    lm,
                    occluder,
                    sampler.occluder(occluder),
                    opts.finish,
                    sampler.grain,
                )
            # The framing and a hand near the mask come last, so the draws above never moved.
            r.framing = sampler.framing(opts.framing, full, r.params.wear)
            near = sampler.near_hand(self.hands, opts.hands_near_mask)
            if full is None:
                full = r.framing.name == "full"
                wear = r.params.wear if full else None  # one class per full-frame image
            crop = geometry.square_crop(r.face.box, rgb.shape, opts.margin)
            r.frame = framing.frame_box(r.framing, r.face.box, lm, rgb.shape, opts.margin)
            x0, y0, x1, y1 = framing.check_box(r.framing, r.frame, crop)
            visible = float(alpha[y0:y1, x0:x1].mean())
            if visible < MIN_VISIBLE_MASK:
                # A mask pulled under the chin of a tight crop falls out of the frame: the image
                # would be an unmasked face labelled "incorrect".
                r.status = "mask_off_frame"
                r.reason = (
                    f"only {100 * visible:.1f}% of the face crop shows the mask "
                    f"(wear {r.params.wear}); the photo ends too close to the chin"
                )
                continue
            face_plain = plain if full else rgb
            if near is not None:
                hand = self.occluders[near.occluder]
                overlay = hands.near_hand_overlay(
                    rgb, lm, hand, near, alpha, r.frame, opts.finish, sampler.grain
                )
                if overlay is not None:
                    # On both images of the pair: they still differ only by the mask.
                    r.near_hand = near.occluder
                    face_masked = compose.blend(face_masked, *overlay)
                    face_plain = compose.blend(face_plain, *overlay)
            # The last draw of all: a new draw goes after the others (sampling.draws).
            r.far = sampler.far_camera(opts.far_camera, opts.far_faces)
            if full:
                masked, plain = face_masked, face_plain
                negative = face_negative if face_negative is not None else negative
            else:
                r.masked, r.original = (
                    self._crop(face_masked, r.frame),
                    self._crop(face_plain, r.frame),
                )
                r.negative = None if face_negative is None else self._crop(face_negative, r.frame)
                self._far_camera(r)
        ok = [r for r in ok if r.status == "ok"]
        if full and ok:
            whole = ok[0].frame
            ok[0].masked, ok[0].original = self._crop(masked, whole), self._crop(plain, whole)
            ok[0].negative = self._crop(negative, whole) if negative is not rgb else None
            written = ok[0].masked.shape[1] / (whole[2] - whole[0])  # before the far camera
            scale = self._far_camera(ok[0])
            for r in ok[1:]:  # one image: its faces' rows record the camera it was seen by
                width = (r.face.box[2] - r.face.box[0]) * written * scale
                r.far = None if ok[0].far is None else replace(ok[0].far, face=round(width))
        return results

    def _far_camera(self, r: FaceResult) -> float:
        """r's images as its far camera sees them (r.far, if drawn; the same for the pair), then
        brought back to --size if one is set; r.far.face becomes the face's width in the
        camera's frame (as written without --size). The scale applied (1: none)."""
        if r.far is None:
            return 1.0
        images = [r.masked, r.original] + ([r.negative] if r.negative is not None else [])
        # The face box's width in the output (the frame was resized to --size, if set).
        width = (r.face.box[2] - r.face.box[0]) * images[0].shape[1] / (r.frame[2] - r.frame[0])
        seen, r.far, scale = camera.seen_far(images, width, r.far, self.options.size)
        r.masked, r.original = seen[0], seen[1]
        r.negative = seen[2] if r.negative is not None else None
        return scale

    def _faces(self, rgb: np.ndarray, given: list | None) -> list[Face]:
        if given is None:
            return self.finder.find(rgb)
        faces = []
        for item in given:
            item = np.asarray(item, dtype=np.float64)
            if item.shape == (68, 2):
                box = tuple(int(round(v)) for v in geometry.box_from_landmarks(item))
                faces.append(Face(box, item, "boxes", 1.0, residual=geometry.shape_residual(item)))
            else:
                faces.append(self.finder.from_box(rgb, tuple(item)))
        return largest_first(faces)

    def _check(self, rgb: np.ndarray, face: Face, result: FaceResult) -> None:
        opts = self.options
        lm = face.landmarks
        iod = geometry.interocular(lm)
        outside = face.points_outside(rgb.shape, MASK_POINTS)
        # A box where MediaPipe found no face carries no landmarks (residual inf).
        missing_mesh = face.mesh is None and not np.isfinite(face.residual)
        if face.width < opts.min_face:
            result.status, result.reason = (
                "too_small",
                f"face {face.width} px wide, under --min-face {opts.min_face}",
            )
        elif missing_mesh:
            result.status = "implausible"
            result.reason = "the MediaPipe landmark model found no face in the detected box"
        elif outside:
            result.status, result.reason = (
                "off_image",
                f"{outside} of the eye and nose landmarks fall outside the photo",
            )
        elif iod < 0.15 * face.width:
            result.status, result.reason = (
                "implausible",
                f"eyes {iod:.0f} px apart in a {face.width} px face",
            )
        elif face.residual > face.residual_limit(opts.max_residual):
            result.status = "implausible"
            result.reason = (
                f"landmark shape residual {face.residual:.3f} over "
                f"{face.residual_limit(opts.max_residual):g} (not a face, or a bad fit)"
            )
        elif face.flip_error > MAX_FLIP_ERROR:
            result.status = "implausible"
            result.reason = (
                f"landmarks move {face.flip_error:.2f} eye distances when the photo is mirrored "
                f"(over {MAX_FLIP_ERROR}: an unstable, likely misplaced fit)"
            )
        else:
            # MediaPipe's pose is the head's real turn; the 68-point estimate exaggerates it.
            result.yaw = face.pose[0] if face.pose is not None else geometry.estimate_yaw(lm)
            if abs(result.yaw) > opts.max_yaw:
                result.status, result.reason = (
                    "extreme_yaw",
                    f"head turned {result.yaw:.0f} degrees, over --max-yaw {opts.max_yaw:g}",
                )

    def _crop(self, image: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = crop
        return framing.resize_output(image[y0:y1, x0:x1], self.options.size)

    # -- one file ----------------------------------------------------------------------------

    def run_file(
        self, path: Path, rel: str, out_root: Path, stem: str, given: list | None = None
    ) -> list[dict]:
        """Process one photo: write its outputs under out_root, return its synthesis.csv rows.

        rel: the photo's path relative to the input root (the group key and seed key);
        stem: output name without extension, relative to out/<class>/ (e.g. "sub/photo").
        """
        opts = self.options
        # A name that is not valid UTF-8 is recorded (and its outputs named) with \xNN escapes.
        rel, stem = printable(rel), printable(stem)
        base = {"input": rel, "group": rel}
        try:
            rgb = read_image(Path(path), opts.max_pixels)
        except ImageTooLargeError as exc:
            return [{**base, "status": "too_large", "reason": str(exc)}]
        except (UnreadableImageError, OSError) as exc:
            return [{**base, "status": "unreadable", "reason": str(exc)}]
        try:
            faces = self._faces(rgb, given)
            results = self.process(rgb, rel, given, 0, faces)
        except Exception as exc:  # noqa: BLE001 - one photo must never stop a batch
            return [{**base, "status": "error", "reason": _unexpected(exc)}]
        if not results:
            return [{**base, "status": "no_face", "reason": "no face found"}]
        draws = opts.masks_per_face
        # Output names must fit the file system's limit with the longest suffix added.
        longest = f"{mask_draw_suffix(draws - 1)}_{len(results)}_neg{opts.out_format}"
        stem = fit_stem(stem, reserve=len(longest))
        rows: list[dict] = []
        written: list[Path] = []  # removed again if the photo fails: no file without a row
        for draw in range(draws):
            if draw:
                try:
                    results = self.process(rgb, rel, given, draw, faces)
                except Exception as exc:  # noqa: BLE001 - one photo must never stop a batch
                    _remove(written)
                    return [{**base, "status": "error", "reason": _unexpected(exc)}]
            draw_rows = [self._row(base, r, draw) for r in results]
            try:
                self._write_outputs(
                    [r for r in results if r.status == "ok"],
                    draw_rows,
                    out_root,
                    stem + mask_draw_suffix(draw),
                    written,
                )
            except OSError as exc:
                _remove(written)
                if is_storage_fault(exc):
                    raise  # out/ is full or read-only: every photo after this one would fail too
                reason = f"cannot write outputs: {exc.strerror or exc}"
                return [{**base, "status": "error", "reason": reason}]
            # A later draw re-lists only the faces it masked: the others' rows say it once.
            rows += [row for row, r in zip(draw_rows, results) if not draw or r.params is not None]
        return rows

    def _row(self, base: dict, r: FaceResult, draw: int) -> dict:
        """The synthesis.csv row of one face of one draw (its file columns filled on writing)."""
        row = {**base, "face": r.index, "status": r.status, "reason": r.reason, "mask_draw": draw}
        if r.face is not None:
            row["detector"] = r.face.detector
            row["box"] = " ".join(str(v) for v in r.face.box)
        if r.yaw is not None:
            row["yaw"] = round(r.yaw, 1)
        if r.params is not None:
            p = r.params
            row.update(
                label=p.label,
                variant=p.variant,
                mask_type=p.mask_type,
                color=p.color_hex,
                pattern=p.pattern or "",
                wear=p.wear,
                negative_kind=self._kind(p.negative),
                seed=p.seed,
            )
        if r.framing is not None:
            row.update(
                framing=r.framing.name,
                frame=" ".join(str(v) for v in r.frame),
                near_hand=r.near_hand,
            )
        if r.far is not None:
            row.update(
                far_face=r.far.face,
                far_blur=round(r.far.blur, 2),
                far_noise=round(r.far.noise, 2),
                far_jpeg=r.far.jpeg,
            )
        return row

    def _write_outputs(
        self, ok: list[FaceResult], rows: list[dict], out_root: Path, stem: str, written: list
    ) -> None:
        """Write the images of the ok faces, fill in their rows' file columns, and append each
        file written to `written`."""
        opts = self.options
        ext = opts.out_format
        whole = bool(ok) and ok[0].framing.name == "full"  # one image for the photo's faces
        for r in ok:
            suffix = "" if whole else f"_{r.index}"
            row = rows[r.index]
            if whole and r is not ok[0]:
                row.update(
                    output=rows[ok[0].index]["output"],
                    original=rows[ok[0].index]["original"],
                    negative=rows[ok[0].index].get("negative", ""),
                )
                continue
            folder = "masked" if r.params.label == "masked" else "incorrect"
            row["output"] = f"{folder}/{stem}{suffix}{ext}"
            row["original"] = f"unmasked/{stem}{suffix}{ext}"
            images = [(row["output"], r.masked), (row["original"], r.original)]
            if r.negative is not None:
                row["negative"] = f"unmasked/{stem}{suffix}_neg{ext}"
                images.append((row["negative"], r.negative))
            for name, image in images:
                write_image(out_root / name, image, opts.quality)
                written.append(out_root / name)

    def _kind(self, occluder: str | None) -> str:
        return "" if occluder is None else self.occluders[occluder].kind


def _remove(paths: list[Path]) -> None:
    """Delete the files a failed photo wrote (best effort: out/ may have turned read-only)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _unexpected(exc: Exception) -> str:
    """The reason of an error row for an exception no stage expected (one line, bounded)."""
    return f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
