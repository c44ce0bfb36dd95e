"""What the benchmark scripts share: paths, timing, peak memory, child processes, tables, JSON.

The scripts are run as `python benchmarks/NAME.py`: Python puts benchmarks/ first on sys.path,
so `import harness` finds this file, also in a script's copy of itself run as a child
(`sys.executable, __file__, ...`); a `python -c` child gets it through python_c. Standard
library only, so that a child measuring its own memory pays little for it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"  # the data beside the checkout: faces/, tools/
FACES = SHARED / "faces"
RESULTS = HERE / "results"  # where each script writes NAME.json by default (git ignores it)


class Timer:
    """Seconds of a with block: `with Timer() as t: ...`, then `t.seconds`. Outside a with block
    it counts from its creation or `restart()`; `elapsed()` reads it. The clock: perf_counter
    (wall time) unless another is given, e.g. time.process_time (this process's CPU time)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = clock()
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self.restart()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self.elapsed()

    def restart(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start


def _maxrss_mib(ru_maxrss: int) -> float:
    """ru_maxrss in MiB: it is in KiB on Linux, in bytes on macOS."""
    return ru_maxrss / 2**20 if sys.platform == "darwin" else ru_maxrss / 1024


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def traced_peak_mib(fn: Callable[[], T]) -> tuple[float, T]:
    """(peak MiB that Python allocated while fn() ran, as tracemalloc counts it; fn's result).
    tracemalloc slows Python down: time fn in another call, not in this one."""
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


def maskforge_command(*args: str) -> list[str]:
    """The command line of `maskforge ARGS...` with this Python, as a user runs it."""
    return [sys.executable, "-m", "maskforge", *args]


def python_c(code: str) -> list[str]:
    """The command line of `python -c CODE` where CODE can `import harness` (append its argv)."""
    return [sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(HERE)!r})\n{code}"]


def run_json(cmd: Sequence[str], what: str) -> dict[str, Any]:
    """Run cmd (output captured); the JSON object on the last line of its stdout. Exits with
    `what` and the end of cmd's stderr if cmd fails."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Runs argv[1:] and prints its peak RSS and exit code last; a fresh wrapper per command, so that
# the children's ru_maxrss covers this command's processes only, not earlier ones.
_PEAK_WRAPPER = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
)


@dataclass
class Measured:
    """A command run by run_measured."""

    returncode: int
    stderr: str
    seconds: float  # wall time, process start-up included
    peak_rss_mib: float  # the largest peak RSS of any one of its processes (workers included)


def run_measured(cmd: Sequence[str]) -> Measured:
    """Run cmd as a subprocess (its output captured): wall time and peak memory."""
    with Timer() as timer:
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_WRAPPER, *cmd], capture_output=True, text=True
        )
    peak, code = (int(v) for v in proc.stdout.split()[-2:])
    return Measured(code, proc.stderr, timer.seconds, _maxrss_mib(peak))


_ENVIRONMENT: dict[str, Callable[[], Any]] = {
    "python": platform.python_version,
    "machine": platform.machine,
    "cpu_count": os.cpu_count,
}


def environment(*keys: str) -> dict[str, Any]:
    """Where the numbers come from, for a results record: `keys` of python (its version),
    machine (x86_64, arm64...) and cpu_count, in the order given (default: all)."""
    return {key: _ENVIRONMENT[key]() for key in keys or _ENVIRONMENT}


def processor() -> str:
    """The processor's name where the platform tells it, else the machine (x86_64, arm64...)."""
    return platform.processor() or platform.machine()


def parser(description: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser whose --help shows `description` (a script's docstring) as written."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_json_option(parser: argparse.ArgumentParser, name: str | None) -> None:
    """--json PATH: where the script writes its results; by default RESULTS/NAME.json, or
    nowhere if name is None."""
    if name is None:
        parser.add_argument("--json", type=Path, help="also write the results here")
    else:
        default = RESULTS / f"{name}.json"
        shown = default.relative_to(REPO)
        parser.add_argument(
            "--json", type=Path, default=default, help=f"where to write the results [{shown}]"
        )


def write_json(path: Path, record: Any, indent: int = 2, quiet: bool = False) -> None:
    """Write record to path as JSON (indented, a final newline), creating its folder; says so
    unless quiet. Atomic: a temporary file beside it, then os.replace, so a reader (or a
    benchmark killed halfway) never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=indent) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if not quiet:
        print(f"wrote {path}")


Column = tuple[str, str]  # (title, format spec of its cells, e.g. "<38", ">9.3f")
_ALIGN_WIDTH = re.compile(r"[<>^]?\d*")


def _cell(value: object, spec: str) -> str:
    """value formatted by spec; None as "-", and a string with spec's alignment and width only
    (a cell already formatted, or a blank)."""
    if value is None:
        value = "-"
    if isinstance(value, str):
        align_width = _ALIGN_WIDTH.match(spec)
        return format(value, align_width.group() if align_width else "")
    return format(value, spec)


def print_table(
    rows: Sequence[Sequence[object] | str], columns: Sequence[Column], sep: str = " "
) -> None:
    """Print an aligned plain-text table: the column titles, then a line a row, with no
    trailing blanks. A column's spec formats its cells (numbers: give the alignment, e.g.
    ">8.1f"); its alignment and width place the title too. A row that is a string is printed
    as it is (a note between rows)."""
    print(sep.join(_cell(title, spec) for title, spec in columns).rstrip())
    for row in rows:
        if isinstance(row, str):
            print(row)
        else:
            cells = (_cell(v, spec) for v, (_, spec) in zip(row, columns, strict=True))
            print(sep.join(cells).rstrip())
