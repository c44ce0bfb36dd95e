"""How training stops: early stopping's rule, a stop request, the interruption's message."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from maskforge.learn.distributed import DistContext
from maskforge.learn.stopping import EarlyStopping, StopRequest, TrainingInterrupted


def test_early_stopping_rule():
    early = EarlyStopping(patience=2)
    flags = [
        early.update(loss, 0.5, epoch) for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.89, 0.9], 1)
    ]
    assert flags == [True, True, False, True, False] and not early.should_stop
    early.update(0.91, 0.5, 6)
    assert early.should_stop and early.best_epoch == 4
    assert not EarlyStopping(patience=0, bad_epochs=99).should_stop


def test_stop_request_catches_sigterm_and_ctrl_c_then_restores_the_handlers():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.check(DistContext(), torch.device("cpu"))
        os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before killing a job
        assert stop.requested and stop.check(DistContext(), torch.device("cpu"))
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait for the batch
            os.kill(os.getpid(), signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_training_interrupted_says_where():
    stop = TrainingInterrupted(Path("runs/r1"), 2, 5, 10, is_main=False)
    assert str(stop) == "interrupted in epoch 3, after batch 5/10"
    assert isinstance(stop, KeyboardInterrupt) and not stop.is_main
