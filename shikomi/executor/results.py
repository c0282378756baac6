"""What every executor does after a job: name its failed tasks, read stats.json."""

from __future__ import annotations

import time

from shikomi.core.jobs import Job, Stage
from shikomi.core.schemas import StageStats
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
    st = StageStats.read(stage.path, missing_ok=True)
    stats = st.dump() if st is not None else {}
    stats["wall_s"] = round(time.time() - t0, 3)
    return stats
