"""Shared fixtures: real photos from ../shared/faces (skipped where absent) and made images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("MASKFORGE_SHARED_FACES", REPO.parent / "shared" / "faces"))


def _shared(sub: str) -> Path:
    path = SHARED_FACES / sub
    if not path.is_dir():
        pytest.skip(f"real photos not available: {path} is missing (see ../shared/faces/README.md)")
    return path


@pytest.fixture(scope="session")
def unmasked_dir() -> Path:
    """../shared/faces/unmasked: real unmasked face photos."""
    return _shared("unmasked")


@pytest.fixture(scope="session")
def masked_real_dir() -> Path:
    """../shared/faces/masked_real: real photos of people wearing masks."""
    return _shared("masked_real")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for test-made images."""
    return np.random.default_rng(1234)
