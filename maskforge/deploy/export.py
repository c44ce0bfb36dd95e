"""Export a trained run to ONNX or TorchScript with the normalisation baked in, and verify it.

The exported model takes `image`: float32 (N, 3, S, S), RGB, values 0..1 (the image resized to
S x S with OpenCV INTER_AREA and divided by 255; no mean/std: that is inside the model) and
returns `probabilities`: float32 (N, C) in the checkpoint's class order (two classes: column 1
is the positive class). S, the classes and this description are stored in the file's metadata
and in a `<name>.json` file beside it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from maskforge import __version__
from maskforge.choices import EXPORT_FORMATS
from maskforge.core.imageio import atomic_write_text
from maskforge.core.outputs import output_folder
from maskforge.learn.models import CheckpointInfo, probabilities

FORMATS = EXPORT_FORMATS
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
INPUT_SPEC = (
    "float32 (N, 3, {s}, {s}) RGB in 0..1: resize the image to {s}x{s} with OpenCV INTER_AREA "
    "and divide by 255; normalisation (mean/std) is inside the model"
)


class ExportWrapper(nn.Module):
    """Classifier with normalisation baked in: RGB 0..1 (N, 3, S, S) -> probabilities (N, C)."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return probabilities(self.model((image - self.mean) / self.std))


def preprocess(rgb: np.ndarray, img_size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, S, S) in 0..1: what the exported model takes."""
    resized = cv2.resize(rgb, (img_size, img_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32) / 255.0


@dataclass
class ExportResult:
    """What `export_run` wrote and how well it matched PyTorch."""

    path: Path
    metadata_path: Path
    exporter: str
    n_verified: int
    verify_source: str
    max_abs_diff: float
    metadata: dict


def model_metadata(info: CheckpointInfo, checkpoint: Path, fmt: str, exporter: str) -> dict:
    """The description stored with an exported model."""
    return {
        "format": fmt,
        "exporter": exporter,
        "source_checkpoint": Path(checkpoint).as_posix(),
        "arch": info.arch,
        "classes": list(info.classes),
        "positive_class": info.classes[1] if len(info.classes) == 2 else None,
        "img_size": info.img_size,
        "input": {"name": INPUT_NAME, "spec": INPUT_SPEC.format(s=info.img_size)},
        "output": {
            "name": OUTPUT_NAME,
            "spec": f"float32 (N, {len(info.classes)}) class probabilities, columns "
            f"{', '.join(info.classes)}",
        },
        "normalisation_baked_in": {"mean": info.mean, "std": info.std},
        "maskforge_version": __version__,
    }


def _ignore_head_width_branch() -> None:
    """Silence the tracer about `probabilities` branching on the logit count.

    The head's width is fixed for a model, so the traced branch is the right one for every input.
    """
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


def export_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int) -> str:
    """Write a wrapped model as ONNX, batch axis dynamic; returns which exporter was used, why."""
    note = "TorchScript-based exporter (dynamo=False): onnxscript, which the newer one needs, "
    note += "is not installed"
    if importlib.util.find_spec("onnxscript") is not None:
        try:
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
            )
            return "torch.export-based exporter (dynamo=True)"
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to the older exporter
            note = (
                f"TorchScript-based exporter (dynamo=False), after the torch.export-based one "
                f"failed: {' '.join(str(exc).split())[:200]}"
            )
    with warnings.catch_warnings():
        # torch >= 2.9 warns that this exporter is legacy; it is still supported and offline.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        _ignore_head_width_branch()
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return note


def _add_onnx_metadata(path: Path, metadata: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in (
        ("maskforge", json.dumps(metadata)),
        ("classes", json.dumps(metadata["classes"])),
        ("input_spec", metadata["input"]["spec"]),
    ):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _export_torchscript(wrapper: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> str:
    with warnings.catch_warnings():
        # TorchScript is deprecated in torch 2.x in favour of torch.export but still works.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        _ignore_head_width_branch()
        # No check_trace: export_run compares the saved file with PyTorch on real images anyway.
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"maskforge.json": json.dumps(meta)})
    # Written here, not by torch's C++ writer: a full disk is then an OSError that says so.
    with open(path, "wb") as fh:
        fh.write(buffer.getbuffer())
    return "torch.jit.trace (TorchScript is deprecated upstream in favour of torch.export)"


def run_exported(path: Path, fmt: str, batch: np.ndarray) -> np.ndarray:
    """Probabilities (N, C) from an exported file on CPU for a float32 batch (N, 3, S, S)."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(torch.from_numpy(batch)).numpy()


