#!/usr/bin/env python3
"""Synthesis coverage and throughput, side by side with a MaskTheFace-style baseline.

    python benchmarks/synthesis.py [FOLDER] [--workers N] [--limit N] [--repeat N]

In one run, on the same photos (default ../shared/faces/unmasked):
  - baseline: what MaskTheFace does per image, in one process: dlib HOG (upsample 1), 68
    landmarks, one template warped onto six anchors and alpha-blended, JPEG written; run as a
    subprocess and timed like maskforge (wall time with imports and model loading; the time of
    its photo loop alone is in the JSON too);
  - maskforge synthesize in each configuration of --configs (default: its defaults, and
    `--landmarks dlib`), with 1 and N workers, run as a subprocess (as a user runs it), its
    peak memory read from the OS;
  - the first configuration on every photo twice (two linked copies), to show that peak memory
    does not grow with the number of inputs.
MaskTheFace is one process, so speeds are compared per core: masked faces per second divided by
the cores a run could use (its workers, at most the machine's cores; the baseline: 1).
Prints a table and writes benchmarks/results/synthesis.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import cv2
import harness
import numpy as np


def baseline(paths: list[Path], out: Path) -> dict:
    """MaskTheFace's per-image work: HOG upsample 1, landmarks, warp, blend, JPEG; 1 process."""
    load = harness.Timer()
    import dlib

    from maskforge.faces import geometry
    from maskforge.faces.cascade import find_model_file
    from maskforge.synth.render.templates import load_templates

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(find_model_file("landmarks")))
    variant = load_templates()["surgical"].variants["front"]
    template = variant.rgba
    out.mkdir(parents=True, exist_ok=True)
    masked = 0
    load_seconds = load.elapsed()
    loop = harness.Timer()
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
    return {"loop_seconds": loop.elapsed(), "load_seconds": load_seconds, "faces_masked": masked}


