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
    """runner.synthesis_worker, except that a photo with "crash" in its name SIGKILLs its
    worker."""
    from maskforge.synth.run.runner import synthesis_worker

    real = synthesis_worker(options, detector_args, out)

    def run(task):
        if "crash" in Path(task[0]).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(task)

    return run


def crashing_crop_finder():
    """face_boxes.make_crop_finder(), except that a photo with "crash" in its name SIGKILLs its
    worker."""
    from maskforge.faces.boxes import make_crop_finder

    real = make_crop_finder()

    def run(path):
        if "crash" in Path(path).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path)

    return run


def full_once_synthesis_worker(options, detector_args: dict, out: str):
    """runner.synthesis_worker, except that a photo with "full" in its name raises ENOSPC
    until the file out/../disk-was-full exists (its first try makes it)."""
    import errno

    from maskforge.synth.run.runner import synthesis_worker

    real = synthesis_worker(options, detector_args, out)
    marker = Path(out).parent / "disk-was-full"

    def run(task):
        if "full" in Path(task[0]).name and not marker.exists():
            marker.touch()
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(out) / "x.jpg"))
        return real(task)

    return run


def pid_worker():
    """task -> this worker's process id, after a short nap (the pool stays busy)."""
    import time

    def run(task: int) -> int:
        time.sleep(0.2)
        return os.getpid()

    return run
