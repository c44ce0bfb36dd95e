"""synthesize when the output's storage fails: a full disk (a patched write, and a real small
tmpfs), a read-only out/, out/ removed mid-run, a photo deleted mid-run, and SIGTERM.

Each test asserts on the files and rows left afterwards: a clear one-line error, no
half-written file, nothing that was there before lost, and a rerun once the fault is gone
that completes with every photo recorded once.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from namespaces import namespaces_work
from PIL import Image

from maskforge.cli import cli
from maskforge.synth.run.pipeline import Synthesizer
from maskforge.synth.run.records import CSV_NAME, JOURNAL, LOCK_FILE

REPO = Path(__file__).resolve().parents[2]
ONE_WORKER = ("--workers", "1", "--mask-type", "surgical")
N_PHOTOS = 6


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def rows_of(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def images(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*.jpg"))
        if p.is_file()
    }


def leftovers(out: Path) -> list[str]:
    """Temporary files and the lock: what a run must never leave behind."""
    return [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_FILE]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error")]


def assert_complete(out: Path, names: list[str]) -> None:
    """Every photo recorded once, every file a row names there and decodable, no leftovers."""
    rows = rows_of(out)
    assert sorted({r["input"] for r in rows}) == sorted(names)
    assert set(Counter((r["input"], r["face"]) for r in rows).values()) == {1}
    for row in rows:
        for key in ("output", "original"):
            if row[key]:
                Image.open(out / row[key]).load()  # whole: a cut file raises here
    assert not leftovers(out) and not (out / JOURNAL).exists()


@pytest.fixture
def raw(unmasked_dir: Path, tmp_path: Path) -> Path:
    """N_PHOTOS real photos in tmp_path/raw."""
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in sorted(os.listdir(unmasked_dir))[::97][:N_PHOTOS]:
        shutil.copy(unmasked_dir / name, folder / name)
    return folder


# -- a full disk, by a patched write ----------------------------------------------------------


class FullDisk:
    """os.fdopen for files opened to write, with `room` bytes left on the "disk": a write past
    it writes what fits, then raises ENOSPC (as a real full disk does)."""

    def __init__(self, room: int):
        self.room = room
        self.real = os.fdopen

    def fdopen(self, fd, mode="r", *args, **kwargs):
        fh = self.real(fd, mode, *args, **kwargs)
        return _FillingFile(fh, self) if "w" in mode else fh


class _FillingFile:
    def __init__(self, fh, disk: FullDisk):
        self.fh, self.disk = fh, disk

    def write(self, data):
        fits = data[: max(0, self.disk.room)]
        self.fh.write(fits)
        self.disk.room -= len(data)
        if len(fits) < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_a_full_disk_stops_the_run_keeps_everything_and_a_rerun_completes(
    raw, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    code, output = run("synthesize", raw, out, *ONE_WORKER, "--limit", "2")
    assert code in (0, 3), output
    before_csv, before_images = (out / CSV_NAME).read_bytes(), images(out)
    per_photo = sum(map(len, before_images.values())) // 2
    disk = FullDisk(room=int(per_photo * 1.5))  # one more photo fits, the next does not
    monkeypatch.setattr(os, "fdopen", disk.fdopen)
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    monkeypatch.undo()
    assert code == 2, output
    (line,) = error_lines(output)
    assert line.startswith(f"Error: Cannot write to {out}: No space left on device")
    assert "rerun the same command to resume" in line and "Traceback" not in output
    # Nothing lost: the index and the images of the first run are as they were.
    assert (out / CSV_NAME).read_bytes() == before_csv
    assert {k: v for k, v in images(out).items() if k in before_images} == before_images
    assert not leftovers(out)  # the cut temporary file went with the failed write
    journal = (out / JOURNAL).read_text().splitlines()
    fitted = len({row.split(",")[0] for row in journal[1:]})  # the photos written in full
    assert 1 <= fitted < N_PHOTOS - 2
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    assert code in (0, 3), output
    done = 2 + fitted
    assert f"{N_PHOTOS} found, {done} already done, {N_PHOTOS - done} processed" in output
    assert_complete(out, sorted(os.listdir(raw)))


def test_another_write_error_stays_one_photos_error_row(raw, tmp_path, monkeypatch):
    """A write error that is not the storage's (not full, read-only or forbidden) stays that
    photo's error row; the batch goes on."""
    import maskforge.synth.run.pipeline as pipeline

    real = pipeline.write_image
    first = sorted(os.listdir(raw))[0]

    def write_image(path, rgb, quality=95):
        if Path(path).stem.startswith(Path(first).stem):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        return real(path, rgb, quality)

    monkeypatch.setattr(pipeline, "write_image", write_image)
    out = tmp_path / "out"
    code, output = run("synthesize", raw, out, *ONE_WORKER, "--limit", "3")
    assert code == 3, output
    rows = {r["input"]: r for r in rows_of(out)}
    assert len(rows) == 3
    assert (rows[first]["status"], rows[first]["reason"]) == (
        "error",
        "cannot write outputs: Is a directory",
    )


