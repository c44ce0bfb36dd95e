"""The CLI offers the library's vocabularies and defaults, from maskforge.choices, and its --help
imports nothing heavy."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import pytest

from maskforge import choices
from maskforge.cli import cli

HEAVY = ("torch", "cv2", "dlib")
# Every list of names the CLI offers with click.Choice: (command, parameter) -> the tuple.
CHOICE_LISTS = {
    ("synthesize", "out_format"): choices.OUT_FORMATS,
    ("synthesize", "detector"): choices.DETECTORS,
    ("synthesize", "engine"): choices.ENGINES,
    ("synthesize", "landmarks"): choices.LANDMARK_MODELS,
    ("synthesize", "renderer"): choices.RENDERERS,
    ("stats", "engine"): choices.ENGINES,
    ("split", "stratify"): choices.EXTRA_STRATA,
    ("split", "balance"): choices.BALANCE_MODES,
    ("train", "arch"): choices.ARCHS,
    ("train", "optimizer"): choices.OPTIMIZERS,
    ("train", "scheduler"): choices.SCHEDULERS,
    ("train", "device"): choices.DEVICES,
    ("eval", "checkpoint"): choices.CHECKPOINTS,
    ("eval", "threshold_rule"): choices.THRESHOLD_RULES,
    ("predict", "checkpoint"): choices.CHECKPOINTS,
    ("predict", "detector"): choices.DETECTORS,
    ("predict", "no_face"): choices.NO_FACE_CHOICES,
    ("predict", "runtime"): choices.PREDICT_RUNTIMES,
    ("export", "fmt"): choices.EXPORT_FORMATS,
    ("export", "checkpoint"): choices.CHECKPOINTS,
}


def _param(command: str, name: str) -> click.Parameter:
    return next(p for p in cli.commands[command].params if p.name == name)


def test_every_choice_list_of_the_cli_is_the_librarys():
    offered = {
        (name, p.name): tuple(p.type.choices)
        for name, command in cli.commands.items()
        for p in command.params
        if isinstance(p.type, click.Choice)
    }
    assert offered == CHOICE_LISTS


# Library tuples equal to a vocabulary of maskforge.choices but spelled again (this only shrinks).
KNOWN_COPIES = {"maskforge.dataset.manifest.CLASS_ORDER"}


def test_the_library_checks_against_the_same_tuples():
    """Every vocabulary is used by the library, as the very tuple of maskforge.choices."""
    import importlib
    import pkgutil

    import maskforge

    vocabularies = {name: v for name, v in vars(choices).items() if isinstance(v, tuple)}
    used, copies = set(), set()
    for info in pkgutil.walk_packages(maskforge.__path__, "maskforge."):
        if info.name.startswith(("maskforge.commands", "maskforge.cli", "maskforge.__main__")):
            continue
        for attr, value in vars(importlib.import_module(info.name)).items():
            for name, vocabulary in vocabularies.items():
                if isinstance(value, tuple) and value == vocabulary:
                    if value is vocabulary:
                        used.add(name)
                    else:
                        copies.add(f"{info.name}.{attr}")
    assert used == vocabularies.keys()
    assert copies <= KNOWN_COPIES, copies
    from maskforge.core import imageio
    from maskforge.faces import cascade as faces

    assert imageio.DEFAULT_MAX_PIXELS == choices.MAX_PIXELS
    assert faces.MAX_RESIDUAL == choices.MAX_SHAPE_RESIDUAL


def test_list_options_check_against_the_same_tuples():
    assert _param("synthesize", "wear").type.allowed is choices.WEAR_STYLES
    assert _param("synthesize", "negatives").type.allowed is choices.OCCLUDER_KINDS
    assert _param("preview", "wears").type.allowed is choices.WEAR_STYLES
    assert _param("preview", "detectors").type.allowed is choices.STAGES
    assert _param("preview", "statuses").type.allowed is choices.STATUSES
    assert _param("synthesize", "framing").type.allowed is choices.FRAMINGS
    assert _param("preview", "framings").type.allowed is choices.FRAMINGS


def _parsed(command: str, *args: str) -> dict:
    """The values the command gets when only args are given: every other option's default."""
    return cli.commands[command].make_context(command, list(args), parent=None).params


def _signature_defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _assert_same_defaults(cli_values: dict, library: dict, skip: set[str] = frozenset()) -> None:
    shared = (cli_values.keys() & library.keys()) - skip
    assert shared, "nothing in common"
    assert {k: cli_values[k] for k in shared} == {k: library[k] for k in shared}


