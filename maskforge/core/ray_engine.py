"""Ray Data engine: run a per-item function on a Ray cluster, results streamed back in order.

The local engines (a process pool, or this process) and this one share one contract: a worker
factory `make_worker(*args)` builds the per-process state once (models, templates) and returns a
function `task -> result`; the caller gets the results in input order and does all bookkeeping
(journal, CSV, summary) on the driver. Here the factory runs once per Ray actor
(`map_batches` with a callable class and a fixed actor pool), tasks and results travel pickled.
The tasks are read as they are needed, one Ray dataset per slice of them (TASKS_PER_DATASET),
so the driver's memory does not grow with their number; each slice starts its own actors.
With `on_crash`, a task that kills its actor is isolated as the local pool does it (see
`ray_map`): the run goes on, and only that task's result is `on_crash(task, reason)`.

Ray is an optional extra (`pip install 'maskforge[ray]'`): this module imports it only inside
functions, so it can be imported (and its error message shown) without Ray installed.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np

INSTALL_HINT = "Ray is not installed; install it with: pip install 'maskforge[ray]'"
# Loggers Ray writes banners and per-dataset INFO/WARNING lines to; our own progress bar and
# summary are what a user should see (Ray keeps its full logs under /tmp/ray/session_*/logs).
# Ray Data also logs each failed dataset at ERROR, with pages of traceback: the failures this
# module reports itself (a one-line error, or an error row for a task that kills its actor).
RAY_LOGGERS = {"ray": logging.ERROR, "ray.data": logging.CRITICAL}
# Environment variables the workers need to see the way the driver does (model file lookups).
FORWARDED_ENV_PREFIX = "MASKFORGE_"
# Restarts of an actor that died (its process crashed, its node left), and retries of the
# block it was running: bounded, so a photo that crashes its worker cannot stall a run.
ACTOR_RETRIES = 1
# Tasks per Ray dataset at least (pickled task rows held on the driver at a time).
TASKS_PER_DATASET = 10_000


class RayNotInstalledError(ImportError):
    """`--engine ray` was asked for but Ray (with Ray Data) cannot be imported."""


class WorkersDiedError(RuntimeError):
    """A Ray dataset failed because an actor died (again after its restarts); `death` says
    where and why, in a few words."""

    def __init__(self, message: str, death: str):
        super().__init__(message)
        self.death = death


def import_ray():
    """The `ray` module with `ray.data` loaded; RayNotInstalledError with the install hint."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray without the [data] extra lacks pyarrow
    except ImportError:
        raise RayNotInstalledError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None = None, workers: int | None = None) -> Iterator[int]:
    """Connect to the Ray cluster at `address` (or $RAY_ADDRESS), else start a local one with
    `workers` CPUs.

    Yields the cluster's CPU count. A Ray already initialised in this process (a test fixture,
    the user's own script) is used as it is and left running; one started here is shut down.
    Raises ValueError when no cluster answers at `address`.
    """
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None  # as `ray.init` reads it
    previous = {name: logging.getLogger(name).level for name in RAY_LOGGERS}
    for name, level in RAY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    started = False
    try:
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
            try:
                with _usage_stats_off_unless_set():
                    ray.init(
                        # "local": a new instance, even where `ray start` runs one
                        address=address or "local",
                        num_cpus=None if address else workers,
                        include_dashboard=False,
                        log_to_driver=False,
                        ignore_reinit_error=True,
                        logging_level=logging.ERROR,
                        runtime_env={"env_vars": env} if env else None,
                    )
            except ConnectionError as exc:
                raise ValueError(
                    f"Cannot connect to a Ray cluster at {address!r} ({exc}). "
                    "Start one with `ray start --head`, or leave out --address to start a "
                    "local Ray."
                ) from None
            started = True
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started:
            ray.shutdown()
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _usage_stats_off_unless_set() -> Iterator[None]:
    """A Ray started for one run does not report usage to Ray's servers (unless the user's
    environment says otherwise): the processes it starts inherit the variable."""
    if "RAY_USAGE_STATS_ENABLED" in os.environ:
        yield
        return
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        yield
    finally:
        del os.environ["RAY_USAGE_STATS_ENABLED"]


class _Raised:
    """An OSError the worker raised, carried back as a result: Ray Data would flatten it into
    text, and the driver raises it as it was (a full or read-only output folder, say)."""

    def __init__(self, exc: OSError):
        self.exc = exc


