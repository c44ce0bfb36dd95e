"""`maskforge split` end to end on real photos: manifests, stats.json, report, errors, chaining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.workspace import load_state, remember
from maskforge.dataset.manifest import file_sha256, read_manifest
from maskforge.dataset.sources import Source
from maskforge.dataset.split import SplitOptions, run_split
from maskforge.dataset.stats import manifest_stats


@pytest.fixture(scope="module")
def photos(unmasked_dir) -> list[Path]:
    return sorted(unmasked_dir.glob("*.jpg"))[:24]


@pytest.fixture
def out(tmp_path, photos, make_synthesis_folder) -> Path:
    """tmp/out: a synthesize-like folder over 24 real photos (24 groups, 60 images)."""
    make_synthesis_folder(tmp_path / "out", photos, negatives_every=2, incorrect_every=4)
    return tmp_path / "out"


def _read_all(folder: Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for name in ("train", "val", "test"):
        text = (folder / f"{name}.csv").read_text()
        frames[name] = read_manifest(folder / f"{name}.csv") if text.count("\n") > 1 else None
    return frames


def test_run_split_writes_leak_free_balanced_manifests_and_stats(tmp_path, out):
    options = SplitOptions(ratios=(0.5, 0.25, 0.25), seed=3, workers=1)
    result = run_split([Source("out", out)], tmp_path / "manifests", options)
    frames = _read_all(tmp_path / "manifests")
    paths = [set(f["abspath"]) for f in frames.values()]
    groups = [set(f["group"]) for f in frames.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not paths[i] & paths[j] and not groups[i] & groups[j]
    for name, frame in frames.items():
        counts = frame["label"].value_counts()
        assert counts.nunique() == 1 and len(counts) == 3, (name, counts)  # undersampled
        assert all(Path(p).is_file() for p in frame["abspath"])
        assert all(not Path(p).is_absolute() for p in frame["path"])
        assert (frame["source"] == "out").all() and (frame["weight"] == 1.0).all()
    # Before balancing, 60 images: 36 unmasked, 18 masked, 6 incorrect at 0.5/0.25/0.25.
    before = result.balance.before
    assert before.loc["incorrect"].tolist() == [3, 2, 1]  # 6 groups: 3, 1.5, 1.5
    for label, n in [("unmasked", 36), ("masked", 18), ("incorrect", 6)]:
        assert before.loc[label].sum() == n
        assert np.all(np.abs(before.loc[label] - n * np.array([0.5, 0.25, 0.25])) <= 1)
    stats = json.loads((tmp_path / "manifests" / "stats.json").read_text())
    assert stats["manifest_sha256"] == file_sha256(tmp_path / "manifests" / "train.csv")
    assert stats["classes"] == ["unmasked", "masked", "incorrect"]
    assert stats["count"] == 9 and stats["size"] == 112
    # `maskforge stats` on the written train.csv gives exactly the same numbers.
    again, record = manifest_stats(tmp_path / "manifests" / "train.csv", workers=1)
    assert stats["mean"] == list(again.mean) and stats["std"] == list(again.std)
    assert record == stats
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    # After balancing every class has the minority's (incorrect's) count in each split.
    assert "| masked | 3 | 2 | 1 | 6 |" in report
    assert "| **total** | 9 | 6 | 3 | 18 |" in report
    assert "Before balancing:" in report and "| 60 |" in report
    assert "out: synthesis.csv rows that yielded no image: no_face 2." in report
    assert "24 images hashed" in report and "0 pairs within 4 bits" in report


def test_same_seed_identical_files_different_seed_different(tmp_path, out):
    def run(seed, name):
        options = SplitOptions(seed=seed, workers=1, stats=False, ratios=(0.6, 0.2, 0.2))
        run_split([Source("out", out)], tmp_path / name, options)
        return [(tmp_path / name / f"{s}.csv").read_bytes() for s in ("train", "val", "test")]

    assert run(1, "a") == run(1, "b")
    assert run(1, "a") != run(2, "c")
    assert not (tmp_path / "a" / "stats.json").exists()


def test_near_duplicate_photos_land_in_one_split(
    tmp_path, photos, copies_of, make_synthesis_folder
):
    # Inputs 0-3 are the same photo: a copy, a half-size JPEG, a 1.5x PNG, a recompression.
    raw = tmp_path / "raw"
    copies = copies_of(photos[0], raw / "copies")
    inputs = [*copies, *photos[1:20]]
    make_synthesis_folder(tmp_path / "out", inputs, negatives_every=3, incorrect_every=0)
    dup_groups = {f"out:p/{p.name}" for p in copies}
    straddled = 0
    for seed in range(6):
        for dedup in (4, None):
            options = SplitOptions(
                ratios=(0.5, 0.25, 0.25), seed=seed, dup_threshold=dedup, workers=1,
                balance="none", stats=False,
            )  # fmt: skip
            result = run_split([Source("out", tmp_path / "out")], tmp_path / "m", options)
            rows = pd.concat(df.assign(split=k) for k, df in result.manifests.items())
            mine = rows[rows["group"].isin(dup_groups)]
            assert len(mine) == 10  # 4 outputs, 4 originals, 2 negatives
            if dedup is None:
                straddled += mine["split"].nunique() > 1
                assert set(mine["group"]) == dup_groups
            else:
                assert mine["split"].nunique() == 1, seed
                assert mine["group"].nunique() == 1
                assert len(result.duplicates.pairs) == 6
                assert result.duplicates.groups_after == 20
    assert straddled > 0  # without the search, copies do leak across splits
    report = (tmp_path / "m" / "split_report.md").read_text()
    assert "Not searched (--no-dedup)." in report


def test_cli_chains_from_the_last_synthesize(tmp_path, out, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["split", "--ratios", "0.5,0.25,0.25", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Using out/ (default; synthesize output, 60 images)" in result.output
    sizes = [len(f) for f in _read_all(tmp_path / "manifests").values()]
    assert (
        f"Wrote manifests/: train {sizes[0]}, val {sizes[1]}, test {sizes[2]} images "
        "(balance: undersample)"
    ) in result.output
    assert sizes[0] == 9 and sizes[1] % 3 == 0 and sizes[2] % 3 == 0
    assert "Report: manifests/split_report.md" in result.output
    assert load_state()["manifests"] == "manifests"
    assert (tmp_path / "manifests" / "stats.json").is_file()
    # A recorded synthesize folder wins over the default.
    shutil.move(str(out), tmp_path / "gen")
    remember("synthesize_out", tmp_path / "gen")
    result = CliRunner().invoke(cli, ["split", "--ratios", "0.5,0.5", "--out", "m2", "--no-stats"])
    assert result.exit_code == 0, result.output
    assert "Using gen/ (from the last synthesize; synthesize output, 60 images)" in result.output
    assert load_state()["manifests"] == "m2"
    assert (tmp_path / "m2" / "test.csv").read_text() == (
        "path,label,group,source,mask_type,wear,weight\n"
    )


def test_cli_several_sources_class_map_and_weights(
    tmp_path, photos, masked_real_dir, monkeypatch, make_synthesis_folder
):
    monkeypatch.chdir(tmp_path)
    make_synthesis_folder(tmp_path / "out", photos[:12], negatives_every=0, incorrect_every=0)
    real = tmp_path / "photos"
    (real / "with_mask").mkdir(parents=True)
    (real / "without_mask").mkdir()
    for p in sorted(masked_real_dir.glob("*.jpg"))[:8]:
        shutil.copyfile(p, real / "with_mask" / p.name)
    for p in photos[12:16]:
        shutil.copyfile(p, real / "without_mask" / p.name)
    result = CliRunner().invoke(
        cli,
        [
            "split", "out", "real=photos", "--class-map", "with_mask=masked,without_mask=unmasked",
            "--ratios", "0.5,0.25,0.25", "--balance", "weights", "--stratify", "source",
            "--workers", "1", "--no-stats",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "Using out/ (synthesize output, 24 images), photos/ as real (class folders, 12 images)"
        in (result.output)
    )
    frames = _read_all(tmp_path / "manifests")
    rows = pd.concat(frames.values())
    assert rows.groupby(["source", "label"]).size().to_dict() == {
        ("out", "masked"): 12,
        ("out", "unmasked"): 12,
        ("real", "masked"): 8,
        ("real", "unmasked"): 4,
    }
    for frame in frames.values():
        totals = frame.groupby("label")["weight"].sum()
        np.testing.assert_allclose(totals, len(frame) / 2)
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    assert "### Per source and class" in report and "| real | masked |" in report
    assert "Sample weight per class:" in report


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--ratios", "0.8,0.1"],
            "Invalid value for '--ratios': Invalid ratios '0.8,0.1': they sum",
        ),
        (["--ratios", "0.9,-0.1,0.2"], "ratios must not be negative"),
        (["--ratios", "x,y,z"], "expected comma-separated numbers"),
        (["--class-map", "with_mask"], "expected FOUND=LABEL"),
        (["--class-map", "mask_on=masked"], "--class-map names mask_on, which is not a class"),
        (["nowhere/"], "Source folder nowhere/ does not exist"),
        (["--out", "out/manifests"], "--out out/manifests is inside source folder out"),
        (["--balance", "smote"], "Invalid value for '--balance'"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, out, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["split", *args, "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "manifests").exists()


def test_cli_without_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["split"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: No source folder given and out/ (default) does not exist; run `maskforge "
        "synthesize raw/ out/` first or pass a folder."
    )


def test_cli_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["split", "empty"])
    assert result.exit_code == 2
    assert "Error: Source empty (empty) has no images" in result.output


def test_cli_missing_and_unreadable_files(tmp_path, out, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gone = sorted((out / "masked" / "p").glob("*.jpg"))[:2]
    for path in gone:
        path.unlink()
    broken = sorted((out / "unmasked" / "p").glob("*_0.jpg"))[0]
    broken.write_bytes(b"")
    args = ["split", "--ratios", "0.5,0.25,0.25", "--workers", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert (
        "Error: 2 of 60 images listed in out/synthesis.csv are missing (first: out/masked/p/"
        in (result.output)
    )
    assert "pass --drop-missing" in result.output
    result = CliRunner().invoke(cli, [*args, "--drop-missing"])
    assert result.exit_code == 0, result.output
    assert "Left out: 2 missing, 1 unreadable images" in result.output
    rows = pd.concat(_read_all(tmp_path / "manifests").values())
    names = set(rows["abspath"].map(lambda p: Path(p).name))
    assert not names & {p.name for p in [*gone, broken]}
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    assert "2 missing, 1 unreadable:" in report and "file is empty (0 bytes)" in report


def test_cli_reports_near_duplicates_with_different_labels(
    tmp_path, photos, monkeypatch, copies_of
):
    monkeypatch.chdir(tmp_path)
    for folder, chosen in [("with_mask", photos[:8]), ("without_mask", photos[8:16])]:
        (tmp_path / "data" / folder).mkdir(parents=True)
        for p in chosen:
            shutil.copyfile(p, tmp_path / "data" / folder / p.name)
    # The same photo, recompressed, also sits among the masked ones.
    copy = copies_of(photos[8], tmp_path / "tmp")[3]
    shutil.copyfile(copy, tmp_path / "data" / "with_mask" / "copy.jpg")
    result = CliRunner().invoke(
        cli, ["split", "data", "--ratios", "0.5,0.25,0.25", "--balance", "none", "--no-stats"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "Near-duplicates: 1 pairs within 4 bits among 17 photos; 1 groups merged" in result.output
    )
    assert "1 of them have different labels: see the report" in result.output
    assert (
        "Classes: with_mask, without_mask (rename with --class-map, e.g. with_mask=masked)"
        in result.output
    )
    rows = pd.concat(_read_all(tmp_path / "manifests").values())
    pair = rows[rows["abspath"].str.endswith(("copy.jpg", f"without_mask/{photos[8].name}"))]
    assert len(pair) == 2 and pair["group"].nunique() == 1
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    assert "1 near-duplicate pairs carry different labels" in report
    assert f"| data/with_mask/copy.jpg | with_mask | data/without_mask/{photos[8].name}" in report


def test_cli_single_class_folder_warns(tmp_path, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faces").mkdir()
    for p in photos[:6]:
        shutil.copyfile(p, tmp_path / "faces" / p.name)
    result = CliRunner().invoke(cli, ["split", "faces", "--class-map", "faces=unmasked"])
    assert result.exit_code == 0, result.output
    assert "Warning: only one class (unmasked); a classifier needs two" in result.output
    assert "Wrote manifests/: train 4, val 1, test 1 images" in result.output


# --- one command at a time on an output folder; a read-only one ---------------------------------


def test_split_into_a_folder_another_command_holds_is_refused(tmp_path, out, hold_lock, one_error):
    manifests = tmp_path / "manifests"
    with hold_lock(manifests / ".maskforge.lock"):
        args = ["split", str(out), "--out", str(manifests), "--workers", "1", "--no-stats"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    line = one_error(result.output)
    assert str(manifests) in line and "in use by another maskforge command" in line
    assert [p.name for p in manifests.iterdir()] == [".maskforge.lock"]  # nothing written


def test_split_into_a_read_only_folder_is_a_one_line_error(out, read_only_refusal):
    ro, line = read_only_refusal('split "$SRC" --out "$RO/m" --workers 1 --no-stats', SRC=out)
    assert line.startswith(f"Error: Cannot write to {ro / 'm'}") and "Read-only" in line


@pytest.mark.parametrize("reading", [[], ["--no-dedup", "--no-stats"]])
def test_cli_a_fifo_among_the_photos_is_unreadable_not_missing_and_never_opened(
    tmp_path, photos, monkeypatch, fifo, reading
):
    # Whether or not split reads the photos (hashing, stats), a FIFO named like one is told
    # apart by stat alone: it is unreadable (with its reason), not missing, and never opened.
    monkeypatch.chdir(tmp_path)
    for k, photo in enumerate(photos[:12]):
        label = ("masked", "unmasked")[k % 2]
        (tmp_path / "src" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, tmp_path / "src" / label / photo.name)
    fifo(tmp_path / "src/masked/cam.jpg")
    args = ["split", "src", "--ratios", "0.5,0.5", "--workers", "1", *reading]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Error: 1 of 13 images in" in result.output
    assert "src/masked/cam.jpg: not a regular file (a FIFO)" in result.output
    result = CliRunner().invoke(cli, [*args, "--drop-missing"])
    assert result.exit_code == 0, result.output
    assert "Left out: 0 missing, 1 unreadable images" in result.output
    rows = pd.concat(_read_all(tmp_path / "manifests").values())
    assert len(rows) == 12 and "cam.jpg" not in set(rows["abspath"].map(lambda p: Path(p).name))
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    assert "not a regular file (a FIFO)" in report


def test_cli_a_fifo_in_a_flat_folder_is_unreadable_not_ignored(tmp_path, photos, monkeypatch, fifo):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flat").mkdir()
    for photo in photos[:4]:
        shutil.copy(photo, tmp_path / "flat" / photo.name)
    fifo(tmp_path / "flat/pipe.png")
    result = CliRunner().invoke(cli, ["split", "flat", "--ratios", "0.5,0.5", "--workers", "1"])
    assert result.exit_code == 2
    assert "1 of 5 images in the sources cannot be read" in result.output
    assert "flat/pipe.png: not a regular file (a FIFO)" in result.output
