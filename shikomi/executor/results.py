"""What every executor does after a job: name its failed tasks, read stats.json."""

from __future__ import annotations

import json
import time

from shikomi.core.jobs import Job, Stage
from shikomi.errors import UserError


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
