"""The local executor: every job of a stage with datatrove's LocalPipelineExecutor."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from shikomi.config import Config
from shikomi.core.jobs import Job, Stage
from shikomi.executor.logs import quiet_datatrove
from shikomi.executor.progress import TaskProgress
from shikomi.executor.results import check_job, stage_stats


def local_executor(stage: Stage, job: Job, cfg: Config, workers: int | None = None):
    from datatrove.executor import LocalPipelineExecutor

    w = workers if workers is not None else cfg.executor.workers
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
    quiet_datatrove(verbose)
    preload()
    stage.path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for job in stage.with_summary():
        ex = local_executor(stage, job, cfg, workers)
        with TaskProgress(stage.name, job.name, stage.logs_dir(job), job.tasks, enabled=None if not verbose else False):
            ex.run()
        check_job(stage, job, [r for r in range(job.tasks) if not ex.is_rank_completed(r)])
    return stage_stats(stage, t0)


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
