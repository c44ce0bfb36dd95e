"""The training log: rank 0 writes train.log and the console (through tqdm, so bars stay intact)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

from maskforge.learn.distributed import DistContext

# The one logger of a training run; every learn module that reports progress uses it.
logger = logging.getLogger("maskforge.learn.train")
LogState = tuple[bool, int, list[logging.Handler]]


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def logger_state() -> LogState:
    """How the logger is set up now, for stop_logging to put back."""
    return logger.propagate, logger.level, list(logger.handlers)


def start_logging(run_dir: Path, ctx: DistContext) -> None:
    """Rank 0: INFO to run_dir/train.log (timestamped) and the console; other ranks: errors only."""
    logger.propagate = False
    if not ctx.is_main:
        logger.setLevel(logging.ERROR)
        return
    logger.setLevel(logging.INFO)
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(file_handler)
    logger.addHandler(console)


def stop_logging(state: LogState) -> None:
    """Close the handlers start_logging added and put the logger back as it was."""
    propagate, level, handlers = state
    for handler in set(logger.handlers) - set(handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = propagate
    logger.setLevel(level)