# -- a real full disk and a read-only out/: a tmpfs in a user and mount namespace -------------


needs_namespaces = pytest.mark.skipif(
    not namespaces_work(), reason="cannot mount a tmpfs in a user namespace here"
)


def in_namespace(script: str, namespace: bool = True, **env: Path | str):
    """Run a bash script in a new user and mount namespace (its mounts end with it), or here
    with namespace=False; $SYNTH runs this checkout's `maskforge synthesize`."""
    synth = f"{sys.executable} -m maskforge synthesize"
    variables = {"SYNTH": synth, "PYTHONPATH": str(REPO), **{k: str(v) for k, v in env.items()}}
    unshare = ["unshare", "--user", "--map-root-user", "--mount"] if namespace else []
    return subprocess.run(
        [*unshare, "bash", "-c", "set -u\n" + script],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=600,
    )


@needs_namespaces
def test_a_really_full_disk_with_a_pool_then_more_room_resumes(raw, tmp_path):
    out, snaps = tmp_path / "out", tmp_path / "snaps"
    out.mkdir()
    snaps.mkdir()
    script = """
    mount -t tmpfs -o size=64m tmpfs "$OUT"
    $SYNTH "$RAW" "$OUT" --workers 2 --mask-type surgical --limit 2 > "$SNAPS/log0" 2>&1
    echo $? > "$SNAPS/code0"; cp -a "$OUT" "$SNAPS/0"
    used=$(df --output=used -k "$OUT" | tail -1)
    mount -o remount,size=$((used + 48))k "$OUT"  # a photo or so more
    $SYNTH "$RAW" "$OUT" --workers 2 --mask-type surgical > "$SNAPS/log1" 2>&1
    echo $? > "$SNAPS/code1"; cp -a "$OUT" "$SNAPS/1"
    mount -o remount,size=64m "$OUT"
    $SYNTH "$RAW" "$OUT" --workers 2 --mask-type surgical > "$SNAPS/log2" 2>&1
    echo $? > "$SNAPS/code2"; cp -a "$OUT" "$SNAPS/2"
    """
    done = in_namespace(script, OUT=out, RAW=raw, SNAPS=snaps)
    assert done.returncode == 0, done.stderr
    code, log = [], []
    for i in range(3):
        code.append(int((snaps / f"code{i}").read_text()))
        log.append((snaps / f"log{i}").read_text())
    assert code[0] in (0, 3), log[0]
    assert code[1] == 2, log[1]
    (line,) = error_lines(log[1])
    assert "No space left on device" in line and "rerun the same command to resume" in line
    assert "Traceback" not in log[1]
    first, full = snaps / "0", snaps / "1"
    assert (full / CSV_NAME).read_bytes() == (first / CSV_NAME).read_bytes()
    assert {k: v for k, v in images(full).items() if k in images(first)} == images(first)
    assert not leftovers(full)
    for name in images(full):  # no cut image: each one decodes whole
        Image.open(full / name).load()
    # It filled up mid-run: the photos done before were recorded, and the rerun skips them.
    journal = (full / JOURNAL).read_text().splitlines()[1:]
    fitted = len({row.split(",")[0] for row in journal})
    assert fitted >= 1 and "masked/" in line  # the image that did not fit is named
    assert code[2] in (0, 3), log[2]
    assert f"{N_PHOTOS} found, {2 + fitted} already done" in log[2]
    assert_complete(snaps / "2", sorted(os.listdir(raw)))


