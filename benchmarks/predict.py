#!/usr/bin/env python3
"""How fast is `maskforge predict`, next to the model alone, and how many masked faces it finds.

Side by side, in one run, on real photos (../shared/faces/masked_real + unmasked by default) and
on a video made by this script from the same photos:

* face found: the share of masked_real photos where each detector finds a face;
* model only: face crops/s of the classifier alone at several batch sizes (the floor predict
  cannot beat), on the crops predict classifies;
* predict: photos/s end to end (decode, detect, classify, write; the CLI's defaults), with and
  without annotated copies, and frames/s on the video; the ratio to the model-only rate;
* peak memory of the predict process for a short and a 3x longer video, and for one and two
  folders of photos (flat means nothing grows with the input);
* end to end: the share of masked_real photos predicted masked and of unmasked ones predicted
  unmasked (the largest face, or the whole photo where none is found).

    python benchmarks/predict.py --run demo/runs/<name>       # the demo's model
    python benchmarks/predict.py --limit 200 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "faces"


def newest_run(root: Path) -> Path:
    runs = sorted(
        (p for p in root.glob("runs/*") if (p / "best.pt").is_file()), key=os.path.getmtime
    )
    if not runs:
        sys.exit(f"No run with best.pt under {root}/runs: run `make demo` or pass --run.")
    return runs[-1]


def link_photos(folders: dict[str, Path], limit: int | None, work: Path) -> dict[str, Path]:
    """work/<name>/ with symlinks to the first `limit` photos of each folder (sorted)."""
    from maskforge.core.imageio import iter_image_files

    out = {}
    for name, folder in folders.items():
        dest = work / name
        dest.mkdir(parents=True, exist_ok=True)
        for path in list(iter_image_files(folder))[:limit]:
            (dest / path.name).symlink_to(path.resolve())
        out[name] = dest
    return out


def coverage(folder: Path, detectors: list[str]) -> dict[str, dict]:
    """Share of photos with a face, and ms per photo, per detector (one process)."""
    from maskforge.core.imageio import iter_image_files, read_image
    from maskforge.synth.faces import detect_faces

    photos = [read_image(p) for p in iter_image_files(folder)]
    result = {}
    for detector in detectors:
        detect_faces(photos[0], detector)  # load the models outside the timing
        start = time.perf_counter()
        found = sum(bool(detect_faces(rgb, detector)) for rgb in photos)
        ms = (time.perf_counter() - start) / len(photos) * 1000
        result[detector] = {
            "found": found,
            "photos": len(photos),
            "share": found / len(photos),
            "ms": ms,
        }
    return result


def model_only(run: Path, folder: Path, batch_sizes: list[int], repeat: int) -> dict:
    """Crops/s of the classifier alone, per batch size, on predict's own crops."""
    import torch

    from maskforge.core.imageio import iter_image_files, read_image
    from maskforge.deploy.finding import find_faces
    from maskforge.deploy.predict import Classifier
    from maskforge.learn.models import load_checkpoint

    model, info = load_checkpoint(run / "best.pt")
    crops = []
    for path in iter_image_files(folder):
        crops += find_faces(read_image(path), "cascade", 24, info.img_size, "whole")[1]
    rates = {}
    for size in batch_sizes:
        classify = Classifier(model, info, torch.device("cpu"), 0.5, size)
        classify(crops[: 2 * size])  # warm up
        best = 0.0
        for _ in range(repeat):
            start = time.perf_counter()
            classify(crops)
            best = max(best, len(crops) / (time.perf_counter() - start))
        rates[size] = best
    return {"crops": len(crops), "crops_per_s": rates}


def make_video(photos: Path, path: Path, frames: int, size=(640, 480)) -> Path:
    """An mp4 of `frames` frames: the photos in turn, each centred on a grey 640x480 canvas."""
    from maskforge.core.imageio import iter_image_files, read_image

    images = [read_image(p) for p in list(iter_image_files(photos))[:60]]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for k in range(frames):
        rgb = images[k % len(images)]
        scale = min(size[0] / rgb.shape[1], size[1] / rgb.shape[0], 1.0) * 0.8
        small = cv2.resize(rgb, None, fx=scale, fy=scale)
        canvas = np.full((size[1], size[0], 3), 128, np.uint8)
        y, x = (size[1] - small.shape[0]) // 2, (size[0] - small.shape[1]) // 2
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


