"""--engine ray under faults: a task (a photo) that kills its actor, a run that stops part-way
and is resumed, and a real cluster of two nodes (both on this machine) that loses one mid-run.

A task that kills its actor every time is isolated (its block rerun on one actor, one task at
a time) and gives an error row, "worker died: ...", the rest of the batch kept. For the cluster,
`ray.cluster_utils.Cluster` starts a head and a worker node, each with its own raylet, one
CPU and a 100 MB object store; the test then removes the worker node (its raylet and every
process on it are killed, as when a machine goes away). The run either finishes on the head
alone, or stops with a one-line error and a rerun resumes it: either way every task (every
photo) comes back, or is recorded in synthesis.csv, exactly once.
"""

from __future__ import annotations

import _thread
import csv
import logging
import os
import shutil
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

import maskforge.synth.run.runner as runner
from maskforge.cli import cli
from maskforge.synth.run.pipeline import SynthesisOptions
from maskforge.synth.run.records import CSV_NAME, JOURNAL

# Ray Data's own DataContext touches its deprecated settings when it copies itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}  # small: the machine is shared
N_PHOTOS = 20
HANG_S = 300  # a run that loses a node must end well within this


GOOD = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0025.jpg")
RAY_ARGS = ("--engine", "ray", "--workers", "2", "--mask-type", "surgical")


@pytest.fixture
def local_ray(monkeypatch):
    """A local Ray with 2 CPUs for one test (the cluster tests need none running)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no reports to Ray's servers
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def killer_factory():
    """A worker factory Ray pickles by value (the actors cannot import this test module):
    make_worker(deadly, log) -> (x -> 2 * x), except that a task in `deadly` writes its
    number to the file `log`, then SIGKILLs its own process (as a segfault or the OOM killer
    would end it)."""

    def make_worker(deadly: tuple, log: str):
        def double(x: int) -> int:
            if x in deadly:
                with open(log, "a") as fh:
                    fh.write(f"{x}\n")
                os.kill(os.getpid(), signal.SIGKILL)
            return 2 * x

        return double

    return make_worker


def isolated_run(deadly: tuple, log: Path) -> list:
    from maskforge.core.ray_engine import ray_map

    def on_crash(task, reason):
        return ("crashed", task, reason)

    return list(ray_map(killer_factory(), (deadly, str(log)), range(12), 2, 2, on_crash=on_crash))


def assert_isolated(got: list, deadly: tuple, log: Path) -> None:
    for i, result in enumerate(got):
        if i in deadly:
            crashed, task, reason = result
            assert (crashed, task) == ("crashed", i)
            assert reason.startswith("worker died: Ray actor ") and "\n" not in reason, reason
        else:
            assert result == 2 * i  # the rest of the batch: every task once, in order
    assert len(got) == 12
    tries = Counter(log.read_text().split())
    assert set(tries) == {str(t) for t in deadly}
    # In a block (once per dataset that reached it before it was isolated), then alone on
    # one actor: no restarts, a few tries in all, however long the run.
    for n in tries.values():
        assert 2 <= n <= 6, tries


def test_ray_map_isolates_a_task_that_kills_its_actor_and_goes_on(local_ray, tmp_path):
    start = time.monotonic()
    with no_hang(150):
        got = isolated_run((5,), tmp_path / "tries.txt")
    print(f"isolated in {time.monotonic() - start:.1f} s")  # with -s
    assert_isolated(got, (5,), tmp_path / "tries.txt")


@pytest.mark.slow
def test_ray_map_isolates_tasks_that_kill_their_actors_first_and_last(local_ray, tmp_path):
    with no_hang(240):
        got = isolated_run((0, 6, 11), tmp_path / "tries.txt")
    assert_isolated(got, (0, 6, 11), tmp_path / "tries.txt")


def ray_photos(unmasked_dir: Path, folder: Path, special: str) -> list[str]:
    """GOOD's photos in folder, and a copy of another one named `special`; sorted names."""
    folder.mkdir(parents=True)
    for name in GOOD:
        shutil.copy(unmasked_dir / name, folder / name)
    shutil.copy(unmasked_dir / sorted(os.listdir(unmasked_dir))[7], folder / special)
    return sorted(os.listdir(folder))


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def synthesis_rows(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def by_value(module_name: str):
    """Have Ray pickle that test module's functions by value (actors cannot import it)."""
    import importlib

    from ray import cloudpickle

    module = importlib.import_module(module_name)
    cloudpickle.register_pickle_by_value(module)
    return module


@pytest.mark.slow
def test_synthesize_on_ray_records_a_photo_that_kills_its_actor(
    local_ray, unmasked_dir, tmp_path, monkeypatch
):
    worker = by_value("crashing_worker")
    raw, out = tmp_path / "raw", tmp_path / "out"
    names = ray_photos(unmasked_dir, raw, "0_1_crash.jpg")
    assert names.index("0_1_crash.jpg") == 2  # in the middle of the batch
    monkeypatch.setattr(runner, "synthesis_worker", worker.crashing_synthesis_worker)
    with no_hang(240):
        code, output = invoke("synthesize", raw, out, *RAY_ARGS)
    assert code == 3, output  # as documented for a run with photos not masked
    rows = synthesis_rows(out)
    crashed = [r for r in rows if r["input"] == "0_1_crash.jpg"]
    assert [r["status"] for r in crashed] == ["error"]
    assert crashed[0]["reason"].startswith("worker died: Ray actor "), crashed
    assert {r["input"] for r in rows if r["status"] == "ok"} == set(GOOD)
    assert "error 1" in output
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_ray_run_stopped_part_way_resumes_with_every_photo_once(
    local_ray, unmasked_dir, tmp_path, monkeypatch
):
    """A worker's storage fault (ENOSPC, once) stops the run after the photos before it."""
    worker = by_value("crashing_worker")
    raw, out = tmp_path / "raw", tmp_path / "out"
    names = ray_photos(unmasked_dir, raw, "0_1_full.jpg")
    monkeypatch.setattr(runner, "synthesis_worker", worker.full_once_synthesis_worker)
    code, output = invoke("synthesize", raw, out, *RAY_ARGS)
    assert code == 2, output
    (line,) = [line for line in output.splitlines() if line.startswith("Error")]
    assert line.startswith(f"Error: Cannot write to {out}: No space left on device"), line
    assert not (out / CSV_NAME).exists()  # written when a run ends or is interrupted
    journal = (out / JOURNAL).read_text().splitlines()[1:]
    before = names[: names.index("0_1_full.jpg")]
    assert sorted({row.split(",")[0] for row in journal}) == before  # what came back first
    code, output = invoke("synthesize", raw, out, *RAY_ARGS)
    assert code in (0, 3), output
    n = len(names)
    assert f"{n} found, {len(before)} already done, {n - len(before)} processed" in output
    rows = synthesis_rows(out)
    assert sorted({r["input"] for r in rows}) == names
    assert set(Counter((r["input"], r["face"]) for r in rows).values()) == {1}
    for row in rows:
        for key in ("output", "original"):
            assert not row[key] or (out / row[key]).is_file(), row
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".lock"))]


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
    from maskforge.synth.run.runner import RunOptions, run_synthesis

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
            RunOptions(engine="ray", address=cluster.address, workers=2, progress=False),
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
    # The photos the lost node had were retried: a node that goes away blames no photo.
    assert not [row for row in rows if row["reason"].startswith("worker died")]
    for row in rows:
        for key in ("output", "original"):
            assert not row[key] or (out / row[key]).is_file(), row
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