class _Actor:
    """One Ray actor: builds the worker once, then maps pickled tasks to pickled results."""

    def __init__(self, make_worker: Callable[..., Callable[[Any], Any]], args: tuple):
        self.fn = make_worker(*args)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for task in batch["task"]:
            try:
                results.append(pickle.dumps(self.fn(pickle.loads(task))))
            except OSError as exc:  # the block's results end here; the driver raises it
                results.append(
                    pickle.dumps(_Raised(OSError(exc.errno, exc.strerror, exc.filename)))
                )
                break
        out = np.empty(len(results), dtype=object)
        out[:] = results
        return {"result": out}


def _root_cause(exc: BaseException) -> str:
    """The `SomeError: message` line of a Ray error (its text embeds tracebacks): the
    worker's own exception rather than the `ray.exceptions.*` Ray wrapped around it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    ours = [line for line in causes if not line.startswith("ray.")]
    return (ours or causes or [f"{type(exc).__name__}: {lines[0] if lines else ''}"])[-1]


def _death(exc: BaseException) -> str:
    """Where and why an actor died, in a few words, from a RayActorError's text."""
    text = str(exc)
    where = re.search(r"^\s*ip: (\S+)", text, re.MULTILINE)
    why = re.search(r"^The actor is dead because ([^.]*)", text, re.MULTILINE)
    parts = [f"on {where.group(1)}" if where else "", why.group(1) if why else ""]
    return ": ".join(p for p in parts if p) or _root_cause(exc)


def ray_map(
    make_worker: Callable[..., Callable[[Any], Any]],
    args: tuple,
    tasks: Iterable[Any],
    workers: int,
    tasks_per_block: int = 1,
    tasks_per_dataset: int | None = None,
    on_crash: Callable[[Any, str], Any] | None = None,
) -> Iterator[Any]:
    """Yield `make_worker(*args)(task)` for every task, in input order, computed by Ray actors.

    Needs a connected Ray (see `ray_session`). `make_worker` and `args` must pickle (a
    module-level function); it runs once per actor, `workers` actors with one CPU each (at
    most as many as the cluster has CPUs).
    Tasks are grouped at most `tasks_per_block` per Ray block (fewer when there are not
    enough to keep every actor busy), the unit of scheduling and of results coming back.

    `tasks` is read lazily, `tasks_per_dataset` at a time (default: the larger of
    TASKS_PER_DATASET and 64 blocks per actor), each slice run as one Ray dataset: the
    driver holds one slice, however many tasks there are. Each dataset starts its own actors.
    An actor whose process or node dies is restarted once and its block retried once
    (ACTOR_RETRIES); an error raised by the worker is not retried and stops the run with a
    RuntimeError naming it, or with the worker's own OSError (results already yielded stay
    valid).

    An actor that dies again: without `on_crash`, a WorkersDiedError (a RuntimeError) stops
    the run. With `on_crash` the splitting below replaces Ray's restarts and retries: an
    actor's death fails its dataset at once, the results already back are kept and the rest
    of the slice is run again, the first block not returned (where the death most likely
    was) on one actor, one task at a time; a task that kills its actor alone too yields
    `on_crash(task, "worker died: ...")`, and the tasks after it go on as before.
    """
    ray = import_ray()
    per_dataset = tasks_per_dataset or max(
        TASKS_PER_DATASET, 64 * _usable(ray, workers) * tasks_per_block
    )
    pending = iter(tasks)
    while rows := [{"task": pickle.dumps(task)} for task in islice(pending, per_dataset)]:
        if on_crash is None:
            actors = _usable(ray, workers)
            yield from _map_rows(ray, make_worker, args, rows, actors, tasks_per_block)
        else:
            yield from _isolating(ray, make_worker, args, rows, workers, tasks_per_block, on_crash)


def _usable(ray, workers: int) -> int:
    """At most one actor per CPU the cluster has now: Ray Data waits forever for actors it
    has no CPU for (read again for each dataset, as a node that left takes its CPUs along)."""
    return max(1, min(workers, int(ray.cluster_resources().get("CPU", 1))))


