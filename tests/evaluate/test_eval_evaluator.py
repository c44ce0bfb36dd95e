"""EvalOptions: checked when made, frozen, with the CLI's defaults. (evaluate_run itself runs
end to end in tests/test_eval.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from maskforge.commands.eval import eval_command
from maskforge.evaluate.evaluator import EvalOptions, EvalResult


@pytest.mark.parametrize(
    "options, message",
    [
        ({"manifest": Path("m.csv"), "folder": Path("f")}, "Give either --manifest or --folder"),
        ({"label": ("masked",)}, "--label only applies with --folder."),
        ({"label": "masked"}, "--label only applies with --folder."),
        ({"threshold_rule": "magic"}, "Invalid threshold rule 'magic'. Only youden, f1."),
        ({"threshold": 1.0}, "Invalid threshold 1.0; it must be between 0 and 1."),
        ({"threshold": 0}, "Invalid threshold 0; it must be between 0 and 1."),
        ({"cam": -1}, "--cam and --bootstrap must be 0 or more."),
        ({"bootstrap": -5}, "--cam and --bootstrap must be 0 or more."),
    ],
)
def test_bad_options_raise_value_errors(options, message):
    with pytest.raises(ValueError) as info:
        EvalOptions(**options)
    assert str(info.value).startswith(message)


def test_options_are_frozen_and_report_what_shapes_the_numbers():
    options = EvalOptions(folder=Path("f"), label=("masked",), threshold=0.3, cam=2, seed=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.cam = 3
    assert options.reported() == {
        "checkpoint": "best",
        "threshold_rule": "youden",
        "bootstrap": 1000,
        "seed": 4,
        "cam": 2,
    }
    assert EvalOptions(label=()).label == ()  # an empty --label is no --label


def test_defaults_are_the_commands():
    defaults = {f.name: f.default for f in dataclasses.fields(EvalOptions)}
    params = eval_command.make_context("eval", []).params  # what the command gets, no options
    assert set(defaults) == set(params)
    assert params.pop("label") == () and defaults.pop("label") is None  # multiple=True
    assert all(params[name] == default for name, default in defaults.items()), params
    assert defaults["crop_faces"] is False and params["crop_faces"] is False


def test_result_names_its_report():
    result = EvalResult(out_dir=Path("runs/r/eval-test"), report={})
    assert result.report_md == Path("runs/r/eval-test/report.md") and result.messages == []