def _read_only(out: Path, how: str) -> str:
    """The shell lines that make out read-only (in a namespace), or '' after a chmod here."""
    if how == "chmod":
        for folder in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
            folder.chmod(0o555)
        return ""
    return 'mount --bind "$OUT" "$OUT" && mount -o remount,bind,ro "$OUT"\n'


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(
            "chmod",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod"),
        ),
        pytest.param("mount", marks=needs_namespaces),
    ],
)
def test_a_read_only_out_is_refused_in_one_line_and_left_as_it_was(raw, tmp_path, how):
    out = tmp_path / "out"
    code, output = run("synthesize", raw, out, *ONE_WORKER, "--limit", "1")
    assert code in (0, 3), output
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    script = _read_only(out, how) + '$SYNTH "$RAW" "$OUT" --workers 1 --mask-type surgical\n'
    try:
        done = in_namespace(script, namespace=how == "mount", OUT=out, RAW=raw)
    finally:
        for folder in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"Error: Cannot write to {out}: "), line
    assert "Read-only file system" in line or "Permission denied" in line, line
    assert "Traceback" not in done.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    assert code in (0, 3), output
    assert f"{N_PHOTOS} found, 1 already done" in output
    assert_complete(out, sorted(os.listdir(raw)))


# -- faults not in the list ---------------------------------------------------------------


def test_out_removed_mid_run_stops_the_run_without_making_it_again(raw, tmp_path, monkeypatch):
    """As when a mount point goes away: writing on would make out/ again, on another disk."""
    out = tmp_path / "out"
    real = Synthesizer.run_file
    calls = []

    def run_file(self, *args, **kwargs):
        calls.append(args[1])
        rows = real(self, *args, **kwargs)
        if len(calls) == 2:
            shutil.rmtree(out)
        return rows

    monkeypatch.setattr(Synthesizer, "run_file", run_file)
    code, output = run("synthesize", raw, out, *ONE_WORKER)
    assert code == 2, output
    (line,) = error_lines(output)
    assert "The output folder was removed or replaced during the run" in line, line
    assert str(out) in line
    assert len(calls) == 2 and not out.exists()  # nothing written after it went
    monkeypatch.undo()
    code, output = run("synthesize", raw, out, *ONE_WORKER)  # a fresh start
    assert code in (0, 3), output
    assert_complete(out, sorted(os.listdir(raw)))


def test_a_photo_deleted_mid_run_is_one_unreadable_row(raw, tmp_path, monkeypatch):
    out = tmp_path / "out"
    names = sorted(os.listdir(raw))
    real = Synthesizer.run_file

    def run_file(self, path, rel, *args, **kwargs):
        if rel == names[0]:
            (raw / names[1]).unlink()  # listed already, gone before it is read
        return real(self, path, rel, *args, **kwargs)

    monkeypatch.setattr(Synthesizer, "run_file", run_file)
    code, output = run("synthesize", raw, out, *ONE_WORKER, "--limit", "3")
    assert code == 3, output
    rows = {r["input"]: r for r in rows_of(out)}
    assert list(rows) == names[:3]
    gone = rows[names[1]]
    assert (gone["status"], gone["reason"]) == (
        "unreadable",
        "cannot read file: No such file or directory",
    )
    assert rows[names[2]]["status"] in ("ok", "no_face")  # the batch went on


def test_sigterm_stops_like_ctrl_c_and_a_rerun_resumes(raw, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "maskforge", "synthesize", str(raw), str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [*cmd, *ONE_WORKER],  # in this process: rows come one photo at a time
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = out / JOURNAL
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 2:  # header + a row
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Stopped (SIGTERM): finished photos are in synthesis.csv" in stderr
    assert "Traceback" not in stderr
    # As after Ctrl-C: the journal went into synthesis.csv, the lock is gone, no temporaries.
    done = rows_of(out)
    assert 1 <= len({r["input"] for r in done}) < N_PHOTOS
    assert not leftovers(out) and not journal.exists()
    code, output = run("synthesize", raw, out, "--workers", "2", "--mask-type", "surgical")
    assert code in (0, 3), output
    assert f"{len({r['input'] for r in done})} already done" in output
    assert_complete(out, sorted(os.listdir(raw)))
