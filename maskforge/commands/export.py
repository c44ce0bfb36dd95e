"""`maskforge export`: ONNX or TorchScript with normalisation baked in, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript"]),
    default="onnx",
    show_default=True,
    help="onnx (runs with onnxruntime, OpenCV DNN, TensorRT, ...) or torchscript "
    "(torch.jit.load, no maskforge needed).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file.  [default: RUN/export/model.onnx or RUN/export/model.torchscript.pt]",
)
@click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default="best",
    show_default=True,
    help="Which checkpoint of the run to export.",
)
@click.option(
    "--verify",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Images (from the run's test manifest) on which the exported model must match PyTorch.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Largest allowed absolute difference of the probabilities; above it nothing is written.",
)
@click.option(
    "--opset",
    type=click.IntRange(min=9),
    default=17,
    show_default=True,
    help="ONNX opset version (ignored for torchscript).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed choosing the verification images."
)
def export_command(
    run: Path | None,
    fmt: str,
    out: Path | None,
    checkpoint: str,
    verify: int,
    atol: float,
    opset: int,
    seed: int,
) -> None:
    """Export a trained run for deployment, with normalisation baked in.

    RUN is a run folder or .pt checkpoint (default: the last trained / newest in runs/). The
    exported model takes float32 RGB images (N, 3, S, S) with values 0..1, resized to S x S
    (OpenCV INTER_AREA), and returns class probabilities (N, C). S and the class names are in
    the file's metadata and in <file>.json beside it.
    """
    from maskforge.deploy.export import describe, export_run

    result = export_run(
        run=run,
        fmt=fmt,
        out=out,
        checkpoint=checkpoint,
        verify=verify,
        atol=atol,
        opset=opset,
        seed=seed,
        echo=click.echo,
    )
    click.echo(describe(result))


COMMANDS = [export_command]