def test_synthesize_defaults_are_the_librarys():
    from maskforge.commands.synthesize import synthesis_request
    from maskforge.synth.run.pipeline import SynthesisOptions
    from maskforge.synth.run.runner import RunOptions

    options, run = synthesis_request(_parsed("synthesize", "raw", "out"))
    assert {f.name for f in fields(SynthesisOptions)} - {"variant_yaw"} <= {
        p.name for p in cli.commands["synthesize"].params
    } | {"finish"}
    # One set of defaults: what the library draws unasked is what the command draws, the
    # realistic mix of mask types, half of them patterned, MediaPipe's landmarks.
    library = SynthesisOptions()
    for field in fields(SynthesisOptions):
        assert getattr(options, field.name) == getattr(library, field.name), field.name
    assert library.mask_types.options[0] == "surgical" and len(library.mask_types.options) > 5
    plain = dict(zip(library.patterns.options, library.patterns.weights))["none"]
    assert plain / sum(library.patterns.weights) == pytest.approx(0.5)
    assert options.margin == choices.CROP_MARGIN and options.landmarks == "mediapipe"
    library_run = RunOptions()
    for field in fields(RunOptions):
        if field.name != "workers":  # the CLI resolves it to the usable cores
            assert getattr(run, field.name) == getattr(library_run, field.name), field.name
    assert run.detector == choices.DEFAULT_DETECTOR and run.engine == "local"


def test_train_defaults_are_the_train_configs():
    from maskforge.learn.config import TrainConfig

    values = _parsed("train")
    library = TrainConfig()
    names = [f.name for f in fields(TrainConfig) if f.name != "manifests"]
    assert set(names) <= values.keys()
    for name in names:
        value = str(values[name]) if name == "cache_dir" else values[name]
        assert value == getattr(library, name), name


def test_split_and_stats_defaults_are_the_librarys():
    from maskforge.dataset.split import SplitOptions
    from maskforge.dataset.stats import manifest_stats

    values = _parsed("split")
    library = SplitOptions()
    for name in ("ratios", "seed", "stratify", "balance", "dup_threshold", "stats", "size"):
        assert values[name] == getattr(library, name), name
    assert (values["class_map"] or {}) == library.class_map
    assert values["drop_missing"] is library.drop_missing is False
    _assert_same_defaults(_parsed("stats"), _signature_defaults(manifest_stats), skip={"workers"})


@pytest.mark.parametrize(
    "command, args, function",
    [
        ("predict", ["."], "maskforge.deploy.predict:PredictOptions"),
        ("export", [], "maskforge.deploy.export:export_run"),
        ("preview", [], "maskforge.synth.preview.sheet:build_sheet"),
        ("templates", [], "maskforge.synth.preview.templates:write_template_sheet"),
    ],
)
def test_other_commands_pass_the_librarys_defaults(command, args, function):
    """The function's keyword defaults, or an options dataclass's field defaults."""
    import importlib

    module, _, name = function.partition(":")
    library = _signature_defaults(getattr(importlib.import_module(module), name))
    _assert_same_defaults(_parsed(command, *args), library)
    if command == "predict":  # every field, not just some in common
        assert library.keys() - {"workers"} <= _parsed(command, *args).keys()


def test_eval_defaults_are_the_eval_options():
    from maskforge.evaluate.evaluator import EvalOptions

    values, library = _parsed("eval"), EvalOptions()
    names = [f.name for f in fields(EvalOptions)]
    assert set(names) <= values.keys()
    assert values["label"] == () and library.label is None  # repeatable: () means none
    for name in set(names) - {"label"}:
        assert values[name] == getattr(library, name), name


def test_preview_shows_the_librarys_sheet_defaults():
    from maskforge.synth.preview import sheet as preview

    assert (choices.PREVIEW_COUNT, choices.PREVIEW_TILE) == (
        preview.DEFAULT_COUNT,
        preview.DEFAULT_TILE,
    )


def test_help_imports_nothing_heavy():
    """`maskforge --help` and every command's --help load only click and the light modules."""
    shown = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "maskforge", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "synthesize" in shown.stdout
    imported = {line.split("|")[-1].strip() for line in shown.stderr.splitlines() if "|" in line}
    assert "maskforge.cli" in imported and not {m for m in imported if m.split(".")[0] in HEAVY}
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from maskforge.cli import cli\n"
        "for name in sorted(cli.commands):\n"
        "    result = CliRunner().invoke(cli, [name, '--help'])\n"
        "    assert result.exit_code == 0 and 'Usage:' in result.output, name\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_framing_options_parse_to_the_librarys_choices():
    from maskforge.commands.synthesize import synthesis_request
    from maskforge.synth.render.framing import RANDOM_FRAMING
    from maskforge.synth.sampling.specs import Choice

    options, _ = synthesis_request(_parsed("synthesize", "raw", "out", "--framing", "crop=3,wide"))
    assert options.framing == Choice(("crop", "wide"), (3.0, 1.0))
    options, _ = synthesis_request(_parsed("synthesize", "raw", "out", "--framing", "random"))
    total = sum(RANDOM_FRAMING.values())
    assert dict(zip(options.framing.options, options.framing.weights)) == {
        k: v / total for k, v in RANDOM_FRAMING.items()
    }
    options, run = synthesis_request(_parsed("synthesize", "raw", "out", "--full-frame"))
    assert options.framing == Choice(("full",), (1.0,)) and not hasattr(run, "full_frame")
    options, _ = synthesis_request(_parsed("synthesize", "raw", "out", "--hands-near-mask", "0.2"))
    assert options.hands_near_mask == 0.2
