#!/usr/bin/env python3
"""Does synthetic data teach the masks cameras see? Street scenes, web portraits, end to end.

For each configuration (`maskforge synthesize` options, NAME:OPTIONS, repeatable; default
'default:') and for MaskTheFace's data (../shared/faces/mtf_reference, a peer), on the same
training photos (half A of ../shared/faces/unmasked, alternate files as benchmarks/synth2real.py):

1. the fixed judge (../shared/tools/synth2real.py) tested on face crops cut from the annotated
   street and news scenes of ../shared/faces/scenes (box grown by 25 % a side, crops with a short
   side under 24 px left out): balanced accuracy, recall (with_mask), specificity (without_mask),
   AUC;
2. the judge on the real masked web portraits (masked_real against half B), as synth2real.py;
3. with --e2e: the demo's recipe (split 0.8,0.1,0.1; frozen EfficientNet-Lite0 at 224 px) and
   `maskforge predict` on the 402 scenes: of the annotated faces with a short side of at least
   24 px, the share found (a predicted face, IoU >= 0.3) and, of those found, the share called
   right per class; with --three-class also a model trained on `--wear random` output, which
   may call a face mask_weared_incorrect.

Seeds (--seeds 0,1,2) move synthesis and training; the table gives each config's mean over seeds
and the JSON every seed. MaskTheFace's data has no synthesis seed: its judge rows are the same
every seed (the judge is deterministic), its end-to-end rows move with the training seed.

    python benchmarks/street.py --seeds 0,1,2 --e2e --config default: \
        --config plain:"--mask-type surgical"

Writes benchmarks/results/street.json. Needs the judge's packages (see synth2real.py).
"""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import harness
from synth2real import halves

from maskforge.faces.geometry import box_iou

SCENE_CLASSES = {"with_mask": "masked", "without_mask": "unmasked"}
INCORRECT = "mask_weared_incorrect"
MIN_SIDE = 24  # px: crops (judge) and annotated boxes (end to end) smaller than this are left out
GROW = 0.25  # the judge's crops: the box grown by this share of its size on each side
MATCH_IOU = 0.3
MTF = "maskthefacedata"