def _verify_images(run_dir: Path, info: CheckpointInfo, n: int, seed: int):
    """Up to n readable images of the run's test (else val) manifest, or made-up ones."""
    from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
    from maskforge.core.paths import display_path
    from maskforge.dataset.manifest import read_manifest
    from maskforge.learn.runs import run_manifests_dir

    manifests = run_manifests_dir(run_dir, info)
    for split in ("test", "val"):
        path = None if manifests is None else manifests / f"{split}.csv"
        if path is None or not path.is_file():
            continue
        try:
            frame = read_manifest(path)
        except ValueError:
            continue
        rng = np.random.default_rng(seed)
        images = []
        for i in rng.permutation(len(frame)):
            try:
                images.append(read_image(frame["abspath"].iloc[i]))
            except (UnreadableImageError, ImageTooLargeError):
                continue
            if len(images) == n:
                break
        if images:
            return images, f"{len(images)} images from {display_path(path)}"
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (96, 80, 3), dtype=np.uint8) for _ in range(n)]
    return images, f"{n} random images (no manifest of the run found)"


def export_run(
    run: Path | None = None,
    fmt: str = "onnx",
    out: Path | None = None,
    checkpoint: str = "best",
    verify: int = 8,
    atol: float = 1e-4,
    opset: int = 17,
    seed: int = 0,
    echo=None,
) -> ExportResult:
    """Export a run's checkpoint with normalisation baked in; verify against PyTorch.

    The file is only put in place when the exported model's probabilities match the PyTorch
    pipeline (eval transform + model) within atol on `verify` images; otherwise ValueError.
    """
    from maskforge.core.paths import display_path
    from maskforge.learn.runs import load_run_model
    from maskforge.learn.transforms import eval_transform

    if fmt not in FORMATS:
        raise ValueError(f"Invalid format {fmt!r}. Only {', '.join(FORMATS)} are supported.")
    if verify < 1:
        raise ValueError(f"--verify must be at least 1 image, got {verify}.")
    echo = echo or (lambda _: None)
    run_dir, ckpt, model, info, _ = load_run_model(run, checkpoint, "cpu", echo)
    path = Path(out) if out is not None else run_dir / "export" / f"model{SUFFIX[fmt]}"
    # Held to the end: a second command writing this file is refused before it writes.
    with output_folder(path.parent, "export", file=path, lock_name=f".{path.name}.lock"):
        tmp = path.with_name(f".{path.name}.tmp")
        wrapper = ExportWrapper(model, info.mean, info.std).eval()
        gen = torch.Generator().manual_seed(seed)
        example = torch.rand(2, 3, info.img_size, info.img_size, generator=gen)
        try:
            if fmt == "onnx":
                exporter = export_onnx(wrapper, example, tmp, opset)
                meta = model_metadata(info, Path(display_path(ckpt)), fmt, exporter)
                meta["opset"] = opset
                _add_onnx_metadata(tmp, meta)
            else:
                meta = model_metadata(info, Path(display_path(ckpt)), fmt, "torch.jit.trace")
                exporter = _export_torchscript(wrapper, example, tmp, meta)
                meta["exporter"] = exporter

            images, source = _verify_images(run_dir, info, verify, seed)
            tf = eval_transform(info.img_size, info.mean, info.std)
            with torch.inference_mode():
                reference = probabilities(
                    model(torch.stack([tf(image=im)["image"] for im in images]))
                ).numpy()
            batch = np.stack([preprocess(im, info.img_size) for im in images])
            got = run_exported(tmp, fmt, batch)
            diff = float(np.abs(got - reference).max())
            if not diff <= atol:
                raise ValueError(
                    f"Exported model differs from PyTorch by {diff:.2e} (> --atol {atol:g}) on "
                    f"{source}; nothing written."
                )
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        meta.update({"verified_on": source, "max_abs_diff": diff, "atol": atol})
        meta_path = path.with_name(path.name + ".json")
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    echo(f"Exported {display_path(path)} with {exporter}")
    return ExportResult(path, meta_path, exporter, len(images), source, diff, meta)


def describe(result: ExportResult) -> str:
    """Lines for the terminal: input, output and verification."""
    from maskforge.core.paths import display_path

    meta = result.metadata
    return "\n".join(
        [
            f"Input  '{INPUT_NAME}': {meta['input']['spec']}",
            f"Output '{OUTPUT_NAME}': {meta['output']['spec']}",
            f"Verified on {result.verify_source}: max abs diff vs PyTorch "
            f"{result.max_abs_diff:.2e} (tolerance {meta['atol']:g})",
            f"Metadata: {display_path(result.metadata_path)}",
        ]
    )
