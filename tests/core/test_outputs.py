"""core.outputs: one command at a time on a folder (a real flock, held by another process),
and storage faults as one-line errors that name the folder; through the CLI, exit code 2."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.outputs import (
    LOCK_FILE,
    FolderInUseError,
    StorageError,
    folder_lock,
    output_folder,
    storage_message,
)

HOLDER = """
import sys, time
from maskforge.core.outputs import output_folder
with output_folder(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_folder_another_process_holds_is_refused_until_that_process_dies(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError) as refused, output_folder(out, "train"):
            pytest.fail("entered a folder another command holds")
        message = str(refused.value)
        assert message.startswith(f"{out} is in use by another maskforge command (maskforge test")
        assert f"pid {holder.pid} on " in message and "\n" not in message
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing touched
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup: the kernel frees the lock
        holder.wait()
    with output_folder(out, "train") as folder:
        (folder / "done.txt").write_text("ok")
    assert sorted(p.name for p in out.iterdir()) == ["done.txt"]  # the lock file went with it


def test_a_lock_file_of_its_own_name_locks_one_file_and_not_its_neighbours(tmp_path):
    model = tmp_path / "model.onnx"
    with output_folder(tmp_path, "export", file=model, lock_name=".model.onnx.lock"):
        with pytest.raises(FolderInUseError, match=f"^{model} is in use .* another file"):
            with output_folder(tmp_path, "export", file=model, lock_name=".model.onnx.lock"):
                pass
        with output_folder(tmp_path, "export", lock_name=".other.onnx.lock"):
            pass
        with folder_lock(tmp_path, "synthesize"):  # the folder's own lock is another file
            pass


def test_folders_it_made_are_removed_when_left_empty_and_kept_otherwise(tmp_path):
    with pytest.raises(ValueError, match="nothing to do"), output_folder(tmp_path / "a/b", "x"):
        raise ValueError("nothing to do")
    assert not (tmp_path / "a").exists()
    with output_folder(tmp_path / "a/b", "x") as folder:
        (folder / "report.md").write_text("# report\n")
    assert (tmp_path / "a/b/report.md").is_file()
    (tmp_path / "mine").mkdir()
    with output_folder(tmp_path / "mine", "x"):
        pass
    assert (tmp_path / "mine").is_dir()  # the user's folder stays, even empty


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES])
def test_a_storage_fault_inside_the_folder_names_the_folder_and_the_file(tmp_path, code):
    out = tmp_path / "run"
    with pytest.raises(StorageError) as caught, output_folder(out, "train"):
        raise OSError(code, os.strerror(code), str(out / "best.pt"))
    message = storage_message(caught.value)
    assert message == (
        f"Cannot write to {out}: {os.strerror(code)} ({out / 'best.pt'}); what was written "
        "before is kept: free some space or make it writable, then rerun."
    )
    with pytest.raises(StorageError) as nameless, output_folder(out, "train"):
        raise OSError(code, os.strerror(code))  # a failed write() names no file
    assert storage_message(nameless.value).startswith(f"Cannot write to {out}: ")


def test_faults_elsewhere_and_other_errors_are_left_as_they_are(tmp_path):
    cache = tmp_path / "cache" / "x.npy"
    with pytest.raises(OSError) as caught, output_folder(tmp_path / "run", "train"):
        raise OSError(errno.ENOSPC, "No space left on device", str(cache))
    assert not isinstance(caught.value, StorageError)
    assert storage_message(caught.value).startswith(f"Cannot write to {cache}: No space left")
    with pytest.raises(PermissionError), output_folder(tmp_path / "run", "train"):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.jpg"))
    assert storage_message(PermissionError(errno.EACCES, "Permission denied", "in.jpg")) is None
    assert storage_message(OSError(errno.EIO, "Input/output error", "x")) is None
    assert storage_message(ValueError("bad")) is None


def test_the_cli_words_any_command_s_storage_fault_as_a_one_line_error_exit_2(
    tmp_path, monkeypatch
):
    """Whatever command stops on a full disk, the user gets the one line and code 2, not
    `unexpected OSError` and code 1 (here templates --sheet, its write made to fail)."""
    import maskforge.synth.preview.templates as templates

    sheet = tmp_path / "t.png"

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(templates, "write_template_sheet", full)
    result = CliRunner().invoke(cli, ["templates", "--sheet", str(sheet)])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert line.startswith(f"Error: Cannot write to {sheet}: No space left on device; ")
    debug = CliRunner().invoke(cli, ["--debug", "templates", "--sheet", str(sheet)])
    assert isinstance(debug.exception, OSError)  # --debug still shows the traceback
