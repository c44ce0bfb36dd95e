"""Near-duplicate photos by perceptual hash (imagehash.phash), merged into one group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from maskforge.core.imageio import ImageTooLargeError, UnreadableImageError, read_image
from maskforge.core.parallel import chunked, map_chunks

HASH_BITS = 64  # phash with hash_size 8
HASH_CHUNK_SIZE = 64  # images per task of the hashing pool
# Brute-force comparison works on blocks of rows x all hashes; this bounds its memory (~40 MB).
_PAIR_BLOCK_ELEMENTS = 4_000_000
# Which items are hashed: a synthetic output and its hard negative are made from the original
# crop and already share its group, so hashing the original covers the whole group.
HASHED_KINDS = ("original", "photo")


def phash_bits(image: np.ndarray) -> int:
    """64-bit perceptual hash (imagehash.phash) of an RGB uint8 (H, W, 3) image, as an int."""
    bits = imagehash.phash(Image.fromarray(image)).hash.reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _hash_chunk(paths: list[str]) -> list[tuple[str, int | None, str]]:
    out = []
    for path in paths:
        try:
            out.append((path, phash_bits(read_image(path)), ""))
        except (UnreadableImageError, ImageTooLargeError) as exc:
            out.append((path, None, str(exc)))
    return out


def hash_images(
    paths: Sequence[str], workers: int = 1, progress: bool | None = None
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Perceptual hashes of images: (uint64 (N,) in path order, [(path, reason)] unreadable).

    Unreadable images get hash 0 and are listed; the caller decides what to do with them.
    """
    chunks = chunked(list(paths), HASH_CHUNK_SIZE)
    hashes = np.zeros(len(paths), dtype=np.uint64)
    bad: list[tuple[str, str]] = []
    i = 0
    for result in map_chunks(
        _hash_chunk,
        chunks,
        [len(c) for c in chunks],
        workers=workers,
        desc="hash",
        progress=progress,
    ):
        for path, value, reason in result:
            if value is None:
                bad.append((path, reason))
            else:
                hashes[i] = value
            i += 1
    return hashes, bad


def near_duplicate_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """Index pairs (i < j), int64 (P, 2), whose Hamming distance is <= threshold.

    Exact brute force over blocks of rows: N^2/2 popcounts in bounded memory (timings in
    benchmarks/split.py). An index (BK-tree, multi-index hashing) would only pay off far
    beyond the image counts whose hashing itself is affordable.
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    rows = max(1, _PAIR_BLOCK_ELEMENTS // max(n, 1))
    found = []
    for start in range(0, n, rows):
        block = h[start : start + rows]
        # Compare only against later hashes: the upper triangle, so each pair appears once.
        dist = np.bitwise_count(block[:, None] ^ h[None, start:])
        ii, jj = np.nonzero(dist <= threshold)
        jj += start
        ii += start
        keep = jj > ii
        found.append(np.stack([ii[keep], jj[keep]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


def merged_groups(groups: Sequence[str], pairs: np.ndarray) -> np.ndarray:
    """New group per item: items linked by a pair or sharing a group form one group.

    groups: (N,) names; pairs: (P, 2) item indices. A merged group is named after its
    smallest member group name, so the result does not depend on item order.
    """
    names, codes = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    if len(pairs) == 0:
        return names[codes]
    a, b = codes[pairs[:, 0]], codes[pairs[:, 1]]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(names), len(names)))
    _, component = connected_components(graph, directed=False)
    # names are sorted, so the first name seen per component is its smallest.
    first = pd.Series(np.arange(len(names))).groupby(component).transform("min").to_numpy()
    return names[first[codes]]


@dataclass(frozen=True)
class DuplicateReport:
    """What near-duplicate detection found."""

    threshold: int
    hashed: int
    pairs: tuple[tuple[str, str, int], ...]  # (path a, path b, distance), a < b
    groups_before: int
    groups_after: int
    unreadable: tuple[tuple[str, str], ...]
    # Pairs whose two images carry different labels: likely labelling mistakes.
    conflicts: tuple[tuple[str, str, str, str], ...] = ()  # (path a, label a, path b, label b)


def find_duplicates(
    items: pd.DataFrame, threshold: int, workers: int = 1, progress: bool | None = None
) -> tuple[pd.Series, DuplicateReport]:
    """Merged `group` per item (index aligned) after joining near-duplicate photos.

    Hashes the items whose `kind` is in HASHED_KINDS; pairs within `threshold` bits join
    their groups. Unreadable images are reported, not linked.
    """
    if not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"Invalid duplicate threshold {threshold}: must be 0..{HASH_BITS} bits.")
    hashed = items[items["kind"].isin(HASHED_KINDS)].sort_values("abspath")
    paths = hashed["abspath"].tolist()
    hashes, bad = hash_images(paths, workers=workers, progress=progress)
    readable = np.ones(len(paths), dtype=bool)
    bad_set = {p for p, _ in bad}
    readable[[i for i, p in enumerate(paths) if p in bad_set]] = False
    index = np.flatnonzero(readable)
    pairs = index[near_duplicate_pairs(hashes[index], threshold)] if len(index) else index
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    position = pd.Series(np.arange(len(items)), index=items.index)
    item_pairs = position.loc[hashed.index].to_numpy()[pairs] if len(pairs) else pairs
    new = pd.Series(merged_groups(items["group"].tolist(), item_pairs), index=items.index)
    listed = tuple(
        sorted((paths[i], paths[j], int(np.bitwise_count(hashes[i] ^ hashes[j]))) for i, j in pairs)
    )
    labels = hashed["label"].to_numpy()
    conflicts = tuple(
        sorted(
            (paths[i], str(labels[i]), paths[j], str(labels[j]))
            for i, j in pairs
            if labels[i] != labels[j]
        )
    )
    report = DuplicateReport(
        threshold=threshold,
        hashed=len(paths) - len(bad),
        pairs=listed,
        groups_before=items["group"].nunique(),
        groups_after=new.nunique(),
        unreadable=tuple(bad),
        conflicts=conflicts,
    )
    return new, report