PREDICT = """
import json, resource, sys, time
from pathlib import Path
from maskforge.deploy.predict import predict_inputs
args = json.loads(sys.argv[1])
start = time.perf_counter()
s = predict_inputs([Path(p) for p in args["inputs"]], out=Path(args["out"]), run=Path(args["run"]),
                   annotate=args["annotate"], no_face="whole")
print(json.dumps({"seconds": time.perf_counter() - start, "images": s.images, "frames": s.frames,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def predict_run(inputs: list[Path], out: Path, run: Path, annotate: bool = True) -> dict:
    """predict_inputs in a fresh process (as a user runs it): seconds, counts, peak RSS."""
    args = {
        "inputs": [str(p) for p in inputs],
        "out": str(out),
        "run": str(run),
        "annotate": annotate,
    }
    done = subprocess.run(
        [sys.executable, "-c", PREDICT, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def shares(csv_path: Path) -> dict[str, float]:
    """Per folder: the share of photos whose largest face (or whole image) is predicted masked."""
    import pandas as pd

    df = pd.read_csv(csv_path)
    df = df[df["status"].isin(["ok", "whole_image"])].copy()
    df["face"] = df["face"].fillna(0)
    first = df.sort_values("face").groupby("file").first()
    folder = first.index.to_series().str.split("/").str[-2]
    return (first["class"] == "masked").groupby(folder).mean().to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=None, help="[default: newest run in demo/]")
    parser.add_argument("--masked", type=Path, default=SHARED / "masked_real")
    parser.add_argument("--unmasked", type=Path, default=SHARED / "unmasked")
    parser.add_argument("--limit", type=int, default=None, help="photos per folder [all]")
    parser.add_argument("--detectors", default=None, help="comma list [every --detector choice]")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "predict.json"
    )
    args = parser.parse_args()

    from maskforge.choices import DETECTORS

    run = args.run or newest_run(REPO / "demo")
    detectors = args.detectors.split(",") if args.detectors else list(DETECTORS)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    record = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "run": str(run),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folders = link_photos(
            {"masked_real": args.masked, "unmasked": args.unmasked}, args.limit, work
        )
        n_photos = sum(len(list(f.iterdir())) for f in folders.values())
        print(f"run {run}; {n_photos} photos")
        record["face_found_masked_real"] = coverage(folders["masked_real"], detectors)
        for det, c in record["face_found_masked_real"].items():
            print(
                f"  face found in masked_real, {det:10s} {c['found']}/{c['photos']} "
                f"({c['share']:.1%}), {c['ms']:.1f} ms/photo"
            )
        record["model_only"] = model_only(run, folders["masked_real"], batch_sizes, args.repeat)
        for size, rate in record["model_only"]["crops_per_s"].items():
            print(f"  model only, batch {size:3d}: {rate:.1f} crops/s")
        both = list(folders.values())
        e2e = predict_run(both, work / "pred", run)
        e2e_plain = predict_run(both, work / "pred_plain", run, annotate=False)
        one = predict_run([folders["unmasked"]], work / "pred_one", run, annotate=False)
        video = make_video(folders["unmasked"], work / "video.mp4", args.video_frames)
        long_video = make_video(folders["unmasked"], work / "long.mp4", 3 * args.video_frames)
        v1 = predict_run([video], work / "pred_v1", run)
        v3 = predict_run([long_video], work / "pred_v3", run)
        best = max(record["model_only"]["crops_per_s"].values())
        from maskforge.deploy.predict import DEFAULT_BATCH

        floor = record["model_only"]["crops_per_s"].get(DEFAULT_BATCH, best)
        record["predict"] = {
            "photos": n_photos,
            "photos_per_s": n_photos / e2e["seconds"],
            "photos_per_s_no_annotate": n_photos / e2e_plain["seconds"],
            "ratio_to_model_only_default_batch": n_photos / e2e["seconds"] / floor,
            "ratio_to_model_only_best_batch": n_photos / e2e["seconds"] / best,
            "peak_mb_two_folders": e2e_plain["peak_mb"],
            "peak_mb_one_folder": one["peak_mb"],
            "video_frames_per_s": v1["frames"] / v1["seconds"],
            "peak_mb_video": v1["peak_mb"],
            "peak_mb_video_3x": v3["peak_mb"],
            "predicted_masked_share": shares(work / "pred" / "predictions.csv"),
        }
    p = record["predict"]
    print(
        f"  predict: {p['photos_per_s']:.1f} photos/s "
        f"({p['photos_per_s_no_annotate']:.1f} without annotated copies); "
        f"{p['ratio_to_model_only_default_batch']:.2f}x the model-only rate "
        f"at batch {DEFAULT_BATCH} "
        f"({p['ratio_to_model_only_best_batch']:.2f}x the best batch)"
    )
    print(
        f"  video: {p['video_frames_per_s']:.1f} frames/s; peak RSS {p['peak_mb_video']:.0f} MB, "
        f"{p['peak_mb_video_3x']:.0f} MB for 3x the frames"
    )
    print(
        f"  photos: peak RSS {p['peak_mb_one_folder']:.0f} MB for one folder, "
        f"{p['peak_mb_two_folders']:.0f} MB for two"
    )
    share = p["predicted_masked_share"]
    print(
        f"  predicted masked: masked_real {share.get('masked_real', float('nan')):.1%}, "
        f"unmasked predicted unmasked {1 - share.get('unmasked', float('nan')):.1%}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
