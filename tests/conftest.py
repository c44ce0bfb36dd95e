"""Shared fixtures: the shipped CC0 portraits, real photos from ../shared/faces (skipped where
absent, with a count at the end of the run) and made images."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import pytest
from namespaces import namespaces_work

try:
    # Ray first, before torch, MediaPipe and protobuf load: importing it late, in a worker that
    # had run many tests, segfaulted twice (in abc.register, from rpds) and took the worker down.
    import ray  # noqa: F401
except ImportError:  # Ray is optional; tests/test_ray_engine.py skips without it
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("MASKFORGE_SHARED_FACES", REPO.parent / "shared" / "faces"))
PORTRAITS = REPO / "examples" / "portraits"
NO_SHARED = "real photos not available"


def _shared(sub: str) -> Path:
    path = SHARED_FACES / sub
    if not path.is_dir():
        pytest.skip(f"{NO_SHARED}: {path} is missing (see ../shared/faces/README.md)")
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say how many tests skipped for lack of ../shared/faces, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_SHARED in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped: they need the development photos at {SHARED_FACES} "
            "(unmasked/, masked_real/ and scenes/). Put that folder there, or point "
            "MASKFORGE_SHARED_FACES at it, and rerun `make test` to run them."
        )


@pytest.fixture(scope="session")
def portraits_dir() -> Path:
    """examples/portraits: the 39 CC0 portraits (256x256) that ship with the project."""
    assert len(list(PORTRAITS.glob("*.jpg"))) == 39, f"{PORTRAITS} should hold the 39 portraits"
    return PORTRAITS


@pytest.fixture(scope="session")
def unmasked_dir() -> Path:
    """../shared/faces/unmasked: real unmasked face photos."""
    return _shared("unmasked")


@pytest.fixture(scope="session")
def masked_real_dir() -> Path:
    """../shared/faces/masked_real: real photos of people wearing masks."""
    return _shared("masked_real")


@pytest.fixture(scope="session")
def scenes_dir() -> Path:
    """../shared/faces/scenes: street and news scenes, VOC face boxes (images/, annotations/)."""
    return _shared("scenes")


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path_factory, monkeypatch) -> None:
    """Run each test in a folder of its own: commands remember their outputs in the working
    folder's .maskforge/state.json, which would otherwise leak into the checkout and other tests."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for test-made images."""
    return np.random.default_rng(1234)


@pytest.fixture
def fifo() -> Iterator[Callable[[Path], Path]]:
    """fifo(path) makes a real named pipe at path (a FIFO with a photo's or a video's name),
    which maskforge must never open. A watcher opens each pipe's write end whenever something
    has it open for reading: that frees a reader blocked in open(), so a regression fails the
    test at teardown instead of hanging it."""
    import threading

    made: list[Path] = []
    opened: set[Path] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            for path in list(made):
                try:  # succeeds only while a reader has the pipe open
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                opened.add(path)
                os.close(fd)

    def make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        made.append(path)
        return path

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield make
    stop.set()
    watcher.join(5)
    if opened:
        pytest.fail(f"opened a FIFO (it blocks until a writer comes): {sorted(map(str, opened))}")


@contextmanager
def _holding(lock: Path) -> Iterator[Path]:
    """Hold an flock on the file lock (created) as a running maskforge command does."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"maskforge test, pid 4242 on testhost, started now\n")
        yield lock
    finally:
        os.close(fd)


@pytest.fixture
def hold_lock() -> Callable[[Path], AbstractContextManager[Path]]:
    """hold_lock(path): a context in which this process holds the flock a maskforge command
    takes on path (flock conflicts between two opens of one file, even in one process)."""
    return _holding


# The shell functions in_namespace's scripts get: `read_only DIR` (a bind mount remounted
# read-only: tests run as root, whom chmod does not stop) and `small_disk DIR SIZE` (a tmpfs
# that fills up), then $MF runs this checkout's maskforge.
_FAULTS = """set -u
read_only() { mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"; }
small_disk() { mount -t tmpfs -o size="$2" tmpfs "$1"; }
"""


@pytest.fixture
def in_namespace() -> Callable[..., subprocess.CompletedProcess]:
    """in_namespace(script, **env): run a bash script in a new user and mount namespace (its
    mounts end with it), with the variables env and the functions of _FAULTS. Skips where
    namespaces cannot be made."""
    if not namespaces_work():
        pytest.skip("cannot mount in a user namespace here")

    def run(script: str, **env: Path | str) -> subprocess.CompletedProcess:
        variables = {
            "MF": f"{sys.executable} -m maskforge",
            "PYTHONPATH": str(REPO),
            **{k: str(v) for k, v in env.items()},
        }
        return subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", _FAULTS + script],
            env={**os.environ, **variables},
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


def error_line(output: str) -> str:
    """The one `Error:` line of a command's output, which holds no traceback."""
    assert "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("Error")]
    return line


@pytest.fixture
def one_error() -> Callable[[str], str]:
    """one_error(output): the one `Error:` line of a command's output (and no traceback)."""
    return error_line


@pytest.fixture
def read_only_refusal(tmp_path, in_namespace) -> Callable[..., tuple[Path, str]]:
    """refused(command, **env): run `maskforge COMMAND` (bash words; $RO is a folder made
    read-only by a real mount) in a namespace; it must exit 2 with one `Error:` line and no
    traceback. Returns (the read-only folder, that line)."""

    def refused(command: str, **env: Path | str) -> tuple[Path, str]:
        ro = tmp_path / "ro"
        ro.mkdir()
        done = in_namespace(f'read_only "$RO" || exit 99\n$MF {command}\n', RO=ro, **env)
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        return ro, error_line(output)

    return refused


def pytest_collection_modifyitems(config, items) -> None:
    """Run the tests that load MediaPipe's landmarker last: a worker process that has MediaPipe's
    runtime loaded segfaulted in ray.init (both bundle their own C++ runtimes), so Ray's tests
    must not follow them in the same process."""
    items.sort(key=lambda item: item.module.__name__.startswith("test_mesh_"))
