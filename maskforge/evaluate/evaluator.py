"""Evaluate a trained run on a manifest or a folder of photos: predictions, metrics, report, plots.

`evaluate_run` is what `maskforge eval` calls. It writes into `runs/NAME/eval-<name>/`:
predictions.csv, report.json, report.md, confusion.png, roc.png, pr.png, calibration.png,
mistakes.png, gradcam.png and gradcam/*.jpg. The steps live beside it: `folders` (label a
folder of photos), `inference`, `scoring`, `figures` and `markdown`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from maskforge import __version__
from maskforge.choices import DEFAULT_CHECKPOINT, DEFAULT_THRESHOLD_RULE, THRESHOLD_RULES
from maskforge.core.imageio import atomic_write_text
from maskforge.core.outputs import output_folder
from maskforge.core.parallel import check_local_workers
from maskforge.core.paths import display_path
from maskforge.dataset.manifest import read_manifest
from maskforge.evaluate.folders import folder_frame
from maskforge.evaluate.inference import face_crops, predict_frame
from maskforge.evaluate.markdown import render_markdown
from maskforge.evaluate.report_figures import write_gradcam, write_plots
from maskforge.evaluate.scoring import score_predictions, val_threshold, write_predictions
from maskforge.learn.models import CheckpointInfo
from maskforge.learn.runs import load_run_model, run_manifests_dir

Echo = Callable[[str], None]


def _quiet_echo(_: str) -> None:
    return None


@dataclass(frozen=True)
class EvalOptions:
    """What `evaluate_run` evaluates and how (the options of `maskforge eval`).

    run: a run folder or .pt checkpoint (None: the run `maskforge train` last wrote here, else
    the newest in runs/). Data: manifest, or folder with label (see `folder_frame`), not both;
    neither: the run's test manifest. crop_faces: classify the largest face's crop of each
    image, leaving out images without a face. out: the report folder (None:
    RUN/eval-<data name>). checkpoint: "best" or "last". threshold: the operating threshold on
    p(positive) for binary models (None: 0.5); the one chosen on the run's val manifest by
    threshold_rule is always reported beside it. cam: Grad-CAM overlays to draw; bootstrap:
    resamples for the 95% intervals (0: none); seed: of both. device, batch_size, workers: of
    inference.
    """

    run: Path | None = None
    manifest: Path | None = None
    folder: Path | None = None
    label: Sequence[str] | str | None = None
    crop_faces: bool = False
    out: Path | None = None
    checkpoint: str = DEFAULT_CHECKPOINT
    threshold: float | None = None
    threshold_rule: str = DEFAULT_THRESHOLD_RULE
    cam: int = 8
    bootstrap: int = 1000
    seed: int = 0
    device: str = "auto"
    batch_size: int = 64
    workers: int = 0

    def __post_init__(self) -> None:
        check_local_workers(self.workers)  # each DataLoader worker is a process with torch
        if self.manifest is not None and self.folder is not None:
            raise ValueError("Give either --manifest or --folder, not both.")
        if self.label and self.folder is None:
            raise ValueError("--label only applies with --folder.")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(
                f"Invalid threshold rule {self.threshold_rule!r}. "
                f"Only {', '.join(THRESHOLD_RULES)}."
            )
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"Invalid threshold {self.threshold}; it must be between 0 and 1.")
        if self.cam < 0 or self.bootstrap < 0:
            raise ValueError("--cam and --bootstrap must be 0 or more.")

    def reported(self) -> dict:
        """The options that shape the report's numbers, as report.json records them."""
        return {
            "checkpoint": self.checkpoint,
            "threshold_rule": self.threshold_rule,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "cam": self.cam,
        }


@dataclass
class EvalResult:
    """What `evaluate_run` produced."""

    out_dir: Path
    report: dict
    messages: list[str] = field(default_factory=list)

    @property
    def report_md(self) -> Path:
        """Path of the readable report."""
        return self.out_dir / "report.md"


