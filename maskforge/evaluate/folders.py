"""Label a folder of photos for evaluation: a manifest-like frame from the folder's layout."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from maskforge.core.imageio import iter_image_files


def folder_frame(
    folder: Path, labels: Sequence[str] | str | None, classes: list[str]
) -> tuple[pd.DataFrame, str]:
    """A manifest-like frame of a folder's images and a note on how labels were assigned.

    labels: ["CLASS"] gives every image under folder (recursively) that class;
    ["SUBFOLDER=CLASS", ...] labels the images of each named subfolder; None or [] takes the
    subfolders named after the model's classes (other subfolders are ignored). `source` is
    the folder's name, or folder/subfolder with subfolders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"Not a folder: {folder}")
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    pairs = [x.split("=", 1) for x in labels if "=" in x]
    if (pairs and len(pairs) != len(labels)) or (len(labels) > 1 and not pairs):
        raise ValueError(
            f"Invalid --label {', '.join(labels)}: give one CLASS, or SUBFOLDER=CLASS pairs."
        )
    for cls in [x for x in labels if "=" not in x] + [c for _, c in pairs]:
        if cls not in classes:
            raise ValueError(
                f"Invalid label {cls!r}. The model's classes are {', '.join(classes)}."
            )
    top = Path(os.path.abspath(folder)).name  # as given: a link's own name, not its target's
    rows: list[tuple[Path, str, str]] = []
    if labels and not pairs:
        rows = [(p, labels[0], top) for p in iter_image_files(folder)]
        note = f"all images labelled {labels[0]!r}"
    else:
        subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")
        mapping = dict(pairs) if pairs else {d: d for d in subdirs if d in classes}
        missing = [d for d in mapping if d not in subdirs]
        if missing:
            raise ValueError(f"{folder} has no subfolder {', '.join(missing)}.")
        if not mapping:
            raise ValueError(
                f"{folder} has no subfolder named after the model's classes "
                f"({', '.join(classes)}); pass --label CLASS to give all its images one class, "
                "or --label SUBFOLDER=CLASS for each subfolder."
            )
        for sub, cls in mapping.items():
            rows += [(p, cls, f"{top}/{sub}") for p in iter_image_files(folder / sub)]
        note = "labels " + ", ".join(f"{sub}/ = {cls}" for sub, cls in mapping.items())
        ignored = [d for d in subdirs if d not in mapping]
        if ignored:
            note += f" (ignored subfolders: {', '.join(ignored)})"
    if not rows:
        raise ValueError(f"No images found in {folder}.")
    # Not resolved: a folder of symlinks to photos elsewhere keeps its own relative paths.
    root = folder.absolute()
    frame = pd.DataFrame(
        {
            "path": [Path(p).absolute().relative_to(root).as_posix() for p, _, _ in rows],
            "label": [lab for _, lab, _ in rows],
            "source": [src for _, _, src in rows],
            "abspath": [str(Path(p).absolute()) for p, _, _ in rows],
        }
    )
    frame["group"] = frame["path"]
    return frame, note
