"""Bad files and names on the way in and out: special files, size and format limits, decoder
bugs, long and non-UTF-8 names, file modes, and predict never writing over what it reads.

Each test asserts on the files and CSV rows left afterwards, not only on the exit code.
Empty, truncated, 16-bit, CMYK, RGBA, palette, EXIF-rotated and other odd files are checked in
tests/test_imageio.py and, end to end, in tests/test_cli_synthesize.py (bad_input_tree).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from maskforge.cli import cli
from maskforge.core import imageio
from maskforge.core.imageio import (
    ImageTooLargeError,
    UnreadableImageError,
    atomic_write_text,
    decode_image,
    read_image,
    write_image,
)
from maskforge.core.paths import fit_name, fit_stem, printable

GOOD = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0025.jpg")
LONG = "L" * 246 + ".jpg"  # a 250-byte file name: the temporary and output names must stay short
BUGGY_SIZE = (301, 299)  # the photo whose EXIF code raises struct.error in the faulty run
HUGE = (8100, 8100)  # 65.6 M pixels: over choices.MAX_PIXELS, cheap as a 1-bit PNG
SYNTH = ("--workers", "1", "--mask-type", "surgical")


def rows_of(out: Path) -> list[dict]:
    with open(out / "synthesis.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _png(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


# -- 1. what read_image opens -----------------------------------------------------------------


def test_a_fifo_named_jpg_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list = []

    def read() -> None:
        try:
            read_image(fifo)
        except UnreadableImageError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so that the test process can end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(5)
        pytest.fail("read_image blocked on a FIFO")
    assert outcome and "not a regular file" in outcome[0] and "FIFO" in outcome[0]


def test_a_jpg_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "dev.jpg"
    link.symlink_to("/dev/null")
    with pytest.raises(UnreadableImageError, match="not a regular file \\(a device\\)"):
        read_image(link)


def test_a_file_over_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:  # sparse: 513 MiB on paper, nothing on disk
        fh.truncate(513 * 2**20)
    reads: list = []
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: reads.append(a) or real_fdopen(*a, **k))
    with pytest.raises(ImageTooLargeError, match="513 MiB, over the limit of 512 MiB"):
        read_image(big)
    assert reads == []  # refused from the stat alone
    small = tmp_path / "small.png"
    small.write_bytes(_png(Image.new("RGB", (4, 4))))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        read_image(small, max_bytes=10)


@pytest.mark.parametrize(
    "data, fmt",
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "EPS"),
        (None, "GIF"),
        (None, "TIFF"),
    ],
)
def test_other_formats_behind_a_jpg_name_are_refused(tmp_path, data, fmt):
    if data is None:
        import io

        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format=fmt)
        data = buf.getvalue()
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(UnreadableImageError, match=f"not a supported image format \\({fmt};"):
        read_image(path)


def test_importing_imageio_leaves_pillows_bomb_guard_alone():
    code = (
        "from PIL import Image; default = Image.MAX_IMAGE_PIXELS; "
        "import maskforge.core.imageio; "
        "assert default and Image.MAX_IMAGE_PIXELS == default, Image.MAX_IMAGE_PIXELS"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_our_pixel_limit_is_per_call_and_pillows_bomb_errors_are_too_large(monkeypatch):
    data = _png(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageTooLargeError, match="10,000 pixels exceeds the limit of 9,999"):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
    for guard in (1_000, 8_000):  # an error above 2x Pillow's limit, a warning above 1x
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", guard)
        with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
            decode_image(data)


# -- 2. decoder bugs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, name", [(struct.error("bad"), "struct.error"), (ZeroDivisionError("x"), "ZeroDivision")]
)
def test_any_decoder_exception_is_unreadable_with_its_type(monkeypatch, exc, name):
    def broken(im, **kw):
        raise exc

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    with pytest.raises(UnreadableImageError, match=f"cannot decode image: {name}"):
        decode_image(_png(Image.new("RGB", (5, 5))))


def test_memory_error_is_not_swallowed(monkeypatch):
    def broken(im, **kw):
        raise MemoryError

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    with pytest.raises(MemoryError):
        decode_image(_png(Image.new("RGB", (5, 5))))


@pytest.fixture(scope="module")
def faulty_run(unmasked_dir: Path, tmp_path_factory):
    """synthesize over good photos, one with a 250-byte name and one whose EXIF code raises
    struct.error, under umask 027."""
    raw = tmp_path_factory.mktemp("raw")
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    shutil.copy(unmasked_dir / GOOD[1], raw / LONG)
    Image.open(unmasked_dir / GOOD[2]).convert("RGB").resize(BUGGY_SIZE).save(raw / "exif.jpg")
    out = tmp_path_factory.mktemp("out") / "out"
    real = ImageOps.exif_transpose

    def buggy(im, **kw):
        if im.size == BUGGY_SIZE:
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real(im, **kw)

    old = os.umask(0o027)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ImageOps, "exif_transpose", buggy)
            result = CliRunner().invoke(cli, ["synthesize", str(raw), str(out), *SYNTH])
    finally:
        os.umask(old)
    return raw, out, result


def test_a_decoder_bug_is_one_unreadable_row_and_the_batch_goes_on(faulty_run):
    _, out, result = faulty_run
    from maskforge.commands.synthesize import EXIT_SOME_FAILED

    assert result.exit_code == EXIT_SOME_FAILED, result.output
    rows = {r["input"]: r for r in rows_of(out)}
    assert rows["exif.jpg"]["status"] == "unreadable"
    assert "struct.error: unpack requires a buffer of 4 bytes" in rows["exif.jpg"]["reason"]
    assert rows["a.jpg"]["status"] == "ok" and (out / rows["a.jpg"]["output"]).is_file()


def test_a_250_byte_name_is_masked_with_a_short_output_name(faulty_run):
    raw, out, _ = faulty_run
    rows = [r for r in rows_of(out) if r["input"] == LONG]
    assert [r["status"] for r in rows] == ["ok"]
    for column in ("output", "original"):
        written = out / rows[0][column]
        assert written.is_file()
        assert len(os.fsencode(written.name)) <= 255
        assert written.name.startswith("L" * 200) and "~" in written.name
    assert not [p for p in out.rglob(".*") if p.name.endswith(".tmp")]
    assert (raw / LONG).is_file()


def test_outputs_follow_the_umask(faulty_run):
    _, out, _ = faulty_run
    images = [p for p in out.rglob("*.jpg")]
    assert images and {mode_of(p) for p in images} == {0o640}
    assert mode_of(out / "run.json") == 0o640


def test_synthesis_csv_follows_the_umask(faulty_run):
    _, out, _ = faulty_run
    assert mode_of(out / "synthesis.csv") == 0o640


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_follow_the_umask_of_the_moment(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_image(tmp_path / "b.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a.txt") == mode_of(tmp_path / "b.png") == mode


def test_temporary_names_stay_short_for_a_long_target(tmp_path, monkeypatch):
    seen: list = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: seen.append(a) or real_replace(a, b))
    atomic_write_text(tmp_path / ("n" * 250 + ".csv"), "x")
    assert len(seen) == 1 and len(os.path.basename(seen[0])) < 30
    assert [p.name for p in tmp_path.iterdir()] == ["n" * 250 + ".csv"]


# -- 4. names ------------------------------------------------------------------------------------


def test_printable_and_fit_name():
    assert printable("plain é.jpg") == "plain é.jpg"
    odd = os.fsdecode(b"\xff\xfe.jpg")
    assert printable(odd) == "\\xff\\xfe.jpg" and printable(printable(odd)) == printable(odd)
    assert fit_name("short", 10) == "short"
    cut = fit_name("é" * 200, reserve=10)
    assert len(cut.encode()) <= 245 and cut == fit_name("é" * 200, reserve=10)
    assert cut != fit_name("é" * 199 + "x", reserve=10)  # same start, other hash
    assert fit_stem("sub/" + "a" * 300, 10).startswith("sub/a")


def test_a_non_utf8_name_is_recorded_escaped_and_the_batch_goes_on(unmasked_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a.jpg")
    shutil.copy(unmasked_dir / GOOD[3], os.path.join(os.fsencode(raw), b"\xff\xfe.jpg"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["synthesize", str(raw), str(out), *SYNTH])
    assert result.exit_code in (0, 3), result.output
    rows = {r["input"]: r for r in rows_of(out)}
    assert set(rows) == {"a.jpg", "\\xff\\xfe.jpg"}
    odd = rows["\\xff\\xfe.jpg"]
    assert odd["status"] in ("ok", "no_face"), odd
    if odd["status"] == "ok":
        assert (out / odd["output"]).is_file()
    rerun = CliRunner().invoke(cli, ["synthesize", str(raw), str(out), *SYNTH])
    assert rerun.exit_code in (0, 3) and len(rows_of(out)) == len(rows)  # resumed, no duplicate


def test_a_line_break_in_a_name_stays_inside_one_csv_row_and_a_cut_journal_loses_no_row(
    unmasked_dir, tmp_path
):
    from maskforge.synth.run.journal import JOURNAL, load_done, rows_text

    assert printable("a\nb\r.jpg") == "a\\x0ab\\x0d.jpg" == printable(printable("a\nb\r.jpg"))
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(unmasked_dir / GOOD[0], raw / "a\nb.jpg")
    shutil.copy(unmasked_dir / GOOD[1], raw / "c.jpg")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["synthesize", str(raw), str(out), *SYNTH])
    assert result.exit_code == 0, result.output
    rows = {r["input"]: r for r in rows_of(out)}
    assert set(rows) == {"a\\x0ab.jpg", "c.jpg"}
    assert (out / rows["a\\x0ab.jpg"]["output"]).is_file()
    lines = (out / "synthesis.csv").read_text().splitlines()
    assert len(lines) == 1 + len(rows)  # every row on one line
    rerun = CliRunner().invoke(cli, ["synthesize", str(raw), str(out), *SYNTH])
    assert rerun.exit_code == 0 and len(rows_of(out)) == len(rows)  # resumed, no duplicate
    # A message with line breaks is written on one line, so a kill at any byte of the last
    # photo's write leaves the rows before it whole and none made from its parts.
    row = {**rows["c.jpg"], "input": "d.jpg", "status": "error", "reason": "first\nsecond"}
    text = rows_text([row])
    assert text.count("\n") == 1 and "first second" in text
    header = (out / "synthesis.csv").read_text().splitlines()[0] + "\n"
    kept = rows_text([{**rows["c.jpg"], "input": "e.jpg"}])
    for cut in range(0, len(text), 7):
        (out / JOURNAL).write_text(header + kept + text[:cut])
        done = load_done(out)
        assert "e.jpg" in done and "d.jpg" not in done, cut


# -- 3. too-large images in dataset and preview ---------------------------------------------------


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", HUGE).save(path)
    return path


def test_split_drop_missing_leaves_a_too_large_image_out(
    unmasked_dir, huge_png, tmp_path, monkeypatch
):
    photos = tmp_path / "photos"
    names = sorted(p.name for p in unmasked_dir.glob("*.jpg"))[:8]
    for label, chosen in (("unmasked", names[:4]), ("masked", names[4:])):
        (photos / label).mkdir(parents=True)
        for name in chosen:
            shutil.copy(unmasked_dir / name, photos / label / name)
    shutil.copy(huge_png, photos / "unmasked" / "huge.png")
    monkeypatch.chdir(tmp_path)
    args = ["split", "photos", "--drop-missing", "--workers", "1", "--ratios", "0.5,0.25,0.25"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "manifests").glob("*.csv")))
    assert not rows["path"].astype(str).str.contains("huge").any()
    assert len(rows) >= 4
    report = (tmp_path / "manifests" / "split_report.md").read_text()
    assert "huge.png" in report or "huge.png" in result.output
    for written in [*(tmp_path / "manifests").iterdir()]:
        assert mode_of(written) == 0o666 & ~_umask(), written


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_stats_and_duplicates_list_a_too_large_image(unmasked_dir, huge_png):
    from maskforge.dataset.duplicates import hash_images
    from maskforge.dataset.stats import channel_stats

    good = str(unmasked_dir / GOOD[0])
    stats = channel_stats([good, str(huge_png)], size=16)
    assert [p for p, _ in stats.unreadable] == [str(huge_png)]
    assert "pixels exceeds the limit" in stats.unreadable[0][1] and stats.count == 1
    hashes, unreadable = hash_images([good, str(huge_png)])
    assert [p for p, _ in unreadable] == [str(huge_png)] and hashes[0] != 0


def test_preview_draws_a_note_for_a_too_large_image(huge_png):
    from maskforge.synth.preview.sheet import _image_or_note

    tile, bad = _image_or_note(huge_png, 64)
    assert bad and tile.shape[:2] == (64, 64)


# -- 6. predict never writes over or inside its inputs ------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    import torch

    from maskforge.learn.models import CheckpointInfo, build_model, checkpoint_dict

    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    info = CheckpointInfo("resnet18", ["unmasked", "masked"], 32, [0.5] * 3, [0.25] * 3)
    torch.save(checkpoint_dict(build_model("resnet18", 1).eval(), info), root / "best.pt")
    return root


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "cwd, args, message",
    [
        ("photos", ["a.jpg", "--out", "."], "holds the input file a.jpg"),
        (".", ["photos", "--out", "photos/sub"], "is inside the input folder photos"),
        (".", ["photos/sub", "--out", "."], "holds the input folder photos/sub"),
        (".", ["photos", "--out", "."], "holds the input folder photos"),
    ],
)
def test_predict_refuses_an_out_over_or_inside_its_inputs(
    tiny_run, tmp_path, monkeypatch, cwd, args, message
):
    photos = tmp_path / "photos"
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    write_image(photos / "a.jpg", rgb)
    write_image(photos / "sub" / "b.jpg", rgb)
    before = _digests(photos)
    monkeypatch.chdir(tmp_path / cwd)
    result = CliRunner().invoke(cli, ["predict", *args, "--run", str(tiny_run)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "--out" in result.output
    assert "Traceback" not in result.output
    assert _digests(photos) == before


def test_predict_refuses_a_target_that_resolves_to_an_input(tmp_path):
    from maskforge.deploy.predict import collect_inputs

    photos, out = tmp_path / "photos", tmp_path / "out"
    write_image(photos / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    (out / "photos").parent.mkdir()
    (out / "photos").symlink_to(photos)  # out/photos/a.jpg is the input itself
    with pytest.raises(ValueError, match="would overwrite the input"):
        collect_inputs([photos], out)


def test_imageio_module_keeps_its_public_names():
    for name in ("read_image", "decode_image", "atomic_write_bytes", "temporary_file"):
        assert callable(getattr(imageio, name))
