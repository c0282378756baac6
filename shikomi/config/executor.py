from typing import Literal, Optional

from pydantic import Field

from .base import Section


class SlurmConfig(Section):
    """Defaults for every stage submitted to Slurm; `stages:` overrides per stage."""

    partition: Optional[str] = None
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    time: str = "24:00:00"
    qos: Optional[str] = None
    sbatch_args: dict[str, str] = Field(default_factory=dict)
    env_command: Optional[str] = None  # e.g. "source .venv/bin/activate"
    max_array_launch_parallel: bool = False
    stages: dict[str, dict] = Field(default_factory=dict)


class RayConfig(Section):
    address: Optional[str] = None  # None: start a local Ray
    cpus_per_task: int = Field(1, ge=1)


class ExecutorConfig(Section):
    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(2, ge=1, description="default number of tasks (shards of the input) per stage")
    workers: int = Field(-1, description="tasks run at once locally; -1 = as many as tasks")
    start_method: Literal["fork", "forkserver", "spawn"] = "fork"
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