def evaluate_run(options: EvalOptions, echo: Echo = _quiet_echo) -> EvalResult:
    """Evaluate a run on a manifest (default: the run's test manifest) or a folder of photos.

    Says what it used and found through echo (kept in EvalResult.messages too); writes the
    report folder named in the module docstring, held from before inference to the end
    (core.outputs.output_folder: a second command on it is refused at once).
    """
    messages: list[str] = []

    def say(text: str) -> None:
        messages.append(text)
        echo(text)

    run_dir, ckpt, model, info, dev = load_run_model(
        options.run, options.checkpoint, options.device, say
    )
    manifests_dir = run_manifests_dir(run_dir, info)
    frame, name, description = _data(options, run_dir, manifests_dir, info.classes)
    say(f"Evaluating on {description}: {len(frame)} images")
    out_dir = Path(options.out) if options.out is not None else run_dir / f"eval-{name}"
    # Held from here to the end: a second command on the report folder is refused at once.
    with output_folder(out_dir, "eval"):
        boxes, faceless, failed = None, [], []
        if options.crop_faces:
            frame, boxes, faceless, failed = face_crops(frame, say)

        probs, errors = predict_frame(
            model, info, frame, dev, options.batch_size, options.workers, boxes, "eval"
        )
        ok = np.array([not e for e in errors])
        if not ok.any():
            raise ValueError(f"None of the {len(frame)} images could be read; nothing to evaluate.")
        if (~ok).any():
            say(f"Skipped {int((~ok).sum())} unreadable image(s) (listed in predictions.csv)")

        # The threshold chosen on validation data (binary only).
        val_choice = None
        if len(info.classes) == 2:
            val_choice = val_threshold(
                model,
                info,
                manifests_dir,
                dev,
                options.batch_size,
                options.workers,
                options.threshold_rule,
                say,
            )
        operating = 0.5 if options.threshold is None else float(options.threshold)

        report = score_predictions(
            frame, probs, ok, errors, info, operating, val_choice, options.bootstrap, options.seed
        )
        report.update(_provenance(run_dir, ckpt, info))
        report["data"].update(
            description=description,
            name=name,
            crop_faces=bool(options.crop_faces),
            n_no_face=len(faceless),
            n_detection_failed=len(failed),
        )
        report["no_face"] = faceless
        report["detection_failed"] = failed
        report["options"] = options.reported()

        # A rerun replaces the previous report; drop its Grad-CAM images so none are left over.
        for stale in (out_dir / "gradcam").glob("*.jpg"):
            stale.unlink()
        write_predictions(
            out_dir / "predictions.csv", frame, probs, errors, info, operating, val_choice, boxes
        )
        confusion = report["metrics"]["operating"]["confusion_matrix"]
        files, report["mistakes"] = write_plots(
            out_dir, frame, probs, ok, info, operating, val_choice, confusion, boxes
        )
        report["files"] = files
        if options.cam > 0:
            cam_files, report["gradcam"] = write_gradcam(
                out_dir, model, info, frame, probs, ok, operating, options.cam, options.seed, boxes
            )
            files.update(cam_files)
        files["predictions"] = "predictions.csv"
        _write_report(out_dir, report)
        return EvalResult(out_dir=out_dir, report=report, messages=messages)


def _data(
    options: EvalOptions, run_dir: Path, manifests_dir: Path | None, classes: list[str]
) -> tuple[pd.DataFrame, str, str]:
    """The frame to evaluate, its name (for eval-<name>/) and a description of where it is from."""
    if options.folder is not None:
        frame, note = folder_frame(options.folder, options.label, classes)
        name = Path(os.path.abspath(options.folder)).name  # as given: a link's own name
        description = f"folder {display_path(options.folder)} ({note})"
    else:
        manifest, how = options.manifest, "given"
        if manifest is None:
            if manifests_dir is None or not (manifests_dir / "test.csv").is_file():
                raise FileNotFoundError(
                    f"No test manifest found for run {run_dir} (config.json names no existing "
                    "manifests folder with test.csv); pass --manifest or --folder."
                )
            manifest, how = manifests_dir / "test.csv", "the run's test manifest"
        frame = read_manifest(manifest)
        name, description = Path(manifest).stem, f"{display_path(manifest)} ({how})"
    return frame, re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "data", description


def _provenance(run_dir: Path, ckpt: Path, info: CheckpointInfo) -> dict:
    """Which maskforge, run, checkpoint and model made the report."""
    return {
        "maskforge_version": __version__,
        "run": display_path(run_dir),
        "checkpoint": display_path(ckpt),
        "model": {
            "arch": info.arch,
            "classes": info.classes,
            "img_size": info.img_size,
            "epoch": info.epoch,
            "mean": info.mean,
            "std": info.std,
        },
    }


def _write_report(out_dir: Path, report: dict) -> None:
    """report.json (every number) and report.md (the readable report) into out_dir."""
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=_json) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
