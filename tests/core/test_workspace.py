"""core.workspace: what the last command wrote, remembered per working folder."""

from __future__ import annotations

import os
import time

from maskforge.core.workspace import STATE_FILE, load_state, newest_run, recall, remember


def test_remember_and_recall(tmp_path):
    assert load_state(tmp_path) == {}
    assert recall("synthesize_out", tmp_path) == tmp_path / "out"  # the default
    assert recall("nothing", tmp_path) is None
    remember("synthesize_out", tmp_path / "data" / "out2", tmp_path)
    elsewhere = tmp_path.parent / "elsewhere"
    remember("manifests", elsewhere, tmp_path)
    state = load_state(tmp_path)
    assert state == {"synthesize_out": "data/out2", "manifests": elsewhere.resolve().as_posix()}
    assert recall("synthesize_out", tmp_path) == tmp_path / "data" / "out2"
    assert recall("manifests", tmp_path) == elsewhere.resolve()


def test_unreadable_state_is_empty(tmp_path):
    (tmp_path / STATE_FILE).parent.mkdir()
    (tmp_path / STATE_FILE).write_text("[1, 2]")
    assert load_state(tmp_path) == {}
    (tmp_path / STATE_FILE).write_text("{not json")
    assert load_state(tmp_path) == {}
    remember("manifests", tmp_path / "m", tmp_path)  # a broken file is replaced, not an error
    assert load_state(tmp_path) == {"manifests": "m"}


def test_newest_run_is_the_latest_folder_with_a_checkpoint(tmp_path):
    assert newest_run(tmp_path / "missing") is None
    for i, name in enumerate(("old", "new", "empty")):
        (tmp_path / name).mkdir()
        if name != "empty":
            (tmp_path / name / "best.pt").write_bytes(b"")
        stamp = time.time() - 100 + 10 * i
        os.utime(tmp_path / name, (stamp, stamp))
    assert newest_run(tmp_path) == tmp_path / "new"
