"""Worker factories that kill their own process on chosen tasks (spawn workers import this
module by name, so a test can make one photo or one task crash the worker that runs it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def killing_worker(deadly: tuple):
    """task -> task * 10, except that a task in `deadly` SIGKILLs its worker."""

    def run(task: int) -> int:
        if task in deadly:
            os.kill(os.getpid(), signal.SIGKILL)
        return task * 10

    return run


def crashing_synthesis_worker(options, detector_args: dict, out: str):
    """runner.synthesis_worker, except that a photo named crash*.* SIGKILLs its worker."""
    from maskforge.synth.runner import synthesis_worker

    real = synthesis_worker(options, detector_args, out)

    def run(task):
        if Path(task[0]).name.startswith("crash"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(task)

    return run


def pid_worker():
    """task -> this worker's process id, after a short nap (the pool stays busy)."""
    import time

    def run(task: int) -> int:
        time.sleep(0.2)
        return os.getpid()

    return run