def run_baseline(folder: Path, out: Path) -> dict:
    """The baseline in a fresh process (as a user runs a script); wall time as for maskforge."""
    cmd = [sys.executable, __file__, str(folder), "--baseline-to", str(out)]
    with harness.Timer() as timer:
        result = harness.run_json(cmd, "baseline")
    return {"seconds": timer.seconds, **result}


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
    cmd = harness.maskforge_command("synthesize", str(folder), str(out), "--workers", str(workers))
    run = harness.run_measured([*cmd, *extra])
    if run.returncode not in (0, 3):
        raise SystemExit(f"synthesize failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    with open(out / "synthesis.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    inputs = len({r["input"] for r in rows})
    masked_inputs = len({r["input"] for r in rows if r["status"] == "ok"})
    return {
        "seconds": run.seconds,
        "inputs": inputs,
        "photos_masked": masked_inputs,
        "coverage_pct": 100.0 * masked_inputs / max(inputs, 1),
        "faces_masked": sum(r["status"] == "ok" for r in rows),
        "by_stage": dict(Counter(r["detector"] for r in rows if r["status"] == "ok")),
        "status": dict(Counter(r["status"] for r in rows)),
        "peak_rss_mb_any_process": run.peak_rss_mib,
    }


def parse_configs(spec: str, common: list[str]) -> dict[str, list[str]]:
    """'NAME=OPTIONS;...' as {name: synthesize options}, each with the common options added."""
    configs = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, sep, options = part.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--configs: {part!r} is not NAME=OPTIONS")
        configs[name.strip()] = [*shlex.split(options), *common]
    if not configs:
        raise SystemExit("--configs names no configuration")
    return configs


def dlib_info() -> str:
    """dlib's version and whether it was built with BLAS (the CNN stage's main cost)."""
    import dlib

    return f"{dlib.__version__}, BLAS {'on' if getattr(dlib, 'DLIB_USE_BLAS', False) else 'off'}"


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("folder", nargs="?", type=Path, default=harness.FACES / "unmasked")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    harness.add_json_option(ap, "synthesis")
    ap.add_argument(
        "--configs",
        default="default=;dlib=--landmarks dlib",
        help="';'-separated NAME=OPTIONS: the maskforge synthesize configurations to compare "
        "(default: 'default=;dlib=--landmarks dlib')",
    )
    ap.add_argument(
        "--maskforge-args",
        default="",
        help="options added to every configuration, e.g. '--renderer mesh'",
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
    configs = parse_configs(args.configs, shlex.split(args.maskforge_args))
    first = next(iter(configs))
    try:
        base_cov = baseline_coverage(paths)
        for r in range(args.repeat):
            # Interleaved, so a slow spell of this noisy machine hits every run of a round.
            rd = {"base": run_baseline(src, work / f"baseline{r}")}
            for name, extra in configs.items():
                rd[f"{name}:one"] = run_maskforge(src, work / f"{name}1_{r}", 1, extra)
                rd[f"{name}:many"] = run_maskforge(src, work / f"{name}n_{r}", args.workers, extra)
            rd["small"] = run_maskforge(double, work / f"wd_{r}", args.workers, configs[first])
            rounds.append(rd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = sorted(rd["base"]["seconds"] / rd[f"{first}:many"]["seconds"] for rd in rounds)

    def median_run(key: str) -> dict:
        runs = sorted((rd[key] for rd in rounds), key=lambda run: run["seconds"])
        return {**runs[len(runs) // 2], "seconds_all_rounds": [run["seconds"] for run in runs]}

    base, small = median_run("base"), median_run("small")
    base_ips = n / base["seconds"]
    base_fps = base["faces_masked"] / base["seconds"]
    base_cover = 100.0 * base_cov / n
    cores = os.cpu_count() or 1
    runs = {}  # JSON key: (table row, run, cores it could use)
    for name in configs:
        one, many = median_run(f"{name}:one"), median_run(f"{name}:many")
        runs[f"{name}_1_worker"] = (f"{name}, 1 worker", one, 1)
        runs[f"{name}_n_workers"] = (f"{name}, {args.workers} workers", many, args.workers)
    runs["double_inputs"] = (f"{first}, {args.workers} workers, 2x inputs", small, args.workers)
    name = "baseline (MaskTheFace-style, 1 process)"
    table = [[name, n, base_cover, base["faces_masked"], base_ips, base_fps, 1.0, None]]
    for name, run, workers in runs.values():
        run["images_per_s"] = ips = run["inputs"] / run["seconds"]
        run["faces_per_s_per_core"] = fpc = (
            run["faces_masked"] / run["seconds"] / min(workers, cores)
        )
        run["x_baseline_per_core"] = fpc / base_fps
        faces, peak = run["faces_masked"], run["peak_rss_mb_any_process"]
        table.append(
            [name, run["inputs"], run["coverage_pct"], faces, ips, fpc, fpc / base_fps, peak]
        )
    counts = [("photos", ">7"), ("cover%", ">8.1f"), ("faces", ">7")]
    rates = [
        ("img/s", ">8.1f"),
        ("face/s/core", ">12.1f"),
        ("x base", ">8.2f"),
        ("peak MB", ">9.0f"),
    ]
    print()
    harness.print_table(table, [("run", "<46"), *counts, *rates], sep="")
    print(
        f"\n{args.workers} workers / baseline, per round: "
        + ", ".join(f"{v:.2f}" for v in ratios)
        + f" (median {ratios[len(ratios) // 2]:.2f}, {args.repeat} round(s))"
    )
    print(f"dlib {dlib_info()}")
    for name, extra in configs.items():
        many = runs[f"{name}_n_workers"][1]
        print(f"{name}: options {' '.join(extra) or '(none)'}")
        print(
            f"{name}: masked faces by detector stage: {many['by_stage']}; rows by status: "
            f"{many['status']}"
        )
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
        "configs": {name: " ".join(extra) for name, extra in configs.items()},
        "baseline": {
            **base,
            "images_per_s": base_ips,
            "faces_per_s_per_core": base_fps,
            "coverage_pct": base_cover,
        },
        **{key: run for key, (_, run, _) in runs.items()},
        "speed_ratio_n_workers_vs_baseline": ratios[len(ratios) // 2],
        "speed_ratio_per_round": ratios,
    }
    harness.write_json(args.json, result, indent=1)


if __name__ == "__main__":
    main()
