"""Stages on Ray with datatrove's RayPipelineExecutor (`executor.kind: ray`).

`executor.ray.address` connects to an existing cluster ("auto", "ray://host:10001");
without it a local Ray is started for the run. Each job of a stage runs as
RayPipelineExecutor tasks with the same logs and completion markers as the local
and Slurm executors, so an interrupted stage resumes on any of them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from shikomi.core.jobs import Stage
from shikomi.errors import UserError


class _Chdir:
    """First step of every Ray task: work in the driver's folder, so relative run
    folders mean the same on the workers (Ray starts them elsewhere)."""

    def __init__(self, cwd: str):
        self.cwd = cwd

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        os.chdir(self.cwd)
        return data


def ensure_ray(cfg) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("executor.kind is 'ray' but Ray is not installed: pip install 'ray==2.60.0'") from None
    if ray.is_initialized():
        return
    rc = cfg.executor.ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import shikomi

    pkg_root = str(Path(shikomi.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in [pkg_root, os.environ.get("PYTHONPATH", "")] if p)
    env_vars = {"PYTHONPATH": pythonpath, "RAY_AUTH_MODE": "disabled"}
    for k in ("HF_HOME", "TOKENIZERS_PARALLELISM", "MPLCONFIGDIR"):
        if os.environ.get(k):
            env_vars[k] = os.environ[k]
    kwargs = dict(
        runtime_env={"env_vars": env_vars},
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
        configure_logging=False,
    )
    try:
        if rc.address:
            ray.init(address=rc.address, **kwargs)
        else:
            ray.init(num_cpus=rc.num_cpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = rc.address or "a local Ray"
        raise UserError(f"cannot start or reach {where}: {str(e).splitlines()[0]}") from None


def run_ray(stage: Stage, cfg, verbose: bool = False) -> dict:
    """Run every job of the stage (then its stats job) on Ray; returns stats.json."""
    from datatrove.executor import RayPipelineExecutor

    from shikomi.executor.logs import quiet_datatrove
    from shikomi.executor.results import check_job, stage_stats

    quiet_datatrove(verbose)
    ensure_ray(cfg)
    rc = cfg.executor.ray
    stage.path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cwd = os.getcwd()
    for job in stage.with_summary():
        workers = rc.workers if rc.workers != -1 else job.tasks
        ex = RayPipelineExecutor(
            pipeline=[_Chdir(cwd), *job.pipeline],
            tasks=job.tasks,
            workers=max(1, min(workers, job.tasks)),
            logging_dir=str(Path(stage.logs_dir(job)).resolve()),
            skip_completed=True,
            cpus_per_task=rc.cpus_per_task,
            mem_per_cpu_gb=rc.mem_per_cpu_gb,
            time=rc.time_limit_s,
        )
        ex.run()
        check_job(stage, job, ex.get_incomplete_ranks(), " on Ray")
    return stage_stats(stage, t0)
