"""Near-duplicates: perceptual hashes of real photo copies, exact pair search, group merging."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import maskforge.core.parallel as parallel
import maskforge.dataset.duplicates as duplicates
from maskforge.core.imageio import read_image
from maskforge.dataset.duplicates import (
    find_duplicates,
    hash_images,
    merged_groups,
    near_duplicate_pairs,
    phash_bits,
)


@pytest.fixture(scope="module")
def faces(portraits_dir) -> list[Path]:
    """12 of the shipped portraits: real photos of 12 different people."""
    return sorted(portraits_dir.glob("*.jpg"))[:12]


def test_resized_and_recompressed_copies_hash_close(tmp_path, faces, copies_of):
    original = phash_bits(read_image(faces[0]))
    for copy in copies_of(faces[0], tmp_path):
        distance = (original ^ phash_bits(read_image(copy))).bit_count()
        assert distance <= 4, copy.name
    # Different people are far apart (these photos are known distinct).
    others = [phash_bits(read_image(f)) for f in faces[1:]]
    assert min((original ^ h).bit_count() for h in others) > 4


def test_pair_search_is_exact_across_blocks(monkeypatch, rng):
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    # Plant near copies at known distances: flip d bits of some hashes.
    hashes = list(base)
    planted = {}
    for d, src in [(0, 5), (1, 17), (3, 100), (4, 250), (5, 42)]:
        flipped = int(base[src])
        for bit in rng.choice(64, size=d, replace=False):
            flipped ^= 1 << int(bit)
        planted[(src, len(hashes))] = d
        hashes.append(np.uint64(flipped))
    hashes = np.array(hashes, dtype=np.uint64)
    # Tiny blocks so the search crosses many block boundaries.
    monkeypatch.setattr(duplicates, "_PAIR_BLOCK_ELEMENTS", 700)
    found = near_duplicate_pairs(hashes, 4)
    expected = [
        (i, j)
        for i, j in combinations(range(len(hashes)), 2)
        if (int(hashes[i]) ^ int(hashes[j])).bit_count() <= 4
    ]
    assert sorted(map(tuple, found.tolist())) == expected
    assert {(s, c) for (s, c), d in planted.items() if d <= 4} <= set(expected)
    assert (42, 304) not in set(expected)  # the 5-bit copy is beyond the threshold


def test_merged_groups_are_transitive_and_named_by_smallest():
    groups = ["g3", "g1", "g2", "g1", "g4", "g5"]
    # item 0 (g3) ~ item 2 (g2); item 2 shares nothing else; item 4 (g4) ~ item 3 (g1).
    pairs = np.array([[0, 2], [4, 3]])
    assert list(merged_groups(groups, pairs)) == ["g2", "g1", "g2", "g1", "g1", "g5"]
    assert list(merged_groups(groups, np.zeros((0, 2), dtype=np.int64))) == groups


def test_find_duplicates_merges_copies_and_reports_them(tmp_path, faces, copies_of):
    copies = copies_of(faces[0], tmp_path / "copies")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    # The recompressed copy is labelled differently: a labelling mistake to report.
    rows = [(str(p), "masked", f"s:{p.name}", "photo") for p in copies[:3]]
    rows.append((str(copies[3]), "unmasked", "s:recompressed.jpg", "photo"))
    rows += [(str(p), "unmasked", f"s:{p.name}", "photo") for p in faces[1:6]]
    rows += [
        (str(faces[6]), "unmasked", "s:pair", "original"),
        (str(tmp_path / "masked.jpg"), "masked", "s:pair", "output"),  # not hashed, no file
        (str(tmp_path / "broken.jpg"), "unmasked", "s:broken", "photo"),
    ]
    items = pd.DataFrame(rows, columns=["abspath", "label", "group", "kind"])
    groups, report = find_duplicates(items, threshold=4)
    merged = groups.iloc[:4]
    assert merged.nunique() == 1 and merged.iloc[0] == "s:big.png"
    assert groups.iloc[4:].tolist() == items["group"].iloc[4:].tolist()
    assert report.hashed == 10 and len(report.pairs) == 6  # all pairs among the 4 copies
    assert report.groups_before == 11 and report.groups_after == 8
    assert [Path(p).name for p, _ in report.unreadable] == ["broken.jpg"]
    assert all(d <= 4 for _, _, d in report.pairs)
    assert len(report.conflicts) == 3
    for a, label_a, b, label_b in report.conflicts:
        labels = {Path(a).name: label_a, Path(b).name: label_b}
        assert labels.pop("recompressed.jpg") == "unmasked"
        assert list(labels.values()) == ["masked"]


def test_hash_images_with_workers_matches_in_process(faces, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_POOL_ITEMS", 0)
    paths = [str(p) for p in faces] * 6  # 72 paths: two chunks
    one, _ = hash_images(paths, workers=1)
    two, _ = hash_images(paths, workers=2)
    np.testing.assert_array_equal(one, two)
    assert int(one[0]) == phash_bits(read_image(faces[0]))


def test_threshold_out_of_range():
    items = pd.DataFrame(columns=["abspath", "label", "group", "kind"])
    with pytest.raises(ValueError, match="must be 0..64"):
        find_duplicates(items, threshold=65)
