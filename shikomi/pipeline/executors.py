"""Run a stage's jobs with a datatrove executor: local (default), Slurm or Ray."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..config import Config
from ..errors import UserError
from ..stage import Job, Stage


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


def _quiet_datatrove(verbose: bool) -> None:
    """Keep the console for progress and summaries; task logs stay in files."""
    if verbose:
        return
    import datatrove.executor.base as base
    from loguru import logger

    base.add_task_logger = _quiet_add_task_logger
    base.close_task_logger = _quiet_close_task_logger
    logger.remove()
    logger.add(lambda m: print(m, end="", file=__import__("sys").stderr), level="WARNING", format="{level}: {message}")


def local_executor(stage: Stage, job: Job, cfg: Config, workers: int | None = None):
    from datatrove.executor import LocalPipelineExecutor

    w = workers if workers is not None else (job.workers if job.workers != -1 else cfg.executor.workers)
    tasks = job.tasks
    w = tasks if w in (-1, None) else max(1, min(w, tasks))
    return LocalPipelineExecutor(
        pipeline=job.pipeline,
        tasks=tasks,
        workers=w,
        logging_dir=stage.logs_dir(job),
        start_method=cfg.executor.start_method,
        skip_completed=True,
    )


def run_local(stage: Stage, cfg: Config, workers: int | None = None, verbose: bool = False) -> dict:
    """Run every job of the stage in order, then the summary job. Completed tasks
    (datatrove completion markers) are skipped, so an interrupted stage resumes."""
    _quiet_datatrove(verbose)
    preload()
    stage.path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for job in stage.with_summary():
        ex = local_executor(stage, job, cfg, workers)
        from .report import TaskProgress

        with TaskProgress(stage.name, job.name, stage.logs_dir(job), job.tasks, enabled=None if not verbose else False):
            ex.run()
        check_job(stage, job, [r for r in range(job.tasks) if not ex.is_rank_completed(r)])
    return stage_stats(stage, t0)


def check_job(stage: Stage, job: Job, failed: list[int], where: str = "") -> None:
    """One line naming the failed tasks of a job and where their logs are."""
    if failed:
        raise UserError(
            f"stage {stage.name}: job '{job.name}' tasks {failed} failed{where}; logs in {stage.logs_dir(job)}/logs/ "
            f"(rerun the same command to resume)"
        )


def stage_stats(stage: Stage, t0: float) -> dict:
    """The stage's stats.json with the wall time of this run."""
    stats_path = stage.path / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    stats["wall_s"] = round(time.time() - t0, 3)
    return stats


def preload() -> None:
    """Import what the Parquet writer pulls in lazily (pyarrow's pandas shim: seconds),
    once, so forked task workers inherit it instead of importing it each."""
    import pyarrow.parquet  # noqa: F401

    try:
        import pandas  # noqa: F401
    except ImportError:  # pragma: no cover
        pass


def reset_stage(stage_dir: Path) -> None:
    """Remove a stage's outputs (for --force)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)


def run_stage(stage: Stage, cfg: Config, kind: str | None = None, workers: int | None = None, verbose: bool = False) -> dict:
    kind = kind or cfg.executor.kind
    if kind == "local":
        return run_local(stage, cfg, workers, verbose)
    if kind == "slurm":
        from .submit import submit_stage_and_wait

        return submit_stage_and_wait(stage, cfg)
    if kind == "ray":
        from .ray_exec import run_ray

        return run_ray(stage, cfg)
    raise UserError(f"unknown executor '{kind}'; allowed: local, slurm, ray")
