"""The building blocks every stage shares: jobs, counting steps, rejection and stats.

A stage is a list of jobs; a job is a datatrove pipeline run over N tasks by the
configured executor (local, Slurm or Ray). Every stage writes

    <run_dir>/<stage>/data/       kept documents (Parquet, zstd)
    <run_dir>/<stage>/rejected/   dropped documents, metadata.reject_reason = "rule" or "rule:value"
    <run_dir>/<stage>/logs/<job>/ datatrove logs, completions and per-task stats
    <run_dir>/<stage>/stats.json  the stage summary (written by a final one-task job)

How stats.json is counted: `shikomi.core.stats`; rules and rejection: `shikomi.core.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shikomi.core.stats import WriteStageStats


@dataclass
class Job:
    """One datatrove pipeline of a stage, run over `tasks` tasks."""

    name: str
    pipeline: list
    tasks: int = 1


@dataclass
class Stage:
    name: str
    out_dir: str
    jobs: list[Job]
    # called in the summary job: returns extra keys merged into stats.json
    extras: Callable[[str], dict] | None = None
    # set by the chain (shikomi.pipeline.chain) from the stage registry: the command
    # that builds this stage and its "module:function" builder, so that a Slurm task
    # can build it again on the node once its input exists
    command: str = ""
    builder: str = ""
    # the config the builder saw (with the default input from the registry filled in)
    config: Any = None
    # the encoding of its JSONL input (`<section>.input_encoding`; None: UTF-8)
    input_encoding: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.out_dir)

    def logs_dir(self, job: Job | str) -> str:
        name = job if isinstance(job, str) else job.name
        return str(self.path / "logs" / name)

    def with_summary(self) -> list[Job]:
        """The stage's jobs followed by the one-task job that writes stats.json."""
        summary = Job("summary", [WriteStageStats(self.name, self.out_dir, [j.name for j in self.jobs], self.extras)])
        return [*self.jobs, summary]
