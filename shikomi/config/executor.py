"""Where stages run: locally (default), on Slurm (job arrays chained with
dependencies) or on Ray. See docs/sections/cluster.md."""

from typing import Literal

from pydantic import Field

from shikomi.config.base import Section


class SlurmJobConfig(Section):
    """Per-stage (or per-job, key "stage/job") override of the Slurm defaults.
    Unset keys inherit from `executor.slurm`."""

    partition: str | None = None
    cpus_per_task: int | None = Field(None, ge=1)
    mem_per_cpu_gb: float | None = Field(None, gt=0)
    time: str | None = None
    qos: str | None = None
    workers: int | None = Field(
        None, description="array tasks running at once (sbatch --array=0-N%workers); -1 = no limit"
    )
    sbatch_args: dict[str, str] = Field(default_factory=dict)


class SlurmTrainConfig(Section):
    """The trainer's sbatch script: `srun torchrun` on nodes x processes per node."""

    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(0, ge=0, description="0 = CPU training with gloo (tests, smoke runs)")
    nproc_per_node: int | None = Field(None, ge=1, description="processes per node; default gpus_per_node (1 on CPU)")
    cpus_per_task: int = Field(8, ge=1, description="CPUs per node for the torchrun agent and its workers")
    mem_gb: int | None = Field(None, ge=1, description="memory per node (sbatch --mem); default: the partition's")
    partition: str | None = None
    time: str | None = None
    qos: str | None = None
    rdzv_port: int = Field(29500, ge=1024, le=65535)
    signal_before_s: int = Field(
        300, ge=10, description="seconds before the time limit Slurm signals the job to checkpoint and requeue"
    )
    module: str = Field("shikomi.train.trainer", description="python module torchrun runs (-m)")
    args: list[str] = Field(default_factory=list, description="extra arguments for the training module")
    sbatch_args: dict[str, str] = Field(default_factory=dict)


class SlurmConfig(Section):
    """Defaults for every stage submitted to Slurm; `stages:` overrides per stage."""

    partition: str | None = Field(None, description="default: the cluster's default partition")
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    time: str = "24:00:00"
    qos: str | None = None
    workers: int = Field(-1, description="array tasks running at once per job; -1 = no limit")
    sbatch_args: dict[str, str] = Field(default_factory=dict, description="extra #SBATCH options, e.g. {account: abc}")
    env_command: str | None = Field(
        None,
        description="shell line that sets up Python on the compute nodes; default: activate the venv shikomi runs from",
    )
    job_name_prefix: str | None = Field(None, description="default: the config's name")
    max_array_size: int = Field(1001, description="the cluster's MaxArraySize; larger jobs are split")
    max_array_launch_parallel: bool = False
    requeue: bool = True
    check: bool = Field(True, description="check partitions, resources and env_command before submitting")
    poll_s: float = Field(5.0, gt=0, description="squeue polling interval while waiting")
    stages: dict[str, SlurmJobConfig] = Field(default_factory=dict)
    train: SlurmTrainConfig = Field(default_factory=SlurmTrainConfig)


class RayConfig(Section):
    address: str | None = Field(
        None, description="existing cluster (e.g. 'auto' or 'ray://host:10001'); None: start a local Ray"
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(1, gt=0)
    workers: int = Field(-1, description="tasks running at once per job; -1 = as many as tasks")
    time_limit_s: int | None = Field(None, ge=1, description="kill a task running longer than this")


class ExecutorConfig(Section):
    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(2, ge=1, description="default number of tasks (shards of the input) per stage")
    workers: int = Field(-1, description="tasks run at once locally; -1 = as many as tasks")
    start_method: Literal["fork", "forkserver", "spawn"] = "fork"
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
