"""Shared fixtures: the shipped CC0 portraits, real photos from ../shared/faces (skipped where
absent, with a count at the end of the run) and made images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
            "(unmasked/ and masked_real/). Put that folder there, or point "
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


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path_factory, monkeypatch) -> None:
    """Run each test in a folder of its own: commands remember their outputs in the working
    folder's .maskforge/state.json, which would otherwise leak into the checkout and other tests."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for test-made images."""
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items) -> None:
    """Run the tests that load MediaPipe's landmarker last: a worker process that has MediaPipe's
    runtime loaded segfaulted in ray.init (both bundle their own C++ runtimes), so Ray's tests
    must not follow them in the same process."""
    items.sort(key=lambda item: item.module.__name__.startswith("test_mesh_"))
