"""core.parallel: the default worker count, chunks, the ordered spawn pool and map_chunks."""

from __future__ import annotations

import os

import pytest

import maskforge.core.parallel as parallel
from maskforge.choices import MAX_DEFAULT_WORKERS
from maskforge.core.parallel import chunked, default_workers, map_chunks, pool_map


# Module-level: the spawn pool pickles them by name.
def tagging_worker(tag: str):
    """A worker factory: task -> (tag, task squared, the worker's process id)."""

    def run(task: int) -> tuple[str, int, int]:
        return tag, task * task, os.getpid()

    return run


def failing_worker():
    raise ValueError("No model file at /nowhere/model.dat")


def square(task: int) -> int:
    return task * task


def with_pid(task: int) -> tuple[int, int]:
    return task, os.getpid()


def test_default_workers_is_the_usable_cores_capped():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == max(1, min(MAX_DEFAULT_WORKERS, cores))
    assert 1 <= default_workers() <= MAX_DEFAULT_WORKERS


def test_default_workers_without_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == MAX_DEFAULT_WORKERS
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers() == 1


def test_more_local_workers_than_the_cores_can_use_are_refused(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    parallel.check_local_workers(None)
    parallel.check_local_workers(4 * 3)
    parallel.check_local_workers(MAX_DEFAULT_WORKERS)
    with pytest.raises(ValueError, match=r"--workers 13 is more .* \(3 cores: at most 12\)"):
        parallel.check_local_workers(13)


def test_chunked():
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunked((1, 2), 5) == [[1, 2]]
    assert chunked([], 4) == []


def test_pool_map_keeps_input_order_over_lazy_tasks():
    tasks = (i for i in range(45))  # a generator: consumed through the bounded window
    results = list(pool_map(tagging_worker, ("t",), tasks, workers=2, tasks_per_job=4))
    assert [r[1] for r in results] == [i * i for i in range(45)]
    assert {r[0] for r in results} == {"t"}
    pids = {r[2] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_pool_map_shows_a_worker_factory_error_in_the_parent():
    with pytest.raises(ValueError, match="No model file at /nowhere/model.dat"):
        list(pool_map(failing_worker, (), range(3), workers=1))


def test_map_chunks_runs_here_below_the_pool_threshold():
    results = list(map_chunks(with_pid, list(range(5)), [10] * 5, workers=2, progress=False))
    assert [t for t, _ in results] == list(range(5))
    assert {pid for _, pid in results} == {os.getpid()}  # 50 items: no pool


def test_map_chunks_uses_a_pool_over_the_threshold(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_POOL_ITEMS", 0)
    results = list(map_chunks(with_pid, list(range(6)), [1] * 6, workers=2, progress=False))
    assert [t for t, _ in results] == list(range(6))
    assert os.getpid() not in {pid for _, pid in results}
    assert list(map_chunks(square, [3, 4], [1, 1], workers=1)) == [9, 16]


def test_map_chunks_checks_engine_and_address():
    with pytest.raises(ValueError, match="Invalid engine 'spark'. Choose from: local, ray."):
        list(map_chunks(square, [1], [1], engine="spark"))
    with pytest.raises(ValueError, match="--address ray://head:10001 needs --engine ray"):
        list(map_chunks(square, [1], [1], address="ray://head:10001"))
    with pytest.raises(ValueError):  # sizes must match the tasks
        list(map_chunks(square, [1, 2], [1]))


def test_pool_map_without_on_crash_raises_when_a_worker_dies():
    from concurrent.futures.process import BrokenProcessPool

    from crashing_worker import killing_worker

    with pytest.raises(BrokenProcessPool):
        list(pool_map(killing_worker, ((3,),), range(6), workers=2, tasks_per_job=2))


# Flaky under heavy CPU load (about 1 run in 10 here, cause not yet found): slow, not in CI's
# default run, until it is understood. The runner-level test of the same path stays in.
@pytest.mark.slow
def test_pool_map_isolates_a_task_that_kills_its_worker():
    from crashing_worker import killing_worker

    results = list(
        pool_map(
            killing_worker,
            ((5, 17),),
            range(24),
            workers=2,
            tasks_per_job=3,
            on_crash=lambda task, reason: ("crashed", task, reason),
        )
    )
    expected = [
        ("crashed", i, "worker died: signal 9") if i in (5, 17) else i * 10 for i in range(24)
    ]
    assert results == expected


def test_pool_workers_end_when_their_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from crashing_worker import pid_worker\n"
        "from maskforge.core.parallel import pool_map\n"
        "for pid in pool_map(pid_worker, (), range(10**6), workers=2):\n"
        "    print(pid, flush=True)\n"
    )
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # crashing_worker.py
    proc = subprocess.Popen(
        [sys.executable, "-c", script, tests], stdout=subprocess.PIPE, text=True
    )
    pids = {int(proc.stdout.readline()) for _ in range(6)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    alive = set(pids)
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if os.path.exists(f"/proc/{p}") and _running(p)}
    assert not alive, f"workers {alive} outlived their killed parent"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False
