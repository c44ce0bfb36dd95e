"""--help grouped by topic (commands.options.section), and the shared option decorators."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.commands.options import command, section, seed_option, workers_option

SECTIONS = {
    "synthesize": [
        "Input and output",
        "What to synthesize",
        "Faces and landmarks",
        "Crops and realism",
        "Engine",
    ],
    "train": ["Data and run", "Model", "Optimisation", "Hardware"],
    "split": ["Splits", "Labels and duplicates", "Statistics"],
    "preview": ["The sheet", "Which rows", "Layout"],
    "predict": ["Model", "Faces", "Output", "Speed"],
    "eval": ["Data", "Model and threshold", "Report", "Hardware"],
}


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def _headings(text: str) -> list[str]:
    return re.findall(r"^([A-Z][\w ]*):$", text, flags=re.MULTILINE)


def _toy() -> click.Command:
    @command("toy")
    @section("First", seed_option("The seed."), click.option("--a-rather-long-name", help="A."))
    @section("Second", workers_option("How many.", low=0))
    @click.option("--loose", is_flag=True, help="In no section.")
    def toy(**params):
        """A toy."""

    return toy


def test_sections_in_order_with_the_rest_last_and_one_column():
    text = CliRunner().invoke(_toy(), ["--help"], terminal_width=100).output
    assert _headings(text) == ["First", "Second", "Other options"]
    first, second, other = re.split(r"^(?:First|Second|Other options):$", text, flags=re.M)[1:]
    assert "--seed" in first and "--a-rather-long-name" in first and "[default: 0]" in first
    assert "--workers" in second and "--seed" not in second
    assert "--loose" in other and "--help" in other
    # Every description starts in the same column, across sections.
    starts = {len(m[1]) for m in re.finditer(r"^(  -\S.*?\s{2,})\S", text, flags=re.M)}
    assert len(starts) == 1, text


def test_a_command_without_sections_lists_options():
    @command("plain")
    @click.option("--x", help="X.")
    def plain(x):
        """Plain."""

    text = CliRunner().invoke(plain, ["--help"]).output
    assert _headings(text) == ["Options"]


@pytest.mark.parametrize("command", sorted(SECTIONS))
def test_long_commands_group_their_options_by_topic(command):
    text = _help(command)
    assert _headings(text) == [*SECTIONS[command], "Other options"]
    for param in cli.commands[command].params:
        if isinstance(param, click.Option):
            assert sum(text.count(f"{opt} ") for opt in param.opts) >= 1, param.opts


@pytest.mark.parametrize("command", ["stats", "export", "templates"])
def test_short_commands_keep_one_list(command):
    assert _headings(_help(command)) == ["Options"]


def test_every_default_is_shown():
    text = " ".join(_help("synthesize").split())
    for shown in (
        "[default: 0.25; 0<=x<=2]",
        "[default: 0.1; x>=0]",
        "[default: 64000000; x>=1]",
        "[default: standard]",
        "[default: local]",
        "[default: realism]",
    ):
        assert shown in text
    assert "--overwrite Start OUT afresh" in text  # a flag off by default shows no default
