"""--engine ray on a real cluster of two nodes (both on this machine) that loses one mid-run.

`ray.cluster_utils.Cluster` starts a head and a worker node, each with its own raylet, one
CPU and a 100 MB object store; the test then removes the worker node (its raylet and every
process on it are killed, as when a machine goes away). The run either finishes on the head
alone, or stops with a one-line error and a rerun resumes it: either way every task (every
photo) comes back, or is recorded in synthesis.csv, exactly once.
"""

from __future__ import annotations

import _thread
import csv
import os
import shutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from maskforge.synth.pipeline import SynthesisOptions
from maskforge.synth.table import CSV_NAME, JOURNAL

# Ray Data's own DataContext touches its deprecated settings when it copies itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}  # small: the machine is shared
N_PHOTOS = 20
HANG_S = 300  # a run that loses a node must end well within this


@pytest.fixture
def cluster(monkeypatch):
    """(cluster, worker node): a head and a worker node with one CPU each; shut down after."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no reports to Ray's servers
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()  # ray_session must connect to this cluster, not another
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        worker = cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextmanager
def no_hang(seconds: float = HANG_S):
    """Interrupt the test (KeyboardInterrupt in the main thread) if the block hangs."""
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        pytest.fail(f"still running after {seconds} s: a lost node made the run hang")
    finally:
        timer.cancel()


def sleepy_factory():
    """A worker factory Ray pickles by value (the actors cannot import this test module):
    make_worker(seconds) -> (x -> 2 * x, after sleeping that long)."""

    def make_worker(seconds: float):
        def double(x: int) -> int:
            time.sleep(seconds)
            return 2 * x

        return double

    return make_worker


def test_ray_map_on_two_nodes_survives_losing_one(cluster):
    from maskforge.core.ray_engine import ray_map, ray_session

    cluster, worker = cluster
    tasks = list(range(24))
    got: list[int] = []
    error = None
    with no_hang(), ray_session(cluster.address) as cpus:
        assert cpus == 2
        try:
            for result in ray_map(sleepy_factory(), (0.2,), iter(tasks), 2, 2):
                got.append(result)
                if len(got) == 4:  # half a dozen blocks still to come, some on the worker
                    cluster.remove_node(worker)
        except RuntimeError as exc:
            error = str(exc)
    print(f"after {len(got)} results: {error or 'finished on the head'}")  # with -rA or -s
    assert 4 <= len(got) <= len(tasks)
    if error is not None:  # stopped: one line, then a rerun does the rest on the head alone
        assert "\n" not in error and "an actor died" in error, error
        with no_hang(), ray_session(cluster.address) as cpus:
            assert cpus == 1
            got += ray_map(sleepy_factory(), (0.0,), iter(tasks[len(got) :]), 2, 2)
    assert got == [2 * t for t in tasks]  # every task once, in order


def journal_rows(path: Path) -> int:
    return max(0, path.read_text().count("\n") - 1) if path.is_file() else 0


class NodeKiller(threading.Thread):
    """Removes `node` from `cluster` as soon as `journal` holds a row (a photo recorded)."""

    def __init__(self, cluster, node, journal: Path):
        super().__init__(daemon=True)
        self.cluster, self.node, self.journal = cluster, node, journal
        self.rows_at_kill: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            rows = journal_rows(self.journal)
            if rows:
                self.cluster.remove_node(self.node)
                self.rows_at_kill = rows
                return


@pytest.mark.slow
def test_synthesize_on_two_nodes_survives_losing_one(cluster, unmasked_dir, tmp_path):
    from maskforge.synth.runner import run_synthesis

    cluster, worker = cluster
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    names = sorted(os.listdir(unmasked_dir))[::45][:N_PHOTOS]
    for name in names:
        shutil.copy(unmasked_dir / name, raw / name)

    def synthesize():
        return run_synthesis(
            raw,
            out,
            SynthesisOptions(seed=3),
            engine="ray",
            address=cluster.address,
            workers=2,
            progress=False,
        )

    killer = NodeKiller(cluster, worker, out / JOURNAL)
    killer.start()
    error = None
    try:
        with no_hang():
            summary = synthesize()
    except RuntimeError as exc:
        error = str(exc)
    finally:
        killer.stop.set()
        killer.join()
    print(f"node removed at {killer.rows_at_kill} rows: {error or 'finished on the head'}")
    assert killer.rows_at_kill is not None, "the run ended before the node could be removed"
    if error is not None:  # stopped with one line; the rerun resumes on the head alone
        assert "\n" not in error and "an actor died" in error, error
        with no_hang():
            summary = synthesize()
        assert summary.already_done >= 1 and summary.processed >= 1
    assert summary.already_done + summary.processed == N_PHOTOS
    with open(out / CSV_NAME, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert killer.rows_at_kill < len(rows)  # the node went mid-run
    assert sorted({row["input"] for row in rows}) == names  # every photo recorded...
    assert set(Counter((row["input"], row["face"]) for row in rows).values()) == {1}  # ...once
    for row in rows:
        for key in ("output", "original"):
            assert not row[key] or (out / row[key]).is_file(), row
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
