"""split_report.md: every section in each of its forms, pinned against golden files.

The results are made by hand (no images behind the paths), so every branch of the report shows:
two sources with skipped rows and notes, mask types, near-duplicates past the listing limit with
label conflicts, files left out, each balance mode, and the switched-off dedup and stats.
Regenerate a golden file only for an intended change of the report:
MASKFORGE_WRITE_GOLDEN=1 pytest tests/test_split_report.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskforge import __version__
from maskforge.dataset.duplicates import DuplicateReport
from maskforge.dataset.report import MAX_LISTED, SECTIONS, render_report
from maskforge.dataset.sources import Source
from maskforge.dataset.split import SplitOptions, SplitResult, balance_splits
from maskforge.dataset.stats import ChannelStats

GOLDEN = Path(__file__).parent / "golden"
CLASSES = ["masked", "incorrect", "unmasked"]


def _items(root: Path, n_groups: int = 30) -> pd.DataFrame:
    """Items of two sources, a split column already assigned (every third group per split)."""
    rows = []
    for g in range(n_groups):
        split = ("train", "train", "val", "test")[g % 4]
        label = "incorrect" if g % 5 == 0 else "masked"
        mask_type = ("surgical", "cloth", "n95")[g % 3]
        out = root / "out"
        rows.append((f"{out}/{label}/{g}.jpg", label, f"out:{g}", "out", mask_type, split))
        rows.append((f"{out}/unmasked/{g}.jpg", "unmasked", f"out:{g}", "out", "", split))
    for i in range(8):
        split = ("train", "val", "test", "train")[i % 4]
        label = "masked" if i % 2 else "unmasked"
        rows.append((f"{root}/real/{label}/{i}.jpg", label, f"real:{i}", "real", "", split))
    columns = ["abspath", "label", "group", "source", "mask_type", "split"]
    return pd.DataFrame(rows, columns=columns).assign(wear="", kind="output")


def _result(root: Path, mode: str, dedup: bool, stats: bool, both_sources: bool) -> SplitResult:
    items = _items(root)
    if not both_sources:
        items = items[items["source"] == "out"].assign(mask_type="")
    if mode == "weights":  # a class missing from one split shows as "-"
        items = items[(items["split"] != "test") | (items["label"] != "incorrect")]
    frame, balance = balance_splits(items, mode, np.random.default_rng(0))
    manifests = {
        split: frame.loc[frame["split"] == split].drop(columns=["split", "kind"])
        for split in ("train", "val", "test")
    }
    duplicates = None
    if dedup:
        pairs = tuple(
            (f"{root}/out/unmasked/{i}.jpg", f"{root}/real/unmasked/{i % 8}.jpg", i % 5)
            for i in range(MAX_LISTED + 3 if both_sources else 0)
        )
        conflicts = (
            ((f"{root}/out/unmasked/1.jpg", "unmasked", f"{root}/real/masked/1.jpg", "masked"),)
            if both_sources
            else ()
        )
        duplicates = DuplicateReport(
            threshold=4,
            hashed=38,
            pairs=pairs,
            groups_before=38,
            groups_after=30 if both_sources else 38,
            unreadable=(),
            conflicts=conflicts,
        )
    channel = (
        ChannelStats((0.51234, 0.4, 0.35), (0.25, 0.24444, 0.2), count=40, size=112)
        if stats
        else None
    )
    sources = [(Source("out", root / "out"), "synthesis", 60)]
    if both_sources:
        sources.append((Source("real", root / "real"), "folders", 8))
    return SplitResult(
        out_dir=root / "manifests",
        files=[],
        manifests=manifests,
        balance=balance,
        duplicates=duplicates,
        stats=channel,
        sources=sources,
        skipped={"out": {"no_face": 3, "too_small": 1}} if both_sources else {},
        missing=[f"{root}/out/masked/gone.jpg"] if both_sources else [],
        unreadable=[(f"{root}/real/masked/bad.jpg", "not an image")] if both_sources else [],
        notes=["real: 2 files are not images and were skipped"] if both_sources else [],
        classes=CLASSES,
    )


CASES = {
    "undersample": (
        dict(mode="undersample", dedup=True, stats=True, both_sources=True),
        SplitOptions(seed=3, stratify=("mask_type",), class_map={"with_mask": "masked"}),
    ),
    "oversample": (
        dict(mode="oversample", dedup=True, stats=False, both_sources=False),
        SplitOptions(ratios=(0.8, 0.2, 0.0), balance="oversample", stats=False),
    ),
    "weights": (
        dict(mode="weights", dedup=False, stats=True, both_sources=False),
        SplitOptions(balance="weights", dup_threshold=None, drop_missing=True, size=64),
    ),
    "none": (
        dict(mode="none", dedup=False, stats=False, both_sources=True),
        SplitOptions(balance="none", dup_threshold=None, stats=False),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_matches_its_golden_file(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the report shows paths relative to the working folder
    kwargs, options = CASES[case]
    result = _result(tmp_path, **kwargs)
    text = render_report(result, options, options.ratios)
    text = text.replace(f"maskforge {__version__} `split`", "maskforge VERSION `split`")
    golden = GOLDEN / f"split_report_{case}.md"
    if os.environ.get("MASKFORGE_WRITE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_every_section_is_there_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs, options = CASES["undersample"]
    text = render_report(_result(tmp_path, **kwargs), options, options.ratios)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Split report",
        "## Settings",
        "## Sources",
        "## Counts per split and class (balance: undersample)",
        "### Per class and mask type",
        "### Per source and class",
        "## Near-duplicates",
        "## Balancing",
        "## Left out",
        "## Train statistics",
    ]
    assert len(SECTIONS) == 7  # the ### tables belong to the counts section
    assert "... and 3 more pairs." in text
    assert "| out | synthesis | out/ | 60 |" in text
    assert "out/unmasked/1.jpg | unmasked | real/masked/1.jpg | masked |" in text
