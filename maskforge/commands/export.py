"""`maskforge export`: ONNX or TorchScript with normalisation baked in, verified against PyTorch."""

from __future__ import annotations

import click

from maskforge import choices
from maskforge.commands.options import (
    checkpoint_option,
    choice_option,
    command,
    file_option,
    float_option,
    int_option,
    run_argument,
    seed_option,
)


@command("export")
@run_argument
@choice_option(
    "--format",
    "fmt",
    among=choices.EXPORT_FORMATS,
    default=choices.DEFAULT_EXPORT_FORMAT,
    help="onnx (runs with onnxruntime, OpenCV DNN, TensorRT, ...) or torchscript "
    "(torch.jit.load, no maskforge needed).",
)
@file_option(
    "--out",
    help="Output file.  [default: RUN/export/model.onnx or RUN/export/model.torchscript.pt]",
)
@checkpoint_option("export")
@int_option(
    "--verify",
    default=8,
    help="Images (from the run's test manifest) on which the exported model must match PyTorch.",
)
@float_option(
    "--atol",
    high=None,
    default=1e-4,
    help="Largest allowed absolute difference of the probabilities; above it nothing is written.",
)
@int_option(
    "--opset",
    low=9,
    default=17,
    help="ONNX opset version (ignored for torchscript).",
)
@seed_option("Seed choosing the verification images.")
def export_command(**options) -> None:
    """Export a trained run for deployment, with normalisation baked in.

    RUN is a run folder or .pt checkpoint (default: the last trained / newest in runs/). The
    exported model takes float32 RGB images (N, 3, S, S) with values 0..1, resized to S x S
    (OpenCV INTER_AREA), and returns class probabilities (N, C). S and the class names are in
    the file's metadata and in <file>.json beside it.
    """
    from maskforge.deploy.export import describe, export_run

    click.echo(describe(export_run(echo=click.echo, **options)))


COMMANDS = [export_command]