def _isolating(
    ray,
    make_worker: Callable[..., Callable[[Any], Any]],
    args: tuple,
    rows: list[dict[str, bytes]],
    workers: int,
    tasks_per_block: int,
    on_crash: Callable[[Any, str], Any],
) -> Iterator[Any]:
    """The results for `rows`, in order, one dataset per segment of them; a segment that
    loses an actor is split (see ray_map) until the task that kills it is alone."""
    # (rows, alone): alone = on one actor, one task per block, so a death is the first one's.
    segments: deque[tuple[list[dict[str, bytes]], bool]] = deque([(rows, False)])
    while segments:
        segment, alone = segments.popleft()
        actors, per_block = (1, 1) if alone else (_usable(ray, workers), tasks_per_block)
        returned = 0
        # No restarts: an actor restarted as its dataset shuts down after another one's death
        # can outlive it and keep its CPU (Ray 2.60), so that the next dataset waits forever.
        results = _map_rows(ray, make_worker, args, segment, actors, per_block, retries=0)
        try:
            for result in results:
                yield result
                returned += 1
        except WorkersDiedError as exc:
            rest = segment[returned:]
            if len(rest) == 1:
                yield on_crash(pickle.loads(rest[0]["task"]), f"worker died: Ray actor {exc.death}")
                continue
            # A failed dataset returns the results before the block that died, mostly.
            head = 1 if alone else tasks_per_block
            split = [(rest[:head], True), (rest[head:], alone)]
            segments.extendleft(reversed([(part, a) for part, a in split if part]))
        finally:
            results.close()


def _map_rows(
    ray,
    make_worker: Callable[..., Callable[[Any], Any]],
    args: tuple,
    rows: list[dict[str, bytes]],
    workers: int,
    tasks_per_block: int,
    retries: int = ACTOR_RETRIES,
) -> Iterator[Any]:
    """One Ray dataset over `rows` (pickled tasks): the unpickled results, in order; an actor
    that dies is restarted, and its block retried, `retries` times."""
    per_block = max(1, min(tasks_per_block, len(rows) // workers))
    blocks = math.ceil(len(rows) / per_block)
    workers = min(workers, blocks)  # an actor with no block would only load models
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    # The dataset holds its own copy of the DataContext: set ours there, not globally.
    ctx = ds.context
    ctx.execution_options.preserve_order = True  # results in input order: CSV rows, merges
    ctx.enable_progress_bars = False  # the driver shows one bar, in photos
    ctx.print_on_execution_start = False
    with warnings.catch_warnings():
        # Ray 2.5x-2.6x warns that `**ray_remote_args` goes in Ray 2.64, but names no other
        # way to set these two: revisit when a newer Ray is pinned.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        ds = ds.map_batches(
            _Actor,
            fn_constructor_args=(make_worker, args),
            batch_size=None,  # a block is one batch and one actor task: no re-bundling
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            # Ray Data's defaults (-1, -1) restart a crashing actor and retry its block forever.
            max_restarts=retries,
            max_task_retries=retries,
        )
    # No prefetching: it would hold each finished block back until the next one is done.
    batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0))
    raised: OSError | None = None
    try:
        for batch in batches:
            for result in map(pickle.loads, batch["result"]):
                if isinstance(result, _Raised):
                    raised = result.exc
                    break
                yield result
            if raised is not None:
                break
    except Exception as exc:  # Ray's own errors run to pages; keep the cause, add the usual fix
        raise _failure(ray, exc) from exc
    finally:
        batches.close()  # stops Ray's executor if the caller stopped early (Ctrl-C, error)
    if raised is not None:
        raise raised


def _failure(ray, exc: Exception) -> RuntimeError:
    """The error for a failed Ray dataset: WorkersDiedError when an actor died, else a
    RuntimeError; one line each, the cause and what usually fixes it."""
    died = _find(exc, (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError))
    if died is not None and not getattr(died, "actor_init_failed", False):
        return WorkersDiedError(_failure_message(ray, exc), _death(died))
    return RuntimeError(_failure_message(ray, exc))


def _failure_message(ray, exc: Exception) -> str:
    """One line for a failed Ray run: the cause, then what usually fixes it."""
    from maskforge import __version__

    died = _find(exc, (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError))
    if died is not None and not getattr(died, "actor_init_failed", False):
        return (
            f"Ray workers failed: an actor died, and again after {ACTOR_RETRIES} restart(s) "
            f"({_death(died)}): a worker process crashed (out of memory?) or its node left "
            "the cluster; rerun the same command to resume"
        )
    return (
        f"Ray workers failed: {_root_cause(exc)} (every node needs maskforge "
        f"{__version__} and Ray {ray.__version__} installed, and the photos and the output "
        "folder at the same paths)"
    )


def _find(exc: BaseException | None, types: tuple[type, ...]) -> BaseException | None:
    """The first exception of `types` in exc's chain of causes (Ray wraps its errors)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, types):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
