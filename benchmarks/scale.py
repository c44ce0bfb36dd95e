"""Benchmark synthesis throughput: the local process pool vs Ray Data, and Ray's per-image cost.

Side by side, in one run, on the same photos (the first --limit under --faces, sorted) and the
same per-photo worker (maskforge.synth.run.runner.synthesis_worker) as `maskforge synthesize`:

* synthesis with the local engine (1 worker: in this process, as the CLI does; 2+: the spawn
  process pool) and with Ray (a local Ray with that many CPUs, started per run as
  `--engine ray` without --address does): wall time with start-up, time to the first result
  (start-up: Ray itself, worker processes, models), steady photos/s after it, and
  (t_ray - t_local) / n;
* the per-item overhead of each engine alone: a no-op worker through the same code paths,
  the slope of time against item count between --noop-small and --noop-large items (start-up
  cancels out).

Every measurement is repeated --rounds times, rounds interleaved, so that other load on the
machine hits both engines alike.

    python benchmarks/scale.py                        # 200 photos, workers 1 and 2, 2 rounds
    python benchmarks/scale.py --limit 300 --workers 1 2 4 --json out.json
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import harness

from maskforge.core.parallel import pool_map
from maskforge.core.ray_engine import import_ray, ray_map, ray_session
from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
from maskforge.synth.run.runner import TASKS_PER_JOB, plan_inputs, synthesis_worker


def noop_worker() -> Callable[[tuple], list[dict]]:
    """A worker that does nothing per photo but return a row like the real one."""

    def run(task: tuple) -> list[dict]:
        return [{"input": task[1], "status": "no_face", "reason": "no face found"}]

    return run


def timed(results: Iterable) -> tuple[list, float, float, int]:
    """Drain results: (results, seconds to the first, seconds to the last, how many came with
    the first, within 5 ms: a Ray block, or a pool job)."""
    clock = harness.Timer()
    out, times = [], []
    for result in results:
        out.append(result)
        times.append(clock.elapsed())
    if not times:
        return out, 0.0, 0.0, 0
    return out, times[0], times[-1], sum(t - times[0] < 0.005 for t in times)


def local_results(make_worker, args, tasks, workers: int) -> Iterator:
    if workers == 1:  # what `maskforge synthesize -j 1` does: no pool
        yield from map(make_worker(*args), tasks)  # models load inside the timing too
    else:
        yield from pool_map(make_worker, args, tasks, workers, TASKS_PER_JOB)


def ray_results(make_worker, args, tasks, workers: int) -> Iterator:
    with ray_session(None, workers):  # a local Ray per run, as `--engine ray` starts
        yield from ray_map(make_worker, args, tasks, workers, TASKS_PER_JOB)


ENGINES = {"local": local_results, "ray": ray_results}


def synthesis_run(engine: str, tasks: list, workers: int, options: SynthesisOptions) -> dict:
    with tempfile.TemporaryDirectory(prefix="scale-") as out:
        args = (options, {"detector": "cascade"}, out)
        rows, first, total, at_first = timed(
            ENGINES[engine](synthesis_worker, args, tasks, workers)
        )
    n = len(tasks)
    steady = (n - at_first) / (total - first) if total > first and n > at_first else 0.0
    return {
        "engine": engine,
        "workers": workers,
        "photos": n,
        "seconds": total,
        "photos_per_s": n / total,
        "first_result_s": first,
        "steady_photos_per_s": steady,
        "rows": rows,
    }


def noop_seconds(engine: str, tasks: list, workers: int) -> float:
    _, _, total, _ = timed(ENGINES[engine](noop_worker, (), tasks, workers))
    return total


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=harness.FACES / "unmasked")
    parser.add_argument("--limit", type=int, default=200, help="photos per run (first, sorted)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--noop-small", type=int, default=200)
    parser.add_argument("--noop-large", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    harness.add_json_option(parser, "scale")
    args = parser.parse_args()
    import_ray()  # the install hint, before any work
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    plan = list(plan_inputs(args.faces))
    tasks = [(os.path.abspath(p), rel, stem, None) for p, rel, stem in plan[: args.limit]]
    options = SynthesisOptions(seed=args.seed)
    Synthesizer(options)  # models and templates load once here, not inside the first timing
    noop_tasks = {
        n: [(f"/none/{i}.jpg", f"{i}.jpg", str(i), None) for i in range(n)]
        for n in (args.noop_small, args.noop_large)
    }

    rounds = []
    for r in range(args.rounds):
        runs, noop = [], []
        for workers in args.workers:
            for engine in ENGINES:
                run = synthesis_run(engine, tasks, workers, options)
                runs.append(run)
                print(
                    f"round {r + 1}  {engine:5}  {workers} workers  {run['seconds']:6.1f} s  "
                    f"first result {run['first_result_s']:5.1f} s  "
                    f"steady {run['steady_photos_per_s']:5.1f} photos/s",
                    flush=True,
                )
            for engine in ENGINES:
                small, large = (noop_seconds(engine, noop_tasks[n], workers) for n in noop_tasks)
                per_item = (large - small) / (args.noop_large - args.noop_small)
                noop.append(
                    {
                        "engine": engine,
                        "workers": workers,
                        "small_s": small,
                        "large_s": large,
                        "per_item_ms": 1000 * per_item,
                    }
                )
        reference = runs[0]["rows"]
        identical = all(run["rows"] == reference for run in runs)
        for run in runs:
            del run["rows"]
        rounds.append({"synthesis": runs, "noop": noop, "identical_rows": identical})

    n = len(tasks)
    print(
        f"\nsynthesis of {n} photos from {args.faces} (seed {args.seed}); "
        f"{os.cpu_count()} cores, {harness.processor()}"
    )
    table: list[list | str] = []
    keys = ("engine", "workers", "seconds", "photos_per_s", "first_result_s", "steady_photos_per_s")
    for r, rnd in enumerate(rounds, 1):
        by = {(run["engine"], run["workers"]): run for run in rnd["synthesis"]}
        for run in rnd["synthesis"]:
            extra = ""
            if run["engine"] == "ray":
                local = by[("local", run["workers"])]
                extra = rnd.setdefault("ray_extra_ms_per_photo", {})[run["workers"]] = (
                    1000 * (run["seconds"] - local["seconds"]) / n
                )
            table.append([r, *(run[k] for k in keys), extra])
        table.append(f"{'':>5} rows identical across engines and workers: {rnd['identical_rows']}")
    lead = [("round", ">5"), ("engine", "<6"), ("workers", ">7")]
    times = [("wall s", ">7.1f"), ("photos/s", ">9.1f"), ("first s", ">8.1f")]
    times += [("steady/s", ">9.1f"), ("Ray extra ms/photo", ">19.1f")]
    harness.print_table(table, lead + times)
    print(f"\nper-item overhead, no-op worker, slope {args.noop_small} -> {args.noop_large} items")
    harness.print_table(
        [[r, *row.values()] for r, rnd in enumerate(rounds, 1) for row in rnd["noop"]],
        [*lead, ("small s", ">8.2f"), ("large s", ">8.2f"), ("ms/item", ">8.3f")],
    )

    record = {
        "benchmark": "scale",
        "faces": str(args.faces),
        "photos": n,
        "seed": args.seed,
        **harness.environment("cpu_count", "python"),
        "ray": import_ray().__version__,
        "tasks_per_block": TASKS_PER_JOB,
        "rounds": rounds,
    }
    harness.write_json(args.json, record)


if __name__ == "__main__":
    main()
