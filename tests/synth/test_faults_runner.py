"""The batch runner under faults: a second run on a used folder, --overwrite that must not lose
the old index, another input folder, clashing names, --boxes rows and folders that match
nothing, a photo that kills its worker, and a journal cut short."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

import maskforge.synth.run.runner as runner
from maskforge.cli import cli
from maskforge.synth.run.journal import finalize, load_done
from maskforge.synth.run.records import (
    CSV_COLUMNS,
    CSV_NAME,
    JOURNAL,
    LOCK_FILE,
    OVERWRITE_JOURNAL,
    OVERWRITE_RUN_FILE,
    RUN_FILE,
)
from maskforge.synth.run.stems import (
    NEGATIVE_SUFFIX,
    RecordedStems,
    folder_stems,
    per_face_prefixes,
    recorded_stem,
)

GOOD = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0025.jpg")
ONE_WORKER = ("--workers", "1", "--mask-type", "surgical")


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def rows_of(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="") as fh:
        return list(csv.DictReader(fh))


def photos(unmasked_dir: Path, folder: Path, names=GOOD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(unmasked_dir / name, folder / name)
    return folder


def test_a_locked_folder_is_refused_and_a_killed_holder_leaves_no_stale_lock(
    unmasked_dir, tmp_path
):
    raw, out = photos(unmasked_dir, tmp_path / "raw", GOOD[:2]), tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'pid %d on testhost, started now' % os.getpid())\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(out / LOCK_FILE),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, output = run("synthesize", raw, out, *ONE_WORKER)
        assert code == 2, output
        assert "in use by another maskforge command" in output and f"pid {holder.pid}" in output
        assert len([line for line in output.splitlines() if line.startswith("Error")]) == 1
        assert not (out / CSV_NAME).exists() and not (out / JOURNAL).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    assert code in (0, 3), output
    assert {r["input"] for r in rows_of(out)} == set(GOOD[:2])
    assert not (out / LOCK_FILE).exists()  # released and removed at the end of the run


def test_overwrite_with_an_empty_input_is_refused_and_keeps_the_old_index(unmasked_dir, tmp_path):
    raw, out = photos(unmasked_dir, tmp_path / "raw", GOOD[:2]), tmp_path / "out"
    code, _ = run("synthesize", raw, out, *ONE_WORKER)
    assert code in (0, 3)
    before = {name: (out / name).read_bytes() for name in (CSV_NAME, RUN_FILE)}
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no photo here")
    code, output = run("synthesize", empty, out, *ONE_WORKER, "--overwrite")
    assert code == 2 and "No photos under" in output, output
    assert {name: (out / name).read_bytes() for name in before} == before
    fresh = tmp_path / "fresh"
    code, output = run("synthesize", empty, fresh, *ONE_WORKER)
    assert code == 2 and not fresh.exists()  # refused before the output folder is made


def test_overwrite_killed_midway_keeps_the_old_index_and_then_resumes(unmasked_dir, tmp_path):
    old_raw = photos(unmasked_dir, tmp_path / "old", GOOD[:1])
    names = sorted(os.listdir(unmasked_dir))[::60][:8]
    new_raw, out = photos(unmasked_dir, tmp_path / "new", names), tmp_path / "out"
    code, _ = run("synthesize", old_raw, out, *ONE_WORKER)
    assert code in (0, 3)
    old_csv, old_run = (out / CSV_NAME).read_bytes(), (out / RUN_FILE).read_bytes()
    cmd = [sys.executable, "-m", "maskforge", "synthesize", str(new_raw), str(out)]
    proc = subprocess.Popen(
        [*cmd, *ONE_WORKER, "--overwrite"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = out / OVERWRITE_JOURNAL
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        started = [j for j in (journal, out / JOURNAL) if j.is_file()]
        if started and started[0].read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / CSV_NAME).is_file() and (out / CSV_NAME).read_bytes() == old_csv
    assert journal.is_file(), "the run ended before it could be killed"
    assert (out / RUN_FILE).read_bytes() == old_run
    code, output = run("synthesize", new_raw, out, *ONE_WORKER)  # no --overwrite: refused
    assert code == 2 and "--overwrite" in output and "did not finish" in output, output
    assert (out / CSV_NAME).read_bytes() == old_csv
    code, output = run("synthesize", new_raw, out, *ONE_WORKER, "--overwrite")
    assert code in (0, 3), output
    assert " 0 already done" not in output  # it resumed the killed --overwrite run
    rows = rows_of(out)
    assert {r["input"] for r in rows} == set(names)
    assert len(rows) == len({(r["input"], r["face"]) for r in rows})
    assert not [n for n in (OVERWRITE_JOURNAL, OVERWRITE_RUN_FILE, JOURNAL) if (out / n).exists()]
    assert str(new_raw.resolve()) in (out / RUN_FILE).read_text()


def test_resume_from_another_input_folder_is_refused(unmasked_dir, tmp_path):
    raw1 = photos(unmasked_dir, tmp_path / "one", GOOD[:1])
    raw2 = photos(unmasked_dir, tmp_path / "two", GOOD[1:2])
    out = tmp_path / "out"
    code, _ = run("synthesize", raw1, out, *ONE_WORKER)
    assert code in (0, 3)
    before = (out / CSV_NAME).read_bytes()
    code, output = run("synthesize", raw2, out, *ONE_WORKER)
    assert code == 2, output
    assert "input" in output and str(raw2.resolve()) in output and "--overwrite" in output
    assert (out / CSV_NAME).read_bytes() == before


def test_clashing_names_in_one_folder_get_distinct_stems(tmp_path):
    for name in ("a.jpg", "a.png", "a_jpg.jpg", "A.JPG", "b.jpg", "c.jpeg", "c_jpeg_2.png"):
        (tmp_path / name).write_bytes(b"")
    stems = {rel: stem for _, rel, stem in runner.plan_inputs(tmp_path)}
    assert len({s.lower() for s in stems.values()}) == len(stems), stems
    assert stems["b.jpg"] == "b"  # no clash: the name it always had
    assert stems["a_jpg.jpg"] == "a_jpg"  # a photo's own name wins over a made-up one
    assert stems["c_jpeg_2.png"] == "c_jpeg_2"


def test_a_photo_named_like_a_negative_output_gets_a_stem_of_its_own(tmp_path):
    names = ("a.jpg", "a_neg.jpg", "B.png", "b_NEG.jpg", "c_neg.jpg", "x.jpg", "x.png")
    for name in (*names, "x_jpg_neg.jpg", "a_neg_2.jpg"):
        (tmp_path / name).write_bytes(b"")
    stems = {rel: stem for _, rel, stem in runner.plan_inputs(tmp_path)}
    assert stems["a.jpg"] == "a" and stems["B.png"] == "B"  # the base names keep theirs
    assert stems["a_neg.jpg"] == "a_neg_3"  # a_neg_2 is another photo's own name
    assert stems["b_NEG.jpg"] == "b_NEG_2"  # case aside, as file systems may fold it
    assert stems["c_neg.jpg"] == "c_neg"  # no photo c: no clash, no new name
    assert stems["x_jpg_neg.jpg"] == "x_jpg_neg" and stems["x.jpg"] == "x_jpg_2"
    # No photo's stem is another's stem or the name of another's negative (stem_neg).
    keys = [s.lower() for s in stems.values()]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {k + NEGATIVE_SUFFIX for k in keys}


def test_with_whole_and_per_face_photos_no_stem_is_another_photos_face_name(tmp_path):
    names = ["a.jpg", "a_0.jpg", "a_1_neg.jpg", "b.png", "B_12.jpg", "c_0.jpg", "d.jpg", "d.png"]
    paths = [tmp_path / n for n in sorted(names)]
    plain = dict(zip(sorted(names), folder_stems(paths)))
    assert plain["a_0.jpg"] == "a_0" and plain["B_12.jpg"] == "B_12"  # one framing: no clash
    stems = dict(zip(sorted(names), folder_stems(paths, mixed=True)))
    assert stems["a.jpg"] == "a" and stems["b.png"] == "b" and stems["c_0.jpg"] == "c_0"
    assert stems["a_0.jpg"] == "a_0_v2" and stems["a_1_neg.jpg"] == "a_1_neg_v2"
    assert stems["B_12.jpg"] == "B_12_v2"
    assert (stems["d.jpg"], stems["d.png"]) == ("d_jpg", "d_png")
    # Every file name a photo may write (whole or per face, with negatives) is its own.
    files = Counter()
    for stem in {s.lower() for s in stems.values()}:
        for name in (stem, *(f"{stem}_{face}" for face in range(13))):
            files.update((name, name + NEGATIVE_SUFFIX))
    assert set(files.values()) == {1}


def test_a_photo_added_before_a_resume_never_takes_a_recorded_photos_files(unmasked_dir, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    shutil.copy(unmasked_dir / GOOD[1], raw / "a.png")
    options = (*ONE_WORKER, "--masks-per-face", "2", "--negatives", "hand", "--negative-rate", "1")
    assert run("synthesize", raw, out, *options)[0] == 0
    first = {r["output"]: (out / r["output"]).read_bytes() for r in rows_of(out)}
    assert "masked/a_jpg_0.jpg" in first and "masked/a_jpg_m1_0.jpg" in first
    # a_jpg.jpg alone would be stem a_jpg, and a.jpg now a_jpg_2: the new photo would write
    # a.jpg's recorded files.
    shutil.copy(unmasked_dir / GOOD[2], raw / "a_jpg.jpg")
    code, output = run("synthesize", raw, out, *options)
    assert code == 0, output
    rows = rows_of(out)
    assert {r["output"]: (out / r["output"]).read_bytes() for r in rows[: len(first)]} == first
    added = [r for r in rows if r["input"] == "a_jpg.jpg"]
    assert [r["output"] for r in added] == ["masked/a_jpg_2_0.jpg", "masked/a_jpg_2_m1_0.jpg"]
    for column in ("output", "original", "negative"):
        names = [r[column].lower() for r in rows]
        assert len(set(names)) == len(names), column
        assert all((out / name).is_file() for name in names)


def test_a_resume_with_an_unchanged_listing_plans_the_stems_a_fresh_run_does(tmp_path):
    names = ["a.jpg", "a.png", "a_jpg.jpg", "a_0.jpg", "a_neg.jpg", "b.jpg", "b_m1.jpg", "c.jpg"]
    paths = [tmp_path / n for n in sorted(names)]
    fresh = folder_stems(paths, mixed=True, draws=2)
    done = [i % 2 == 0 for i in range(len(paths))]
    claims = {s.lower() for s, d in zip(fresh, done) if d}
    prefixes = {p for s in claims for p in per_face_prefixes(s, 2)}
    recorded = RecordedStems(claims, prefixes, draws=2)
    resumed = folder_stems(paths, mixed=True, draws=2, recorded=recorded, done=done)
    assert [s for s, d in zip(resumed, done) if not d] == [s for s, d in zip(fresh, done) if not d]


def test_a_new_photo_keeps_clear_of_each_kind_of_recorded_file(tmp_path):
    def stem_of(name: str, recorded_stems: set[str], mixed: bool = False, draws: int = 1) -> str:
        prefixes = {p for s in recorded_stems for p in per_face_prefixes(s, draws)}
        recorded = RecordedStems(recorded_stems, prefixes, draws)
        return folder_stems([tmp_path / name], mixed, draws, recorded, [False], "sub")[0]

    assert stem_of("a.jpg", {"sub/b"}) == "a"  # no clash: its own name
    assert stem_of("a.jpg", {"other/a"}) == "a"  # another folder's files are apart
    assert stem_of("a.jpg", {"sub/a"}) == "a_2"
    assert stem_of("a.jpg", {"sub/a_neg"}) == "a_2"  # a's negative is a_neg's output
    assert stem_of("a_neg.jpg", {"sub/a"}) == "a_neg_2"  # and the other way round
    assert stem_of("a_m1.jpg", {"sub/a"}, draws=2) == "a_m1_2"  # a's second mask draw
    assert stem_of("a.jpg", {"sub/a_m1"}, draws=2) == "a_2"
    assert stem_of("a_0.jpg", {"sub/a"}) == "a_0"  # one framing: a_0 is whole-photo only
    assert stem_of("a_0.jpg", {"sub/a"}, mixed=True) == "a_0_v2"  # a's face 0
    assert stem_of("a.jpg", {"sub/a_0"}, mixed=True) == "a_v2"  # a's face 0 is a_0.jpg


def test_the_stem_of_a_recorded_row_is_the_one_its_photo_was_planned_with():
    assert recorded_stem("masked/a_jpg_0.jpg", "0", "crop", 0) == "a_jpg"
    assert recorded_stem("masked/Sub/a_jpg_m2_11.jpg", "11", "closeup", 2) == "sub/a_jpg"
    assert recorded_stem("unmasked/b_0_neg.jpg", "0", "crop", 0, negative=True) == "b"
    assert recorded_stem("masked/x_neg.jpg", "0", "full", 0) == "x_neg"  # a photo x_neg.jpg
    assert recorded_stem("masked/c_1.jpg", "1", "full", 0) == "c_1"  # whole: no face suffix
    assert recorded_stem("masked/d_m1.jpg", "0", "full", 1) == "d"
    assert recorded_stem("incorrect/e_3.jpg", "3", "", 0) == "e"  # a row from before framing


def test_load_done_reads_the_stems_of_recorded_outputs(tmp_path):
    with open(tmp_path / CSV_NAME, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerow({"input": "a.jpg", "face": "0", "output": "masked/a_jpg_0.jpg"})
        writer.writerow({"input": "a.jpg", "face": "0", "output": "masked/a_jpg_m1_0.jpg",
                         "mask_draw": "1"})  # fmt: skip
        writer.writerow({"input": "s/x.jpg", "face": "", "status": "no_face"})
        writer.writerow({"input": "s/y_0.jpg", "face": "0", "output": "masked/s/y_0.jpg",
                         "framing": "full"})  # fmt: skip
    done = load_done(tmp_path, draws=2, per_face=True)
    assert "a.jpg" in done and "s/x.jpg" in done and len(done) == 3
    recorded = done.recorded
    assert "a_jpg" in recorded.stems and "s/y_0" in recorded.stems
    assert "a_jpg_m1" not in recorded.stems and "s/x" not in recorded.stems  # x wrote nothing
    assert recorded.clashes("s/y", per_face=True) and not recorded.clashes("s/y", per_face=False)
    assert load_done(tmp_path).recorded is None  # not asked for: nothing kept


def test_a_framing_mix_never_writes_over_another_photos_crop(unmasked_dir, tmp_path):
    """Seed 2 writes a.jpg per face (masked/a_0.jpg) and a_0.jpg whole: the same name."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    shutil.copy(unmasked_dir / GOOD[1], raw / "a_0.jpg")
    # --pattern none: the draws after the pattern's (framing) do not hang on the default's.
    options = ("--framing", "crop,full", "--pattern", "none", "--seed", 2, "--far-camera", "0")
    code, output = run("synthesize", raw, out, *ONE_WORKER, *options)
    assert code == 0, output
    rows = {r["input"]: r for r in rows_of(out)}
    assert {k: rows[k]["framing"] for k in rows} == {"a.jpg": "crop", "a_0.jpg": "full"}
    files = [rows[k][c] for k in rows for c in ("output", "original")]
    assert len(set(files)) == 4 and all((out / f).is_file() for f in files), files
    whole = Image.open(out / rows["a_0.jpg"]["output"]).size
    assert whole == Image.open(raw / "a_0.jpg").size  # the whole photo, not a's crop


