"""What `split` is asked (SplitOptions) and what it did (BalanceReport, SplitResult).

Plain records, apart from the code that fills them (split.py) and the report written from them
(report.py), so that both can import them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from maskforge.dataset.duplicates import DuplicateReport
from maskforge.dataset.sources import Source
from maskforge.dataset.stats import ChannelStats


@dataclass
class BalanceReport:
    """What balancing changed, per split and class."""

    mode: str
    before: pd.DataFrame  # counts, index classes, columns splits
    after: pd.DataFrame
    groups_dropped: dict[str, int] = field(default_factory=dict)  # groups left with no image
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> class -> w


@dataclass(frozen=True)
class SplitOptions:
    """Settings of `maskforge split` (see its --help)."""

    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stratify: tuple[str, ...] = ()
    balance: str = "undersample"
    dup_threshold: int | None = 4  # None: no near-duplicate search
    class_map: Mapping[str, str] = field(default_factory=dict)
    stats: bool = True
    size: int = 112
    workers: int = 1
    drop_missing: bool = False


@dataclass
class SplitResult:
    """What run_split did: the manifests, counts and everything the report lists."""

    out_dir: Path
    files: list[Path]
    manifests: dict[str, pd.DataFrame]  # split -> rows written (with abspath)
    balance: BalanceReport
    duplicates: DuplicateReport | None
    stats: ChannelStats | None
    sources: list[tuple[Source, str, int]]  # (source, kind, images)
    skipped: dict[str, dict[str, int]]
    missing: list[str]
    unreadable: list[tuple[str, str]]
    notes: list[str]
    classes: list[str]
