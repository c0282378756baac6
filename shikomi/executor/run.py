"""Run one stage's jobs with the configured executor: local (default), Slurm or Ray."""

from __future__ import annotations

from shikomi.config import Config
from shikomi.core.jobs import Stage
from shikomi.errors import UserError


def run_stage(
    stage: Stage, cfg: Config, kind: str | None = None, workers: int | None = None, verbose: bool = False
) -> dict:
    kind = kind or cfg.executor.kind
    if kind == "local":
        from shikomi.executor.local import run_local

        return run_local(stage, cfg, workers, verbose)
    if kind == "slurm":
        from shikomi.executor.slurm import submit_stage_and_wait

        return submit_stage_and_wait(stage, cfg)
    if kind == "ray":
        from shikomi.executor.ray import run_ray

        return run_ray(stage, cfg)
    raise UserError(f"unknown executor '{kind}'; allowed: local, slurm, ray")