def annotations(scenes: Path) -> list[tuple[Path, list[tuple[str, tuple[float, ...]]]]]:
    """(image, [(class, (xmin, ymin, xmax, ymax))]) per annotated scene, in name order."""
    out = []
    for xml in sorted((scenes / "annotations").glob("*.xml")):
        image = next((scenes / "images").glob(xml.stem + ".*"), None)
        if image is None:
            continue
        faces = []
        for obj in ET.parse(xml).getroot().iter("object"):
            box = obj.find("bndbox")
            faces.append(
                (
                    obj.findtext("name", ""),
                    tuple(float(box.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax")),
                )
            )
        out.append((image, faces))
    return out


def scene_crops(scenes: Path, work: Path) -> dict[str, Path]:
    """Cut the judge's test crops once: work/scene_crops/<class>/ (PNG, no new JPEG loss)."""
    root = work / "scene_crops"
    folders = {c: root / c for c in (*SCENE_CLASSES, INCORRECT)}
    done = root / ".done"
    if done.exists():
        return folders
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for image, faces in annotations(scenes):
        bgr = cv2.imread(str(image))
        h, w = bgr.shape[:2]
        for k, (cls, (x0, y0, x1, y1)) in enumerate(faces):
            gx, gy = (x1 - x0) * GROW, (y1 - y0) * GROW
            left, top = max(int(x0 - gx), 0), max(int(y0 - gy), 0)
            right, bottom = min(int(x1 + gx), w), min(int(y1 + gy), h)
            if cls in folders and min(right - left, bottom - top) >= MIN_SIDE:
                cv2.imwrite(
                    str(folders[cls] / f"{image.stem}_{k}.png"), bgr[top:bottom, left:right]
                )
    done.touch()
    return folders


def mtf_training(mtf: Path, train_raw: Path, work: Path) -> tuple[Path, Path]:
    """MaskTheFace's masked images of half A's photos and those originals, as two folders."""
    masked, unmasked = work / "mtf" / "masked", work / "mtf" / "unmasked"
    for d in (masked, unmasked):
        d.mkdir(parents=True, exist_ok=True)
    ours = {p.name for p in train_raw.iterdir()}
    with open(mtf / "pairs.csv", newline="") as f:
        for row in csv.DictReader(f):
            original = (mtf / row["unmasked"]).resolve()
            if original.name not in ours:
                continue
            for link, target in (
                (masked / Path(row["masked"]).name, mtf / row["masked"]),
                (unmasked / original.name, original),
            ):
                if not link.exists():
                    link.symlink_to(target.resolve())
    return masked, unmasked


def judge(train: tuple[Path, Path], test: tuple[Path, Path], cache: Path, what: str) -> dict:
    cmd = [sys.executable, str(harness.SHARED / "tools" / "synth2real.py")]
    cmd += ["--train-masked", str(train[0]), "--train-unmasked", str(train[1])]
    cmd += ["--test-masked", str(test[0]), "--test-unmasked", str(test[1]), "--cache", str(cache)]
    return harness.run_json(cmd, what)


def maskforge(cwd: Path, *args: str) -> None:
    """Run `maskforge ARGS` in cwd, quietly; exit with the end of its output if it fails."""
    done = subprocess.run(harness.maskforge_command(*args), cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: some photos gave no face, the rest is usable
        tail = (done.stderr or done.stdout).strip()[-800:]
        sys.exit(f"maskforge {args[0]} failed in {cwd} (exit {done.returncode}):\n{tail}")


def score_predictions(predictions: Path, scenes: Path) -> dict:
    """Faces found and called right per annotated class, from predict's predictions.csv."""
    by_image: dict[str, list[tuple[tuple[float, ...], str]]] = {}
    with open(predictions, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("status") == "ok" and row.get("box"):
                box = tuple(float(v) for v in row["box"].split())
                by_image.setdefault(Path(row["file"]).name, []).append((box, row["class"]))
    expected = {"with_mask": "masked", "without_mask": "unmasked", INCORRECT: "incorrect"}
    counts = {c: {"faces": 0, "found": 0, "right": 0} for c in expected}
    for image, faces in annotations(scenes):
        predicted = by_image.get(image.name, [])
        for cls, box in faces:
            if cls not in counts or min(box[2] - box[0], box[3] - box[1]) < MIN_SIDE:
                continue
            counts[cls]["faces"] += 1
            best = max(predicted, key=lambda p: box_iou(box, p[0]), default=None)
            if best is None or box_iou(box, best[0]) < MATCH_IOU:
                continue
            counts[cls]["found"] += 1
            counts[cls]["right"] += best[1] == expected[cls]
    faces = sum(c["faces"] for c in counts.values())
    out = {"found": round(sum(c["found"] for c in counts.values()) / max(faces, 1), 4)}
    for cls, c in counts.items():
        out[f"found_{cls}"] = round(c["found"] / max(c["faces"], 1), 4)
        out[f"right_{cls}"] = round(c["right"] / max(c["found"], 1), 4)
    return out


def end_to_end(data: Path, work: Path, scenes: Path, seed: int, epochs: int) -> dict:
    """The demo's recipe on a synthesis folder (or a folder of class folders), then predict."""
    shutil.rmtree(work, ignore_errors=True)  # split, train and predict would resume or refuse
    work.mkdir(parents=True)
    seed_args = ("--seed", str(seed))
    maskforge(work, "split", str(data), "--ratios", "0.8,0.1,0.1", *seed_args)
    maskforge(
        work,
        "train",
        "--arch",
        "efficientnet_lite0",
        "--freeze-backbone",
        "--img-size",
        "224",
        "--epochs",
        str(epochs),
        "--run",
        "run",
        *seed_args,
    )
    with harness.Timer() as timer:
        maskforge(
            work,
            "predict",
            str(scenes / "images"),
            "--run",
            "run",
            "--out",
            "predicted",
            "--no-annotate",
        )
    result = score_predictions(work / "predicted" / "predictions.csv", scenes)
    result["predict_seconds"] = round(timer.seconds, 1)
    return result


def mean_rows(records: list[dict]) -> dict:
    keys = [k for k, v in records[0].items() if isinstance(v, (int, float))]
    return {k: round(statistics.fmean(r[k] for r in records), 4) for k in keys}


SHEET_TYPES = ("surgical", "kn95", "n95", "cloth")


def _tiles(paths: list[Path], side: int, zoom: int, count: int):
    """count images (centre squares) brought to side px with INTER_AREA, then shown zoom times
    larger with nearest-neighbour, as one row; blanks where there are fewer."""
    import numpy as np

    row = []
    for path in paths[:count]:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        s = min(h, w)
        image = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        row.append(cv2.resize(small, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST))
    row += [np.zeros((side * zoom, side * zoom, 3), np.uint8)] * (count - len(row))
    return np.hstack(row)


def contact_sheet(real: Path, out: Path, path: Path, side: int = 48, count: int = 12) -> None:
    """Real scene crops with a mask (two rows) above ours of each common type (SHEET_TYPES),
    all at the same size (side px, the median scene crop is ~60), read from a synthesize
    folder's synthesis.csv; the first of our rows per type as written, the second only pairs
    seen by the far camera."""
    import random

    import numpy as np

    reals = sorted(real.iterdir())
    random.Random(0).shuffle(reals)
    rows = [_tiles(reals, side, 3, count), _tiles(reals[count:], side, 3, count)]
    with open(out / "synthesis.csv", newline="") as f:
        table = [r for r in csv.DictReader(f) if r["status"] == "ok" and r["label"] == "masked"]
    for kind in SHEET_TYPES:
        ours = [r for r in table if r["mask_type"] == kind]
        far = [out / r["output"] for r in ours if r.get("far_face")]
        rows += [
            _tiles([out / r["output"] for r in ours], side, 3, count),
            _tiles(far, side, 3, count),
        ]
    cv2.imwrite(str(path), np.vstack(rows))


JUDGE_KEYS = ("balanced_accuracy", "recall_real_masked", "specificity_real_unmasked", "roc_auc")


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--unmasked", type=Path, default=harness.FACES / "unmasked")
    ap.add_argument("--masked-real", type=Path, default=harness.FACES / "masked_real")
    ap.add_argument("--scenes", type=Path, default=harness.FACES / "scenes")
    ap.add_argument("--mtf", type=Path, default=harness.FACES / "mtf_reference")
    ap.add_argument("--no-mtf", action="store_true", help="leave MaskTheFace's data out")
    ap.add_argument("--work", type=Path, default=Path("/tmp/maskforge-street"))
    ap.add_argument("--config", action="append", default=[], help="NAME:OPTIONS (repeatable)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds [0]")
    ap.add_argument("--e2e", action="store_true", help="also train the demo recipe and predict")
    ap.add_argument("--three-class", action="store_true", help="with --e2e: a --wear random model")
    ap.add_argument("--epochs", type=int, default=30, help="the demo recipe's epochs [30]")
    ap.add_argument(
        "--sheet",
        type=Path,
        help="also draw real scene crops beside the first "
        "config's masks at the same size (each common type) into this PNG",
    )
    harness.add_json_option(ap, "street")
    args = ap.parse_args()
    configs = [c.split(":", 1) for c in (args.config or ["default:"])]
    seeds = [int(s) for s in args.seeds.split(",")]
    train_raw, test_unmasked = halves(args.unmasked, args.work)
    crops = scene_crops(args.scenes, args.work)
    cache = args.work / "cache"
    scene_test = (crops["with_mask"], crops["without_mask"])
    real_test = (args.masked_real, test_unmasked)
    runs: dict[str, list[dict]] = {}

    def record(name: str, seed: int, train: tuple[Path, Path], data: Path | None) -> None:
        row: dict = {"seed": seed}
        for part, test in (("scenes", scene_test), ("masked_real", real_test)):
            r = judge(train, test, cache, f"the judge on {name!r} ({part})")
            row.update({f"{part}_{k}": r[k] for k in JUDGE_KEYS})
            row["train_masked"], row["train_unmasked"] = r["train_masked"], r["train_unmasked"]
        if args.e2e and data is not None:
            e2e = end_to_end(data, args.work / f"e2e-{name}", args.scenes, seed, args.epochs)
            row.update({f"e2e_{k}": v for k, v in e2e.items()})
        runs.setdefault(name, []).append(row)
        print(name, json.dumps(row), flush=True)

    for seed in seeds:
        for name, options in configs:
            out = args.work / f"out-{name}"
            cmd = ["synthesize", str(train_raw), str(out), "--seed", str(seed), "--overwrite"]
            with harness.Timer() as timer:
                maskforge(args.work, *cmd, *shlex.split(options))
            record(name, seed, (out / "masked", out / "unmasked"), out)
            if args.sheet and name == configs[0][0] and seed == seeds[0]:
                contact_sheet(crops["with_mask"], out, args.sheet)
            runs[name][-1]["synthesize_seconds"] = round(timer.seconds, 1)
            if args.e2e and args.three_class:
                out3 = args.work / f"out3-{name}"
                maskforge(
                    args.work,
                    *cmd[:2],
                    str(out3),
                    *cmd[3:],
                    *shlex.split(options),
                    "--wear",
                    "random",
                )
                e2e = end_to_end(out3, args.work / f"e2e3-{name}", args.scenes, seed, args.epochs)
                runs[name][-1].update({f"e2e3_{k}": v for k, v in e2e.items()})
        if not args.no_mtf:
            masked, unmasked = mtf_training(args.mtf, train_raw, args.work)
            record(MTF, seed, (masked, unmasked), masked.parent)
    summary = {name: mean_rows(rows) for name, rows in runs.items()}
    columns = [("config", "<18")]
    picks = [
        ("scenes_balanced_accuracy", "scn.bal"),
        ("scenes_roc_auc", "scn.AUC"),
        ("scenes_recall_real_masked", "scn.rec"),
        ("scenes_specificity_real_unmasked", "scn.spc"),
        ("masked_real_balanced_accuracy", "web.bal"),
        ("masked_real_roc_auc", "web.AUC"),
        ("e2e_found", "found"),
        ("e2e_right_with_mask", "e2e.m"),
        ("e2e_right_without_mask", "e2e.u"),
        ("e2e3_right_mask_weared_incorrect", "3c.inc"),
        ("e2e3_right_with_mask", "3c.m"),
        ("e2e3_right_without_mask", "3c.u"),
    ]
    columns += [(title, ">8.3f") for _, title in picks]
    print(f"\nmeans over seeds {seeds}:")
    harness.print_table(
        [[name, *(s.get(k) for k, _ in picks)] for name, s in summary.items()], columns
    )
    record_ = {"seeds": seeds, "configs": dict(configs), "mean": summary, "runs": runs}
    record_["environment"] = harness.environment()
    harness.write_json(args.json, record_, indent=1)


if __name__ == "__main__":
    main()
