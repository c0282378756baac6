"""The one adapter over datatrove's logging (loguru): the console keeps progress
and summaries, each task's full log goes to `<logs>/logs/task_NNNNN.log`.

datatrove has no option for this, so `quiet_datatrove` replaces its
`add_task_logger`/`close_task_logger` (through `core.datatrove_adapter`).
"""

from __future__ import annotations

from shikomi.core.datatrove_adapter import replace_task_logger
from shikomi.errors import UserError


def _not_user_error(record) -> bool:
    """A UserError raised inside a task is printed once, as one line, by the CLI."""
    exc = record["exception"]
    return not (exc is not None and isinstance(exc.value, UserError))


def _quiet_add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
    """datatrove's add_task_logger, with only errors on the console (the full log
    still goes to <logs>/logs/task_NNNNN.log)."""
    import sys

    from loguru import logger

    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
    logger.add(sys.stderr, colorize=False, level="ERROR", format=fmt, filter=_not_user_error)
    logger.add(logfile, colorize=False, level="DEBUG", format=fmt)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def _quiet_close_task_logger(logfile):
    from loguru import logger

    logger.complete()
    logger.remove()
    logger.add(lambda m: print(m, end="", file=__import__("sys").stderr), level="WARNING", format="{level}: {message}")
    logfile.close()


def quiet_datatrove(verbose: bool) -> None:
    """Keep the console for progress and summaries; task logs stay in files."""
    if verbose:
        return
    from loguru import logger

    replace_task_logger(_quiet_add_task_logger, _quiet_close_task_logger)
    logger.remove()
    logger.add(lambda m: print(m, end="", file=__import__("sys").stderr), level="WARNING", format="{level}: {message}")


def quiet_console() -> None:
    """Only warnings and errors of datatrove on the console (Slurm submission)."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{message}")
