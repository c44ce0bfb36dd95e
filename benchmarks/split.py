"""Benchmark `maskforge split` at scale on synthetic tables (no images): time and peak memory.

Builds a synthesis.csv-like table yielding about N manifest rows (multi-face photos, hard
negatives, three mask types), writes it to a temporary folder, then times each stage of a
split: reading and collecting items, the near-duplicate pair search (on synthetic 64-bit
hashes of the originals, with planted near-copies), merging groups, the group-aware split
(plain and stratified by mask type), each balance mode and writing the manifests. Image
hashing and stats are per-image work (optionally timed on real photos with --real).

    python benchmarks/split.py                       # N = 10,000 and 100,000, side by side
    python benchmarks/split.py --rows 100000 --real 300 --json out.json
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import harness
import numpy as np
import pandas as pd
import sklearn.utils.class_weight  # noqa: F401 - imported here so no stage times the import

import maskforge.core.parallel as parallel
from maskforge.dataset.duplicates import hash_images, merged_groups, near_duplicate_pairs
from maskforge.dataset.manifest import write_manifest
from maskforge.dataset.sources import Source, collect_sources
from maskforge.dataset.split import assign_splits, balance_splits, strata_keys
from maskforge.dataset.stats import channel_stats

MASK_TYPES = ("surgical", "cloth", "n95")


def synthesis_table(target_items: int, seed: int = 0) -> pd.DataFrame:
    """A synthesis.csv table (docs/formats.md columns) yielding about target_items images."""
    rng = np.random.default_rng(seed)
    # Per face: output + original + a negative for 40% -> 2.4 images per ok row.
    n_faces = int(target_items / 2.4)
    faces_per_photo = rng.choice([1, 1, 1, 2, 3], size=n_faces)
    photo = np.repeat(np.arange(n_faces), faces_per_photo)[:n_faces]
    face = pd.Series(photo).groupby(photo).cumcount().to_numpy()
    stem = np.char.add("img", photo.astype(str))
    face_stem = np.char.add(np.char.add(stem, "_"), face.astype(str))
    label = np.where(rng.random(n_faces) < 0.3, "incorrect", "masked")
    negative = rng.random(n_faces) < 0.4
    status = np.where(rng.random(n_faces) < 0.03, "no_face", "ok")
    ok = status == "ok"
    rel_input = np.char.add("raw/", np.char.add(stem, ".jpg"))
    return pd.DataFrame(
        {
            "input": rel_input,
            "face": face.astype(str),
            "status": status,
            "reason": np.where(ok, "", "No face found."),
            "label": np.where(ok, label, ""),
            "output": np.where(ok, np.char.add(np.char.add(label, "/"), face_stem + ".jpg"), ""),
            "original": np.where(ok, np.char.add("unmasked/", face_stem + ".jpg"), ""),
            "negative": np.where(
                ok & negative, np.char.add("unmasked/", face_stem + "_neg.jpg"), ""
            ),
            "negative_kind": np.where(ok & negative, "hand", ""),
            "group": rel_input,
            "detector": "hog",
            "box": "0 0 100 100",
            "yaw": "0.0",
            "variant": "front",
            "mask_type": np.where(ok, rng.choice(MASK_TYPES, size=n_faces), ""),
            "color": "#a8d4ec",
            "pattern": "",
            "wear": np.where(ok, np.where(label == "masked", "correct", "chin"), ""),
            "seed": np.arange(n_faces).astype(str),
        }
    )


def synthetic_hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random 64-bit hashes with 1% planted near-copies (1-3 bits flipped)."""
    hashes = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2)
    hashes |= rng.integers(0, 2, size=n, dtype=np.uint64)
    copies = rng.choice(n, size=n // 100, replace=False)
    for i in copies:
        src = int(rng.integers(n))
        value = int(hashes[src])
        for bit in rng.choice(64, size=int(rng.integers(1, 4)), replace=False):
            value ^= 1 << int(bit)
        hashes[i] = value
    return hashes


def measure(fn: Callable[[], object], memory: bool) -> tuple[float, float, object]:
    """(seconds, peak traced MiB or nan, result) of fn(); memory traced in a separate run."""
    with harness.Timer() as timer:
        result = fn()
    peak = harness.traced_peak_mib(fn)[0] if memory else float("nan")
    return timer.seconds, peak, result


def run_size(target: int, folder: Path, memory: bool, seed: int = 0) -> list[dict]:
    """Time every stage on about `target` manifest rows; returns one dict per stage."""
    out = folder / f"out{target}"
    out.mkdir(parents=True, exist_ok=True)
    synthesis_table(target, seed).to_csv(out / "synthesis.csv", index=False)
    rows: list[dict] = []

    def stage(name: str, fn: Callable[[], object], size: int):
        seconds, peak, result = measure(fn, memory)
        rows.append({"run": target, "stage": name, "n": size, "seconds": seconds, "peak_mib": peak})
        return result

    items = stage(
        "read synthesis.csv + collect", lambda: collect_sources([Source("out", out)]).items, target
    )
    n_items = len(items)
    rows[-1]["n"] = n_items
    originals = int((items["kind"] == "original").sum())
    hashes = synthetic_hashes(originals, np.random.default_rng(seed))
    pairs = stage(
        "near-duplicate pairs (<= 4 bits)", lambda: near_duplicate_pairs(hashes, 4), originals
    )
    orig_index = np.flatnonzero((items["kind"] == "original").to_numpy())
    item_pairs = orig_index[pairs]
    groups = stage(
        "merge groups", lambda: merged_groups(items["group"].tolist(), item_pairs), n_items
    )
    items = items.assign(group=groups).sort_values("abspath").reset_index(drop=True)
    ratios = (0.8, 0.1, 0.1)
    split = stage(
        "assign splits",
        lambda: assign_splits(items, ratios, np.random.default_rng(seed)),
        n_items,
    )
    stage(
        "assign splits (stratify mask_type)",
        lambda: assign_splits(items, ratios, np.random.default_rng(seed), ("mask_type",)),
        n_items,
    )
    frame = items.assign(split=split)
    keys = strata_keys(items)
    balanced = None
    for mode in ("undersample", "oversample", "weights"):
        result = stage(
            f"balance {mode}",
            lambda mode=mode: balance_splits(frame, mode, np.random.default_rng(seed), keys)[0],
            n_items,
        )
        if mode == "undersample":
            balanced = result

    def write() -> None:
        for name in ("train", "val", "test"):
            rows_k = balanced.loc[balanced["split"] == name]
            write_manifest(rows_k.drop(columns=["kind", "split"]), folder / "m" / f"{name}.csv")

    stage("write manifests", write, len(balanced))
    return rows


def run_real(n: int, faces: Path) -> list[dict]:
    """Per-image work on n real photos: phash and stats, 1 worker vs 2 (pool forced)."""
    paths = [str(p) for p in sorted(faces.glob("*.jpg"))[:n]]
    parallel.MIN_POOL_ITEMS = 0  # measure the pool even where it does not pay off
    rows = []
    for workers in (1, 2):
        for name, fn in [
            ("phash real photos", lambda w=workers: hash_images(paths, workers=w)),
            ("stats real photos (112 px)", lambda w=workers: channel_stats(paths, 112, w)),
        ]:
            seconds, _, _ = measure(fn, memory=False)
            rows.append(
                {"run": "real", "stage": f"{name}, {workers} worker(s)", "n": len(paths),
                 "seconds": seconds, "peak_mib": float("nan")}
            )  # fmt: skip
    return rows


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[10_000, 100_000],
        help="approximate manifest rows per run (default: 10000 100000)",
    )  # fmt: skip
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--real", type=int, default=0,
                        help="also time hashing/stats on this many real photos")  # fmt: skip
    parser.add_argument("--faces", type=Path, default=harness.FACES / "unmasked")
    harness.add_json_option(parser, "split")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.rows:
            results.extend(run_size(target, Path(tmp), memory=not args.no_memory))
    if args.real:
        results.extend(run_real(args.real, args.faces))

    runs = list(dict.fromkeys(r["run"] for r in results))
    by_stage: dict[str, dict] = {}
    for r in results:
        by_stage.setdefault(r["stage"], {})[r["run"]] = r
    keys = ("n", "seconds", "peak_mib")
    table = [
        [name] + [cells[run][k] if run in cells else "" for run in runs for k in keys]
        for name, cells in by_stage.items()
    ]
    totals = [sum(r["seconds"] for r in results if r["run"] == run) for run in runs]
    table.append(["total"] + [v for t in totals for v in ("", t, "")])
    columns = [("n", ">8"), ("seconds", ">9.3f"), ("peak MiB", ">9.1f")] * len(runs)
    harness.print_table(table, [("stage", "<38"), *columns])
    max_rss = harness.peak_rss_mib()
    print(f"process max RSS: {max_rss:.0f} MiB")
    record = {
        "benchmark": "split",
        **harness.environment("python", "machine"),
        "max_rss_mib": max_rss,
        "results": results,
    }
    harness.write_json(args.json, record)


if __name__ == "__main__":
    main()
