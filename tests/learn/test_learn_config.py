"""The training config: checks with one-line messages, phases, config.json and resuming."""

from __future__ import annotations

import json

import pytest

from maskforge.learn.config import (
    RESUME_OVERRIDES,
    TrainConfig,
    check_choice,
    resume_config,
)


def test_check_choice_names_the_value_and_the_allowed_ones():
    check_choice("optimizer", "sgd", ("sgd", "adam"))
    with pytest.raises(
        ValueError, match=r"^Invalid optimizer 'lamb'. Only sgd, adam are supported.$"
    ):
        check_choice("optimizer", "lamb", ("sgd", "adam"))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"arch": "vgg16"}, "Invalid architecture 'vgg16'"),
        ({"scheduler": "linear"}, "Invalid scheduler 'linear'"),
        ({"device": "tpu"}, "Invalid device 'tpu'"),
        ({"epochs": 0}, "epochs must be at least 1, got 0."),
        ({"img_size": 8}, "img_size must be between 16 and 1024, got 8."),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"patience": -1}, "must not be negative"),
        ({"workers": -2}, "workers must not be negative, got -2."),
        ({"unfreeze_after": 2}, "--unfreeze-after needs --freeze-backbone."),
    ],
)
def test_bad_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


def test_phases_of_a_frozen_then_unfrozen_run():
    config = TrainConfig(freeze_backbone=True, unfreeze_after=2)
    assert [config.phase(e) for e in range(4)] == ["frozen", "frozen", "full", "full"]
    assert TrainConfig(freeze_backbone=True).phase(99) == "frozen"
    assert TrainConfig().phase(0) == "full"


def test_resume_config_reads_config_json_and_allows_only_speed_settings(tmp_path):
    saved = TrainConfig(arch="resnet18", lr=0.05, workers=4)
    doc = {**saved.to_dict(), "data": {"classes": ["unmasked", "masked"]}, "torch_version": "x"}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert TrainConfig.from_dict(doc) == saved
    resumed = resume_config(tmp_path, workers=0, device=None)
    assert resumed == TrainConfig(arch="resnet18", lr=0.05, workers=0)
    assert set(RESUME_OVERRIDES) == {"workers", "device", "cache_dir"}
    with pytest.raises(ValueError, match="Cannot change lr when resuming; only workers, device"):
        resume_config(tmp_path, lr=0.1)
