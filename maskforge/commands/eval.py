"""`maskforge eval`: metrics, plots and Grad-CAM for a trained run."""

from __future__ import annotations

import click

from maskforge import choices
from maskforge.commands.options import (
    batch_size_option,
    checkpoint_option,
    choice_option,
    command,
    device_option,
    file_option,
    flag_option,
    folder_option,
    int_option,
    run_argument,
    section,
    seed_option,
    threshold_option,
    workers_option,
)


@command("eval")
@run_argument
@section(
    "Data",
    file_option(
        "--manifest",
        exists=True,
        help="Manifest CSV to evaluate on.  [default: the run's own test manifest]",
    ),
    folder_option(
        "--folder",
        exists=True,
        help="Evaluate a folder of photos instead: all of one class with --label, or with one "
        "subfolder per class (named like the model's classes).",
    ),
    click.option(
        "--label",
        multiple=True,
        help="With --folder: CLASS gives all its images that class (e.g. masked); "
        "SUBFOLDER=CLASS, repeatable, labels each named subfolder (e.g. --label "
        "masked_real=masked --label unmasked=unmasked). Without it, subfolders named like the "
        "classes are used.",
    ),
    flag_option(
        "--crop-faces",
        help="Detect the largest face in each --folder/--manifest image and classify its crop "
        "(the same crop synthesize writes); use for whole photos. Images without a face are "
        "left out.",
    ),
)
@section(
    "Model and threshold",
    checkpoint_option("evaluate"),
    threshold_option(
        "Operating threshold on p(positive class) for two-class models; used for the "
        "confusion matrix, subgroups and galleries.  [default: 0.5]"
    ),
    choice_option(
        "--threshold-rule",
        among=choices.THRESHOLD_RULES,
        default=choices.DEFAULT_THRESHOLD_RULE,
        help="How the threshold reported beside the operating one is chosen on the run's val "
        "manifest: youden = max sensitivity + specificity - 1, f1 = max F1 of the positive "
        "class.",
    ),
)
@section(
    "Report",
    folder_option("--out", help="Report folder.  [default: RUN/eval-<manifest or folder name>]"),
    int_option(
        "--cam",
        low=0,
        default=8,
        help="Grad-CAM overlays to draw (half the most confident mistakes, half correct); "
        "0 = none.",
    ),
    int_option(
        "--bootstrap",
        low=0,
        default=1000,
        help="Bootstrap resamples for the 95% confidence intervals; 0 = no intervals.",
    ),
    seed_option("Seed of the bootstrap and of the Grad-CAM sample."),
)
@section(
    "Hardware",
    device_option,
    batch_size_option("Images per forward pass.", default=64),
    workers_option(
        "DataLoader worker processes reading images (0 = in the main process; at most 4 per core).",
        low=0,
        default=0,
    ),
)
def eval_command(**options) -> None:
    """Evaluate a trained run: metrics with confidence intervals, plots, Grad-CAM, a report.

    RUN is a run folder (or a .pt checkpoint); default: the run the last `maskforge train`
    here wrote, else the newest folder in runs/. Data: default the run's test manifest.
    Writes report.md, report.json, predictions.csv and plots into RUN/eval-<name>/.
    """
    from maskforge.core.paths import display_path
    from maskforge.evaluate.evaluator import EvalOptions, evaluate_run

    result = evaluate_run(EvalOptions(**options), echo=click.echo)
    click.echo(headline(result.report))
    click.echo(
        f"Report: {display_path(result.report_md)}  (numbers in report.json, plots beside it)"
    )


def headline(report: dict) -> str:
    """A few lines with the main metrics, for the terminal."""
    lines = []
    for key, m in report["metrics"].items():
        if report["task"] == "binary":
            label = f"threshold {m['threshold']:.3g}" + (" (val)" if key == "val" else "")
            names = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
        else:
            label = "argmax"
            names = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc_ovr")
        parts = [f"{n} {'n/a' if m.get(n) is None else format(m[n], '.3f')}" for n in names]
        lines.append(f"  {label}: " + ", ".join(parts))
    return "Results on {} images:\n{}".format(report["data"]["n_scored"], "\n".join(lines))


COMMANDS = [eval_command]
