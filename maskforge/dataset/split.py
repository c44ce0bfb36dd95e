"""Group-aware, stratified, balanced, deterministic train/val/test split into manifests.

Why not scikit-learn: `GroupShuffleSplit` sizes splits in groups and does not stratify, and
`StratifiedGroupKFold` makes k equal folds (0.8/0.1/0.1 only via 10 folds, 0.7/0.15/0.15 via
20, 1/3 never) and does not promise per-class counts within one item or a non-empty split for
small data. So groups are placed greedily (rarest stratum first, as in iterative
stratification) against exact per-stratum item quotas from largest-remainder allocation, in a
seeded order (sorted, then shuffled).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from maskforge.choices import BALANCE_MODES, EXTRA_STRATA, SPLITS
from maskforge.core.imageio import atomic_write_text
from maskforge.core.outputs import output_folder
from maskforge.core.paths import not_regular
from maskforge.dataset.duplicates import find_duplicates
from maskforge.dataset.manifest import (
    MANIFEST_COLUMNS,
    class_order,
    file_sha256,
    require_files,
    write_manifest,
)
from maskforge.dataset.report import render_report
from maskforge.dataset.sources import Collected, Source, collect_sources
from maskforge.dataset.split_types import BalanceReport, SplitOptions, SplitResult
from maskforge.dataset.stats import (
    channel_stats,
    stats_record,
    unreadable_message,
    write_stats_json,
)
from maskforge.synth.run.records import CSV_NAME as SYNTHESIS_CSV

REPORT_NAME = "split_report.md"
STATS_NAME = "stats.json"


def check_ratios(ratios: Sequence[float], text: str | None = None) -> tuple[float, float, float]:
    """Validate train,val[,test] ratios -> a 3-tuple (test 0 when two are given).

    Raises ValueError unless there are 2 or 3 finite, non-negative numbers summing to 1
    (within 1e-6) with a positive train ratio.
    """
    shown = text if text is not None else ",".join(f"{r:g}" for r in ratios)
    values = [float(r) for r in ratios]
    if len(values) not in (2, 3):
        raise ValueError(
            f"Invalid ratios {shown!r}: give 2 or 3 comma-separated numbers "
            "(train,val[,test]), e.g. 0.8,0.1,0.1."
        )
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Invalid ratios {shown!r}: every ratio must be a finite number.")
    if any(v < 0 for v in values):
        raise ValueError(f"Invalid ratios {shown!r}: ratios must not be negative.")
    total = sum(values)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"Invalid ratios {shown!r}: they sum to {total:g}, not 1.")
    if values[0] == 0:
        raise ValueError(f"Invalid ratios {shown!r}: the train ratio must be above 0.")
    values += [0.0] * (3 - len(values))
    return (values[0], values[1], values[2])


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' or '0.8,0.2' -> (train, val, test); see check_ratios."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"Invalid ratios {text!r}: expected comma-separated numbers such as 0.8,0.1,0.1."
        ) from None
    return check_ratios(values, text)


def format_ratios(ratios: Sequence[float]) -> str:
    """(0.8, 0.2, 0.0) -> '0.8,0.2,0'."""
    return ",".join(f"{round(r, 6):g}" for r in ratios)


def allocate(n: int, ratios: Sequence[float]) -> list[int]:
    """Split n items by ratios: largest remainder (exact total, each within 1 of n * ratio).

    Then, where possible, every split with a positive ratio gets at least one item, taken from
    the largest split, so small data does not leave val or test empty. Ties go to the earlier
    split.
    """
    ratios = np.asarray(ratios, dtype=float)
    # Rounded so that 10 * 0.7 = 7.000000000000001 does not count as a remainder.
    quota = np.round(n * ratios, 9)
    counts = np.floor(quota).astype(int)
    left = n - int(counts.sum())
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:left]] += 1
    for k in np.flatnonzero(ratios > 0):
        if counts[k] == 0:
            donor = int(np.argmax(counts))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[k] += 1
    return [int(c) for c in counts]


def _fewer_splits(ratios: Sequence[float], n_groups: int) -> str:
    # Keep as many splits as there are groups; their shares go to the last split kept.
    active = [k for k, r in enumerate(ratios) if r > 0]
    keep = active[: max(1, n_groups)]
    new = [r if k in keep else 0.0 for k, r in enumerate(ratios)]
    new[keep[-1]] += sum(r for k, r in enumerate(ratios) if k not in keep)
    return format_ratios(new)


def _empty_split_error(split: str, label: str, n_groups: int, ratios) -> ValueError:
    n_active = sum(r > 0 for r in ratios)
    noun = "group" if n_groups == 1 else "groups"
    if n_groups >= n_active:
        return ValueError(
            f"{split} would have no {label} images: each of the {n_groups} {noun} of class "
            f"{label} would overfill {split}'s quota of another class it holds; try another "
            "--seed or --ratios, or add data."
        )
    return ValueError(
        f"{split} would have no {label} images: {n_groups} {noun} of class {label} cannot fill "
        f"{n_active} splits at ratios {format_ratios(ratios)}; use --ratios "
        f"{_fewer_splits(ratios, n_groups)} or add data."
    )


def strata_keys(items: pd.DataFrame, stratify: Sequence[str] = ()) -> pd.Series:
    """Stratum of each item: its label, joined with the extra columns named in `stratify`."""
    unknown = [s for s in stratify if s not in EXTRA_STRATA]
    if unknown:
        raise ValueError(
            f"Invalid stratify column {unknown[0]!r}. Only {', '.join(EXTRA_STRATA)} are supported."
        )
    # fillna first: under pandas 3 astype(str) keeps a missing cell as NaN (no stratum at all).
    key = items["label"].fillna("").astype(str)
    for col in stratify:
        key = key + "|" + items[col].fillna("").astype(str)
    return key


def assign_splits(
    items: pd.DataFrame,
    ratios: Sequence[float],
    rng: np.random.Generator,
    stratify: Sequence[str] = (),
) -> pd.Series:
    """Split name (train/val/test) per item, index aligned; every group lands in one split.

    Per stratum (label, plus `stratify` columns) item quotas come from `allocate`. Groups are
    visited rarest stratum first, then largest first, then in seeded random order (names sorted
    before shuffling); each goes to the split where it overshoots its rarest stratum's quota
    least, then all quotas least, ties to the split with most room left. Raises ValueError
    when a class cannot reach every split with a positive ratio.
    """
    ratios = check_ratios(ratios)
    active = [k for k, r in enumerate(ratios) if r > 0]
    if items.empty:
        raise ValueError("No images to split.")
    s_codes, s_names = pd.factorize(strata_keys(items, stratify), sort=True)
    g_codes, g_names = pd.factorize(items["group"], sort=True)
    n_strata, n_groups = len(s_names), len(g_names)

    groups_per_label = items.groupby("label")["group"].nunique()
    for label in class_order(groups_per_label.index):
        if groups_per_label[label] < len(active):
            counts = allocate(int(groups_per_label[label]), ratios)
            empty = next(k for k in active if counts[k] == 0)
            raise _empty_split_error(SPLITS[empty], label, int(groups_per_label[label]), ratios)

    n_items = np.bincount(s_codes, minlength=n_strata)
    quota = [allocate(int(n), ratios) for n in n_items]  # quota[s][k]

    # (group, stratum) -> count, grouped by group for the loop below.
    cells = pd.DataFrame({"g": g_codes, "s": s_codes}).value_counts().sort_index()
    cell_g = cells.index.get_level_values("g").to_numpy()
    cell_s = cells.index.get_level_values("s").to_numpy().tolist()
    cell_c = cells.to_numpy().tolist()
    starts = np.searchsorted(cell_g, np.arange(n_groups + 1)).tolist()

    # Visit groups holding the rarest strata first (iterative stratification, Sechidis et al.
    # 2011), larger groups before smaller ones, otherwise in seeded random order: rare classes
    # get their share while common ones still have room to absorb rounding.
    rank = np.empty(n_strata, dtype=np.int64)
    rank[np.argsort(n_items, kind="stable")] = np.arange(n_strata)
    rarest = np.full(n_groups, n_strata, dtype=np.int64)
    np.minimum.at(rarest, g_codes, rank[s_codes])
    rare_stratum = np.argsort(rank)[rarest].tolist()
    sizes = np.bincount(g_codes, minlength=n_groups)
    order = rng.permutation(n_groups)
    order = order[np.lexsort((-sizes[order], rarest[order]))]

    filled = [[0] * n_strata for _ in SPLITS]
    choice = np.empty(n_groups, dtype=np.int64)
    for g in order.tolist():
        members = range(starts[g], starts[g + 1])
        rare = rare_stratum[g]
        best, best_key = active[0], None
        for k in active:
            over, over_rare, room = 0, 0, 0.0
            row = filled[k]
            for m in members:
                s, c = cell_s[m], cell_c[m]
                target = quota[s][k]
                excess = row[s] + c - target
                if excess > 0:
                    over += excess
                    if s == rare:
                        over_rare = excess
                room += (target - row[s]) / target if target else -1.0
            key = (over_rare, over, -room)
            if best_key is None or key < best_key:
                best, best_key = k, key
        choice[g] = best
        for m in members:
            filled[best][cell_s[m]] += cell_c[m]

    split = pd.Series(np.asarray(SPLITS, dtype=object)[choice[g_codes]], index=items.index)
    present = pd.crosstab(items["label"], split)
    for label in class_order(items["label"]):
        for k in active:
            if SPLITS[k] not in present.columns or present.loc[label, SPLITS[k]] == 0:
                raise _empty_split_error(SPLITS[k], label, int(groups_per_label[label]), ratios)
    return split


def count_table(frame: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Item counts: rows = classes (given order), columns = train/val/test."""
    table = pd.crosstab(frame["label"], frame["split"])
    return table.reindex(index=list(classes), columns=list(SPLITS), fill_value=0).astype(int)


