"""Collect labelled images from sources: synthesize output folders and class-per-subfolder trees.

Every item is one row of an items frame with the columns
`abspath, label, group, source, mask_type, wear, kind`, where `kind` says what the image is
(`output`, `original` or `negative` for a synthesize folder, `photo` for a folder tree) and
groups are prefixed with the source name so that two sources never share a group by accident.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from maskforge.core.imageio import is_image_path, iter_image_files
from maskforge.synth.run.records import CSV_NAME as SYNTHESIS_CSV
from maskforge.synth.run.records import read_synthesis_table

ITEM_COLUMNS = ("abspath", "label", "group", "source", "mask_type", "wear", "kind")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Columns of synthesis.csv this module reads; the others are informational.
SYNTHESIS_REQUIRED = ("status", "label", "output", "original")
SYNTHESIS_OPTIONAL = ("negative", "group", "input", "mask_type", "wear")


@dataclass(frozen=True)
class Source:
    """A folder of labelled images and the name its items are tagged with."""

    name: str
    root: Path

    @property
    def kind(self) -> str:
        """`synthesis` for a folder holding synthesis.csv, else `folders` (class per subfolder)."""
        return "synthesis" if (self.root / SYNTHESIS_CSV).is_file() else "folders"


@dataclass
class Collected:
    """Items of all sources plus what was skipped, for the report."""

    items: pd.DataFrame
    # source name -> {reason: count} of inputs that yielded nothing (e.g. status no_face).
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_source(spec: str) -> Source:
    """`FOLDER` or `NAME=FOLDER` -> Source (name defaults to the folder's name).

    Raises ValueError / FileNotFoundError / NotADirectoryError with a one-line reason.
    """
    name, folder = None, spec
    # A folder whose own name holds "=" is taken as a folder, not NAME=FOLDER.
    if "=" in spec and not Path(spec).exists():
        name, folder = spec.split("=", 1)
        if not SOURCE_NAME.match(name):
            raise ValueError(
                f"Invalid source name {name!r} in {spec!r}: use letters, digits, '_', '-', '.'"
            )
    if not folder:
        raise ValueError(f"Source {spec!r} names no folder; use NAME=FOLDER or FOLDER.")
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"Source folder {folder} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"Source {folder} is not a folder.")
    if name is None:
        name = root.resolve().name or "root"
        if not SOURCE_NAME.match(name):
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-") or "source"
    return Source(name, root)


def parse_class_map(text: str) -> dict[str, str]:
    """'with_mask=masked,without_mask=unmasked' -> {found name: label}.

    Raises ValueError for an entry without '=', an empty side, or a name mapped twice.
    """
    mapping: dict[str, str] = {}
    for entry in (e.strip() for e in str(text).split(",")):
        if not entry:
            continue
        found, sep, label = (part.strip() for part in entry.partition("="))
        if not sep or not found or not label:
            raise ValueError(
                f"Invalid class map entry {entry!r}: expected FOUND=LABEL, "
                "e.g. with_mask=masked,without_mask=unmasked."
            )
        if found in mapping:
            raise ValueError(f"Invalid class map: {found!r} is mapped twice.")
        mapping[found] = label
    if not mapping:
        raise ValueError("Invalid class map: empty; expected FOUND=LABEL[,FOUND=LABEL...].")
    return mapping


def _synthesis_frame(csv_path: Path) -> pd.DataFrame:
    df = read_synthesis_table(csv_path, SYNTHESIS_REQUIRED)
    if "group" not in df.columns and "input" not in df.columns:
        raise ValueError(f"{csv_path} has neither a group nor an input column.")
    return df


def synthesis_items(table: pd.DataFrame, root: Path, source: str) -> tuple[pd.DataFrame, dict]:
    """Items from a synthesis.csv table (docs/formats.md) whose paths are relative to root.

    Each ok row yields its `output` (label from `label`), its `original` (unmasked) and its
    `negative` (unmasked) when present; all share the row's `group` (else its `input`).
    Returns (items, {status: count} of rows that yielded nothing). No file is touched.
    """
    table = table.assign(**{c: "" for c in SYNTHESIS_OPTIONAL if c not in table.columns})
    status = table["status"].str.strip()
    ok = table[status == "ok"]
    skipped = Counter(status[status != "ok"].replace("", "no status"))
    no_output = ok["output"] == ""
    if no_output.any():
        skipped["ok without output"] += int(no_output.sum())
        ok = ok[~no_output]
    if (ok["label"] == "").any():
        row = int(ok.index[ok["label"] == ""][0]) + 2
        raise ValueError(f"{root / SYNTHESIS_CSV} line {row}: an ok row has an empty label.")
    group = ok["group"].where(ok["group"] != "", ok["input"])
    if (group == "").any():
        row = int(ok.index[group == ""][0]) + 2
        raise ValueError(f"{root / SYNTHESIS_CSV} line {row}: an ok row has no group and no input.")
    group = source + ":" + group
    empty = pd.Series("", index=ok.index)
    parts = [
        pd.DataFrame(
            {
                "rel": ok["output"],
                "label": ok["label"],
                "group": group,
                "mask_type": ok["mask_type"],
                "wear": ok["wear"],
                "kind": "output",
            }
        ),
        pd.DataFrame(
            {
                "rel": ok["original"],
                "label": "unmasked",
                "group": group,
                "mask_type": empty,
                "wear": empty,
                "kind": "original",
            }
        ),
        pd.DataFrame(
            {
                "rel": ok["negative"],
                "label": "unmasked",
                "group": group,
                "mask_type": empty,
                "wear": empty,
                "kind": "negative",
            }
        ),
    ]
    items = pd.concat(parts, ignore_index=True)
    items = items[items["rel"] != ""]
    base = str(root)
    items.insert(0, "abspath", [os.path.normpath(os.path.join(base, r)) for r in items["rel"]])
    items["source"] = source
    items = _unique_paths(items.drop(columns="rel"), f"{root / SYNTHESIS_CSV}")
    return items[list(ITEM_COLUMNS)].reset_index(drop=True), dict(skipped)


def _unique_paths(items: pd.DataFrame, where: str) -> pd.DataFrame:
    # One face's original can be listed on several rows (e.g. --full-frame): keep it once,
    # but one image with two labels is a contradiction the user has to resolve.
    labels = items.groupby("abspath", sort=False)["label"].nunique()
    if (labels > 1).any():
        path = labels.index[labels > 1][0]
        found = sorted(set(items.loc[items["abspath"] == path, "label"]))
        raise ValueError(f"{where} lists {path} with two labels ({', '.join(found)}).")
    return items.drop_duplicates("abspath", keep="first")


def collect_synthesis(source: Source) -> tuple[pd.DataFrame, dict]:
    """Items of a synthesize output folder (reads synthesis.csv; see synthesis_items)."""
    table = _synthesis_frame(source.root / SYNTHESIS_CSV)
    return synthesis_items(table, source.root.resolve(), source.name)


def collect_folders(source: Source) -> tuple[pd.DataFrame, list[str]]:
    """Items of a class-per-subfolder tree: each top-level subfolder is a class.

    Images anywhere below a class folder take its name as label; a folder with images but no
    class subfolders is a single class named after the folder. Returns (items, notes).
    """
    root = source.root.resolve()
    notes: list[str] = []
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    # Not is_file(): a FIFO or a dangling link named like a photo is listed (as iter_image_files
    # lists them in class folders), so that split reports it instead of dropping it unsaid.
    loose = sorted(p for p in root.iterdir() if not p.is_dir() and not p.name.startswith("."))
    rows = []
    classes_with_images = 0
    for sub in subdirs:
        files = list(iter_image_files(sub))
        if not files:
            notes.append(f"{source.name}: folder {sub.name}/ has no images, ignored")
            continue
        classes_with_images += 1
        rows.extend((str(f), sub.name, f.relative_to(root).as_posix()) for f in files)
    loose_images = [p for p in loose if is_image_path(p)]
    if classes_with_images == 0:
        if not loose_images:
            raise ValueError(
                f"Source {source.name} ({source.root}) has no images: expected synthesis.csv, "
                "class subfolders (e.g. with_mask/, without_mask/) or images."
            )
        rows = [(str(p), root.name, p.name) for p in loose_images]
    elif loose_images:
        notes.append(
            f"{source.name}: {len(loose_images)} image(s) directly in {source.root} ignored "
            "(not in a class subfolder)"
        )
    items = pd.DataFrame(rows, columns=["abspath", "label", "rel"])
    items["group"] = source.name + ":" + items["rel"]
    items["source"] = source.name
    items["mask_type"] = ""
    items["wear"] = ""
    items["kind"] = "photo"
    return items[list(ITEM_COLUMNS)], notes


def collect_sources(sources: list[Source], class_map: dict[str, str] | None = None) -> Collected:
    """Items of all sources, labels renamed by class_map ({found label: new label}).

    Raises ValueError for duplicate source names, a class_map key that names no class folder
    or label in any source, an image in two sources, or no items at all.
    """
    class_map = dict(class_map or {})
    names = Counter(s.name for s in sources)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise ValueError(
            f"Two sources are named {dup[0]!r}; name them apart, e.g. a={dup[0]}/ b=other/."
        )
    frames, skipped, notes = [], {}, []
    for source in sources:
        if source.kind == "synthesis":
            items, source_skipped = collect_synthesis(source)
            if source_skipped:
                skipped[source.name] = source_skipped
        else:
            items, source_notes = collect_folders(source)
            notes.extend(source_notes)
        if items.empty:
            raise ValueError(f"Source {source.name} ({source.root}) yielded no images.")
        frames.append(items)
    items = pd.concat(frames, ignore_index=True)
    found = set(items["label"])
    unknown = sorted(set(class_map) - found)
    if unknown:
        raise ValueError(
            f"--class-map names {', '.join(unknown)}, which is not a class folder or label in "
            f"any source (found: {', '.join(sorted(found))})."
        )
    if class_map:
        items["label"] = items["label"].replace(class_map)
    shared = items["abspath"].duplicated(keep=False)
    if shared.any():
        path = items.loc[shared, "abspath"].iloc[0]
        owners = sorted(set(items.loc[items["abspath"] == path, "source"]))
        raise ValueError(
            f"Image {path} is in sources {', '.join(owners)}; give folders that do not overlap."
        )
    return Collected(items, skipped, notes)