def test_full_frame_negatives_never_overwrite_another_photos_output(unmasked_dir, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    shutil.copy(unmasked_dir / GOOD[1], raw / "a_neg.jpg")
    negatives = ("--full-frame", "--negatives", "hand", "--negative-rate", "1", "--far-camera", "0")
    code, output = run("synthesize", raw, out, *ONE_WORKER, *negatives)
    assert code == 0, output
    rows = {r["input"]: r for r in rows_of(out)}
    assert {k: rows[k]["status"] for k in rows} == {"a.jpg": "ok", "a_neg.jpg": "ok"}
    assert rows["a.jpg"]["negative"] == "unmasked/a_neg.jpg"  # a.jpg's negative, as before
    files = [rows[k][c] for k in rows for c in ("output", "original", "negative")]
    assert len(set(files)) == 6 and all((out / f).is_file() for f in files), files
    # Each file is the size of its own photo: nothing was written over by the other photo.
    for name, row in rows.items():
        size = Image.open(raw / name).size
        assert {Image.open(out / row[c]).size for c in ("output", "original", "negative")} == {size}
    assert Image.open(raw / "a.jpg").size != Image.open(raw / "a_neg.jpg").size


def test_clashing_names_give_distinct_output_files(unmasked_dir, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    Image.open(unmasked_dir / GOOD[1]).save(raw / "a.png")
    shutil.copy(unmasked_dir / GOOD[2], raw / "a_jpg.jpg")
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    assert code in (0, 3), output
    ok = [r for r in rows_of(out) if r["status"] == "ok"]
    assert {r["input"] for r in ok} == {"a.jpg", "a.png", "a_jpg.jpg"}
    outputs = [r["output"] for r in ok] + [r["original"] for r in ok]
    assert len(set(outputs)) == len(outputs)
    assert all((out / name).is_file() for name in outputs)


def test_boxes_rows_naming_no_photo_and_unreadable_folders_are_reported(
    unmasked_dir, tmp_path, monkeypatch
):
    raw, out = photos(unmasked_dir, tmp_path / "raw", GOOD[:1]), tmp_path / "out"
    photos(unmasked_dir, raw / "locked", GOOD[1:2])
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        f"image,left,top,right,bottom\n{GOOD[0]},10,10,120,120\n"
        "gone/missing.jpg,1,1,50,50\ntypo.jpg,1,1,50,50\n"
    )
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == raw / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, output = run("synthesize", raw, out, *ONE_WORKER, "--boxes", boxes)
    assert code in (0, 3), output
    assert "2 image(s) in --boxes name no photo" in output
    assert "gone/missing.jpg" in output and "typo.jpg" in output
    assert "1 folder(s) could not be read" in output and "locked: Permission denied" in output
    assert {r["input"] for r in rows_of(out)} == {GOOD[0]}


def test_a_photo_that_kills_its_worker_is_an_error_row_and_the_batch_goes_on(
    unmasked_dir, tmp_path, monkeypatch
):
    from crashing_worker import crashing_synthesis_worker

    raw, out = photos(unmasked_dir, tmp_path / "raw", GOOD[:3]), tmp_path / "out"
    shutil.copy(unmasked_dir / GOOD[3], raw / "crash.jpg")
    monkeypatch.setattr(runner, "synthesis_worker", crashing_synthesis_worker)
    code, output = run("synthesize", raw, out, "--workers", "2", "--mask-type", "surgical")
    assert code == 3, output  # one photo gave no masked face
    rows = rows_of(out)
    crashed = [r for r in rows if r["input"] == "crash.jpg"]
    assert [(r["status"], r["reason"]) for r in crashed] == [("error", "worker died: signal 9")]
    assert {r["input"] for r in rows if r["status"] == "ok"} == set(GOOD[:3])
    assert "error 1" in output


def test_resume_state_streams_a_journal_cut_short(tmp_path):
    header = ",".join(CSV_COLUMNS) + "\n"
    (tmp_path / CSV_NAME).write_text(header + "old.jpg,0,ok" + "," * 16 + "\n")
    rows = "".join(f"p{i}.jpg,{f},ok" + "," * 16 + "\n" for i in range(500) for f in (0, 1))
    (tmp_path / JOURNAL).write_text(header + rows + "p500.jpg,0,o")  # a kill -9 mid-write
    done = load_done(tmp_path)
    assert len(done) == 501 and "p499.jpg" in done and "old.jpg" in done
    assert "p500.jpg" not in done
    finalize(tmp_path)
    final = rows_of(tmp_path)
    assert len(final) == 1001 and final[-1]["input"] == "p499.jpg"
    assert not (tmp_path / JOURNAL).exists()