def balance_splits(
    frame: pd.DataFrame,
    mode: str,
    rng: np.random.Generator,
    strata: pd.Series | None = None,
) -> tuple[pd.DataFrame, BalanceReport]:
    """Balance classes within each split (column `split`); rows never move between splits.

    undersample: keep a random min-class-count subset of every class (in proportion to the
    `strata` keys within the class, when given); oversample: repeat rows of smaller classes
    (whole copies, then a random subset) up to the largest class; weights: `weight` =
    n / (classes * n_class) per split (scikit-learn's "balanced"); none: as is.
    Input rows should be in a deterministic order (run_split sorts them by path).
    """
    if mode not in BALANCE_MODES:
        raise ValueError(
            f"Invalid balance {mode!r}. Only {', '.join(BALANCE_MODES)} are supported."
        )
    classes = class_order(frame["label"])
    frame = frame.assign(weight=1.0)
    report = BalanceReport(mode, count_table(frame, classes), count_table(frame, classes))
    if mode == "none":
        return frame, report
    parts = []
    for split in SPLITS:
        rows = frame[frame["split"] == split]
        if rows.empty:
            continue
        counts = rows["label"].value_counts()
        if mode == "weights":
            from sklearn.utils.class_weight import compute_class_weight

            labels = np.array([c for c in classes if c in counts.index])
            w = compute_class_weight("balanced", classes=labels, y=rows["label"].to_numpy())
            report.weights[split] = {str(c): float(v) for c, v in zip(labels, w, strict=True)}
            parts.append(rows.assign(weight=rows["label"].map(report.weights[split])))
            continue
        target = int(counts.min() if mode == "undersample" else counts.max())
        chosen = []
        for label in classes:
            members = rows[rows["label"] == label]
            n = len(members)
            if n == 0:
                continue
            if mode == "undersample" and strata is not None:
                picks = _proportional_sample(strata.loc[members.index], target, rng)
            elif mode == "undersample":
                picks = rng.choice(n, size=target, replace=False)
            else:
                # Whole copies first, so every image is repeated as evenly as possible.
                picks = np.concatenate(
                    [np.tile(np.arange(n), target // n), rng.choice(n, target % n, replace=False)]
                )
            chosen.append(members.iloc[np.sort(picks, kind="stable")])
        kept = pd.concat(chosen)
        if mode == "undersample":
            groups = rows["group"].drop_duplicates()
            report.groups_dropped[split] = int((~groups.isin(set(kept["group"]))).sum())
        parts.append(kept)
    out = pd.concat(parts) if parts else frame.iloc[:0]
    out = _in_order(out)
    report.after = count_table(out, classes)
    return out, report


def _proportional_sample(keys: pd.Series, size: int, rng: np.random.Generator) -> np.ndarray:
    # Positions of `size` of the rows, each key keeping its share (largest remainder).
    codes, _ = pd.factorize(keys, sort=True)
    counts = np.bincount(codes)
    take = allocate(size, counts / counts.sum())
    return np.concatenate(
        [rng.choice(np.flatnonzero(codes == j), t, replace=False) for j, t in enumerate(take)]
    )


def _in_order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = frame["split"].map({s: i for i, s in enumerate(SPLITS)})
    return (
        frame.assign(_rank=rank)
        .sort_values(["_rank", "abspath"], kind="stable")
        .drop(columns="_rank")
    )


def _check_out_dir(out_dir: Path, sources: Sequence[Source]) -> None:
    out = out_dir.resolve()
    for source in sources:
        root = source.root.resolve()
        if out == root or root in out.parents:
            raise ValueError(
                f"--out {out_dir} is inside source folder {source.root}; never write into an "
                "input tree: choose a folder outside it (default manifests/)."
            )


def _drop_missing(items: pd.DataFrame, sources, drop: bool) -> tuple[pd.DataFrame, list[str]]:
    kept, missing = [], []
    for source in sources:
        rows = items[items["source"] == source.name]
        where = (
            os.path.relpath(source.root / SYNTHESIS_CSV)
            if source.kind == "synthesis"
            else f"source {source.name}"
        )
        rows, gone = require_files(rows, where, drop)
        kept.append(rows)
        missing.extend(gone)
    return pd.concat(kept), missing


def _drop_special(items: pd.DataFrame, drop: bool) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Items whose file is a FIFO, device or socket (told by stat, never opened: a FIFO would
    block its reader) are unreadable, whether or not split reads the images: ValueError unless
    drop, else left out and returned as (path, reason)."""
    bad = [(p, why) for p in items["abspath"].unique() if (why := not_regular(p))]
    if bad and not drop:
        raise ValueError(unreadable_message(bad, items["abspath"].nunique(), "the sources"))
    return items[~items["abspath"].isin({p for p, _ in bad})], bad


def run_split(
    sources: Sequence[Source],
    out_dir: Path,
    options: SplitOptions | None = None,
    progress: bool | None = None,
) -> SplitResult:
    """Collect items of `sources`, split them leak-free, balance, and write into `out_dir`:
    train/val/test.csv, stats.json (train mean/std) and split_report.md.

    Raises ValueError / FileNotFoundError with a one-line reason for bad input.
    """
    options = options or SplitOptions()
    out_dir = Path(out_dir)
    ratios = check_ratios(options.ratios)
    if options.balance not in BALANCE_MODES:
        raise ValueError(
            f"Invalid balance {options.balance!r}. Only {', '.join(BALANCE_MODES)} are supported."
        )
    if not sources:
        raise ValueError("No source folder given.")
    _check_out_dir(out_dir, sources)
    # Held from here to the end: a second command on out_dir is refused before it writes.
    with output_folder(out_dir, "split"):
        return _split_into(out_dir, sources, options, ratios, progress)


def _split_into(
    out_dir: Path,
    sources: Sequence[Source],
    options: SplitOptions,
    ratios: tuple[float, float, float],
    progress: bool | None,
) -> SplitResult:
    """run_split's work once out_dir is held: collect, split, balance, write."""
    split_ss, balance_ss = np.random.SeedSequence(options.seed).spawn(2)

    collected: Collected = collect_sources(list(sources), options.class_map)
    items, missing = _drop_missing(collected.items, sources, options.drop_missing)
    items, unreadable = _drop_special(items, options.drop_missing)
    strata_keys(items, options.stratify)  # validate names before the slow part

    duplicates = None
    if options.dup_threshold is not None:
        groups, duplicates = find_duplicates(
            items, options.dup_threshold, workers=options.workers, progress=progress
        )
        items = items.assign(group=groups)
        if duplicates.unreadable:
            if not options.drop_missing:
                raise ValueError(
                    unreadable_message(
                        duplicates.unreadable,
                        duplicates.hashed + len(duplicates.unreadable),
                        "the sources",
                    )
                )
            unreadable.extend(duplicates.unreadable)
            items = items[~items["abspath"].isin({p for p, _ in duplicates.unreadable})]

    items = items.sort_values("abspath", kind="stable").reset_index(drop=True)
    split = assign_splits(items, ratios, np.random.default_rng(split_ss), options.stratify)
    frame, balance = balance_splits(
        items.assign(split=split),
        options.balance,
        np.random.default_rng(balance_ss),
        strata_keys(items, options.stratify) if options.stratify else None,
    )
    classes = class_order(items["label"])

    stats = None
    if options.stats:
        train_paths = frame.loc[frame["split"] == "train", "abspath"]
        stats = channel_stats(train_paths, options.size, options.workers, progress)
        if stats.unreadable:
            if not options.drop_missing:
                raise ValueError(
                    unreadable_message(stats.unreadable, train_paths.nunique(), "the train split")
                )
            unreadable.extend(stats.unreadable)
            frame = frame[~frame["abspath"].isin({p for p, _ in stats.unreadable})]

    files, manifests = [], {}
    for name in SPLITS:
        rows = frame.loc[frame["split"] == name, ["abspath", *MANIFEST_COLUMNS[1:]]]
        write_manifest(rows, out_dir / f"{name}.csv")
        manifests[name] = rows
        files.append(out_dir / f"{name}.csv")
    stats_path = out_dir / STATS_NAME
    if stats is not None:
        record = stats_record(stats, "train.csv", file_sha256(out_dir / "train.csv"), classes)
        write_stats_json(stats_path, record)
        files.append(stats_path)
    elif stats_path.exists():
        # A stats.json left from an earlier split would describe another train.csv.
        stats_path.unlink()

    result = SplitResult(
        out_dir=out_dir,
        files=files,
        manifests=manifests,
        balance=balance,
        duplicates=duplicates,
        stats=stats,
        sources=[(s, s.kind, int((collected.items["source"] == s.name).sum())) for s in sources],
        skipped=collected.skipped,
        missing=missing,
        unreadable=unreadable,
        notes=collected.notes,
        classes=classes,
    )
    atomic_write_text(out_dir / REPORT_NAME, render_report(result, options, ratios))
    files.append(out_dir / REPORT_NAME)
    return result
