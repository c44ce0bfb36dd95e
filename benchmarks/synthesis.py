#!/usr/bin/env python3
"""Synthesis coverage and throughput, side by side with a MaskTheFace-style baseline.

    python benchmarks/synthesis.py [FOLDER] [--workers N] [--limit N] [--repeat N]

In one run, on the same photos (default ../shared/faces/unmasked):
  - baseline: what MaskTheFace does per image, in one process: dlib HOG (upsample 1), 68
    landmarks, one template warped onto six anchors and alpha-blended, JPEG written; run as a
    subprocess and timed like maskforge (wall time with imports and model loading; the time of
    its photo loop alone is in the JSON too);
  - maskforge synthesize in its default mode (cascade detector, realism on; --detector picks
    another) with 1 and N workers,
    run as a subprocess (as a user runs it), its peak memory read from the OS;
  - the same default mode on every photo twice (two linked copies), to show that peak memory
    does not grow with the number of inputs.
Prints a table and writes benchmarks/results/synthesis.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "faces" / "unmasked"


def baseline(paths: list[Path], out: Path) -> dict:
    """MaskTheFace's per-image work: HOG upsample 1, landmarks, warp, blend, JPEG; 1 process."""
    start_all = time.perf_counter()
    import dlib

    from maskforge.synth import geometry
    from maskforge.synth.faces import find_model_file
    from maskforge.synth.templates import load_templates

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(find_model_file("landmarks")))
    variant = load_templates()["surgical"].variants["front"]
    template = variant.rgba
    out.mkdir(parents=True, exist_ok=True)
    masked = 0
    start = time.perf_counter()
    for i, path in enumerate(paths):
        bgr = cv2.imread(str(path))
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for rect in detector(rgb, 1):
            shape = predictor(rgb, rect)
            lm = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            matrix = geometry.homography(variant.anchors, geometry.face_anchors(lm))
            warped = cv2.warpPerspective(template, matrix, (rgb.shape[1], rgb.shape[0]))
            alpha = warped[..., 3:4].astype(np.float32) / 255.0
            rgb = (rgb * (1 - alpha) + warped[..., :3] * alpha).astype(np.uint8)
            masked += 1
        cv2.imwrite(str(out / f"{i}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    end = time.perf_counter()
    return {"loop_seconds": end - start, "load_seconds": start - start_all, "faces_masked": masked}


def run_baseline(folder: Path, out: Path) -> dict:
    """The baseline in a fresh process (as a user runs a script); wall time as for maskforge."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, str(folder), "--baseline-to", str(out)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"baseline failed: {proc.stderr.strip()[-500:]}")
    return {"seconds": seconds, **json.loads(proc.stdout.strip().splitlines()[-1])}


def baseline_coverage(paths: list[Path]) -> int:
    """Photos where HOG upsample 1 finds at least one face (what the baseline can mask)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    found = 0
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is not None and len(detector(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1)):
            found += 1
    return found


def run_maskforge(folder: Path, out: Path, workers: int, extra: list[str]) -> dict:
    """`maskforge synthesize` as a subprocess; wall time, peak RSS of it and its workers, CSV."""
    cmd = [
        sys.executable,
        "-m",
        "maskforge",
        "synthesize",
        str(folder),
        str(out),
        "--workers",
        str(workers),
        *extra,
    ]
    # A fresh wrapper per run, so ru_maxrss covers this run's processes only.
    wrapper = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kb, code = (int(v) for v in proc.stdout.split()[-2:])
    if code not in (0, 3):
        raise SystemExit(f"synthesize failed ({code}): {proc.stderr.strip()[-500:]}")
    with open(out / "synthesis.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    inputs = len({r["input"] for r in rows})
    masked_inputs = len({r["input"] for r in rows if r["status"] == "ok"})
    return {
        "seconds": seconds,
        "inputs": inputs,
        "photos_masked": masked_inputs,
        "coverage_pct": 100.0 * masked_inputs / max(inputs, 1),
        "faces_masked": sum(r["status"] == "ok" for r in rows),
        "by_stage": dict(Counter(r["detector"] for r in rows if r["status"] == "ok")),
        "status": dict(Counter(r["status"] for r in rows)),
        "peak_rss_mb_any_process": peak_kb / 1024,
    }


def dlib_info() -> str:
    """dlib's version and whether it was built with BLAS (the CNN stage's main cost)."""
    import dlib

    return f"{dlib.__version__}, BLAS {'on' if getattr(dlib, 'DLIB_USE_BLAS', False) else 'off'}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "synthesis.json")
    ap.add_argument(
        "--detector", default="cascade", help="maskforge's --detector (default: cascade)"
    )
    ap.add_argument(
        "--maskforge-args",
        default="",
        help="more maskforge synthesize options, e.g. '--landmarks mediapipe --renderer mesh'",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of all runs, interleaved; the table shows each run's median round",
    )
    ap.add_argument("--baseline-to", type=Path, help=argparse.SUPPRESS)  # the baseline's process
    args = ap.parse_args()

    from maskforge.core.imageio import iter_image_files

    paths = list(iter_image_files(args.folder))[: args.limit]
    if args.baseline_to:
        print(json.dumps(baseline(paths, args.baseline_to)))
        return
    work = Path(tempfile.mkdtemp(prefix="maskforge-bench-"))
    src = work / "in"
    src.mkdir()
    for p in paths:
        (src / p.name).symlink_to(p.resolve())
    double = work / "in_double"
    for copy in ("a", "b"):
        (double / copy).mkdir(parents=True)
        for p in paths:
            (double / copy / p.name).symlink_to(p.resolve())
    n = len(paths)
    rounds: list[dict] = []
    extra = ["--detector", args.detector, *shlex.split(args.maskforge_args)]
    try:
        base_cov = baseline_coverage(paths)
        for r in range(args.repeat):
            # Interleaved, so a slow spell of this noisy machine hits every run of a round.
            rounds.append(
                {
                    "base": run_baseline(src, work / f"baseline{r}"),
                    "one": run_maskforge(src, work / f"w1_{r}", 1, extra),
                    "many": run_maskforge(src, work / f"wn_{r}", args.workers, extra),
                    "small": run_maskforge(double, work / f"wd_{r}", args.workers, extra),
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = sorted(rd["base"]["seconds"] / rd["many"]["seconds"] for rd in rounds)

    def median_run(key: str) -> dict:
        runs = sorted((rd[key] for rd in rounds), key=lambda run: run["seconds"])
        return {**runs[len(runs) // 2], "seconds_all_rounds": [run["seconds"] for run in runs]}

    base, one, many, small = (median_run(k) for k in ("base", "one", "many", "small"))
    base_ips = n / base["seconds"]
    table = [
        (
            "baseline (MaskTheFace-style, 1 process)",
            n,
            100.0 * base_cov / n,
            base["faces_masked"],
            base_ips,
            None,
        ),
        (
            f"maskforge {args.detector}, 1 worker",
            one["inputs"],
            one["coverage_pct"],
            one["faces_masked"],
            one["inputs"] / one["seconds"],
            one["peak_rss_mb_any_process"],
        ),
        (
            f"maskforge {args.detector}, {args.workers} workers",
            many["inputs"],
            many["coverage_pct"],
            many["faces_masked"],
            many["inputs"] / many["seconds"],
            many["peak_rss_mb_any_process"],
        ),
        (
            f"maskforge {args.detector}, {args.workers} workers, 2x inputs",
            small["inputs"],
            small["coverage_pct"],
            small["faces_masked"],
            small["inputs"] / small["seconds"],
            small["peak_rss_mb_any_process"],
        ),
    ]
    columns = f"{'photos':>7}{'cover%':>8}{'faces':>7}{'img/s':>8}{'x base':>8}{'peak MB':>9}"
    print(f"\n{'run':<46}{columns}")
    for name, photos, cov, faces, ips, mem in table:
        mem_text = f"{mem:>9.0f}" if mem is not None else f"{'-':>9}"
        print(
            f"{name:<46}{photos:>7}{cov:>8.1f}{faces:>7}{ips:>8.1f}{ips / base_ips:>8.2f}{mem_text}"
        )
    print(
        f"\n{args.workers} workers / baseline, per round: "
        + ", ".join(f"{v:.2f}" for v in ratios)
        + f" (median {ratios[len(ratios) // 2]:.2f}, {args.repeat} round(s))"
    )
    print(f"dlib {dlib_info()}")
    print(f"maskforge options: --detector {args.detector} {args.maskforge_args}".rstrip())
    print(f"{args.detector}: masked faces by detector stage: {many['by_stage']}")
    print(f"{args.detector}: rows by status: {many['status']}")
    print(
        "(wall time includes process start and model loading, as a user sees it; the baseline's "
        f"photo loop alone: {n / base['loop_seconds']:.1f} img/s)"
    )
    import dlib

    result = {
        "dlib": {"version": dlib.__version__, "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False))},
        "folder": str(args.folder),
        "photos": n,
        "workers": args.workers,
        "detector": args.detector,
        "maskforge_args": args.maskforge_args,
        "baseline": {**base, "images_per_s": base_ips, "coverage_pct": 100.0 * base_cov / n},
        "maskforge_1_worker": {**one, "images_per_s": one["inputs"] / one["seconds"]},
        "maskforge_n_workers": {**many, "images_per_s": many["inputs"] / many["seconds"]},
        "maskforge_double_inputs": {**small, "images_per_s": small["inputs"] / small["seconds"]},
        "speed_ratio_n_workers_vs_baseline": ratios[len(ratios) // 2],
        "speed_ratio_per_round": ratios,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
