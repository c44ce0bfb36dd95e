"""split_report.md: what `split` did, as a table of sections over its SplitResult.

Each section is a function of (result, options, ratios) that returns its lines; `render_report`
writes the title, then each section of SECTIONS as `## title` and its lines. Paths are shown
relative to the working folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from maskforge import __version__
from maskforge.choices import SPLITS
from maskforge.dataset.split_types import SplitOptions, SplitResult

MAX_LISTED = 50  # rows of a report listing (duplicate pairs, missing files)

Section = Callable[[SplitResult, SplitOptions, Sequence[float]], list[str]]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _count_rows(table: pd.DataFrame) -> list[list]:
    rows = [
        [label, *table.loc[label].tolist(), int(table.loc[label].sum())] for label in table.index
    ]
    rows.append(["**total**", *table.sum().astype(int).tolist(), int(table.to_numpy().sum())])
    return rows


def _rel(path: str | Path) -> str:
    return Path(os.path.relpath(path)).as_posix()


def _settings(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    settings = [
        [
            "sources",
            ", ".join(f"{s.name} ({kind}, {_rel(s.root)}/)" for s, kind, _ in result.sources),
        ],
        ["ratios", ", ".join(f"{n} {r:g}" for n, r in zip(SPLITS, ratios, strict=True))],
        ["seed", options.seed],
        ["stratified by", ", ".join(["class", *options.stratify])],
        ["balance", options.balance],
        [
            "near-duplicates",
            "off"
            if options.dup_threshold is None
            else f"phash (64 bits), Hamming distance <= {options.dup_threshold}",
        ],
        ["class map", ", ".join(f"{k}={v}" for k, v in options.class_map.items()) or "none"],
        ["stats", f"{options.size} x {options.size} px" if options.stats else "off"],
        ["missing/unreadable files", "left out" if options.drop_missing else "error"],
    ]
    return [_md_table(["setting", "value"], settings), ""]


def _sources(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    out = [
        _md_table(
            ["source", "kind", "folder", "images"],
            [[s.name, kind, f"{_rel(s.root)}/", n] for s, kind, n in result.sources],
        )
    ]
    for name, counts in result.skipped.items():
        listed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        out.append(f"\n{name}: synthesis.csv rows that yielded no image: {listed}.")
    out += [f"\nNote: {note}." for note in result.notes]
    return [*out, ""]


def _counts(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    """Counts per split and class after balancing (and before), then per mask type and source."""
    out = [_md_table(["class", *SPLITS, "total"], _count_rows(result.balance.after)), ""]
    if options.balance != "none":
        out += ["Before balancing:\n"]
        out += [_md_table(["class", *SPLITS, "total"], _count_rows(result.balance.before)), ""]
    rows_all = pd.concat([df.assign(split=k) for k, df in result.manifests.items()])
    return out + _per_mask_type(result, rows_all) + _per_source(result, rows_all)


def _per_mask_type(result: SplitResult, rows_all: pd.DataFrame) -> list[str]:
    if not (rows_all["mask_type"] != "").any():
        return []
    table = pd.crosstab([rows_all["label"], rows_all["mask_type"]], rows_all["split"])
    table = table.reindex(columns=list(SPLITS), fill_value=0)
    order = {c: i for i, c in enumerate(result.classes)}
    keys = sorted(table.index, key=lambda k: (order.get(k[0], 99), k[1]))
    rows = [[lab, mt or "-", *table.loc[(lab, mt)].tolist()] for lab, mt in keys]
    return ["### Per class and mask type\n", _md_table(["class", "mask type", *SPLITS], rows), ""]


def _per_source(result: SplitResult, rows_all: pd.DataFrame) -> list[str]:
    if len(result.sources) <= 1:
        return []
    table = pd.crosstab([rows_all["source"], rows_all["label"]], rows_all["split"])
    table = table.reindex(columns=list(SPLITS), fill_value=0)
    rows = [[src, lab, *table.loc[(src, lab)].tolist()] for src, lab in table.index]
    return ["### Per source and class\n", _md_table(["source", "class", *SPLITS], rows), ""]


def _near_duplicates(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    dup = result.duplicates
    if dup is None:
        return ["Not searched (--no-dedup).", ""]
    out = [
        f"{dup.hashed} images hashed (originals of synthetic pairs and folder photos); "
        f"{len(dup.pairs)} pairs within {dup.threshold} bits; groups {dup.groups_before} -> "
        f"{dup.groups_after} ({dup.groups_before - dup.groups_after} merged).\n"
    ]
    if dup.pairs:
        rows = [[_rel(a), _rel(b), d] for a, b, d in dup.pairs[:MAX_LISTED]]
        out.append(_md_table(["image", "near-duplicate of", "distance"], rows))
        if len(dup.pairs) > MAX_LISTED:
            out.append(f"\n... and {len(dup.pairs) - MAX_LISTED} more pairs.")
    if dup.conflicts:
        out.append(
            f"\n{len(dup.conflicts)} near-duplicate pairs carry different labels; check "
            "these images (they stay in one split, each with its own label):\n"
        )
        rows = [[_rel(a), la, _rel(b), lb] for a, la, b, lb in dup.conflicts[:MAX_LISTED]]
        out.append(_md_table(["image", "label", "near-duplicate", "label"], rows))
    return [*out, ""]


def _balancing(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    bal = result.balance
    if bal.mode in ("undersample", "oversample"):
        diff = bal.after - bal.before
        verb = "dropped" if bal.mode == "undersample" else "added (repeated rows)"
        rows = [[label, *(abs(v) for v in diff.loc[label].tolist())] for label in diff.index]
        out = [f"Images {verb} per split:\n", _md_table(["class", *SPLITS], rows), ""]
        if bal.mode == "undersample":
            dropped = ", ".join(f"{k} {v}" for k, v in bal.groups_dropped.items())
            out += [f"Groups dropped entirely (no image left): {dropped or 'none'}.", ""]
        return out
    if bal.mode == "weights":
        rows = [
            [s, *(f"{w[c]:.4f}" if c in w else "-" for c in result.classes)]
            for s, w in bal.weights.items()
        ]
        return ["Sample weight per class:\n", _md_table(["split", *result.classes], rows), ""]
    return ["None.", ""]


def _left_out(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    left = [(p, "missing") for p in result.missing] + list(result.unreadable)
    if not left:
        return ["Nothing: every listed image exists and could be read.", ""]
    return [
        f"{len(result.missing)} missing, {len(result.unreadable)} unreadable:\n",
        _md_table(["image", "reason"], [[_rel(p), r] for p, r in left[:MAX_LISTED]]),
        "",
    ]


def _train_statistics(result: SplitResult, options: SplitOptions, ratios) -> list[str]:
    st = result.stats
    if st is None:
        return ["Not computed (--no-stats).", ""]
    mean = ", ".join(f"{v:.4f}" for v in st.mean)
    std = ", ".join(f"{v:.4f}" for v in st.std)
    return [
        f"Mean (R, G, B) {mean}; std {std}; over {st.count} train rows resized to "
        f"{st.size} x {st.size}, values 0..1 (stats.json).",
        "",
    ]


# (title, section); {balance} in a title is the balance mode.
SECTIONS: tuple[tuple[str, Section], ...] = (
    ("Settings", _settings),
    ("Sources", _sources),
    ("Counts per split and class (balance: {balance})", _counts),
    ("Near-duplicates", _near_duplicates),
    ("Balancing", _balancing),
    ("Left out", _left_out),
    ("Train statistics", _train_statistics),
)


def render_report(result: SplitResult, options: SplitOptions, ratios: Sequence[float]) -> str:
    """split_report.md: settings, sources, counts per split x class (x mask type), duplicates,
    balancing, files left out, train statistics. ratios: the (train, val, test) used."""
    out = [f"# Split report\n\nWritten by maskforge {__version__} `split`.\n"]
    for title, section in SECTIONS:
        out += [f"## {title.format(balance=options.balance)}\n", *section(result, options, ratios)]
    return "\n".join(out)
