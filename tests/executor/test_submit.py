"""Cluster submission without a cluster: dry-run sbatch scripts, job options, the
trainer's sbatch script and torchrun line, `shikomi status` on a local run, and the
Ray executor against the local executor. The real-Slurm tests are in
test_slurm.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.submit import outputs, shikomi, write_config

from shikomi.config import load_config
from shikomi.core.jobs import Job
from shikomi.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- dry run


def test_dry_run_writes_chained_array_scripts(tmp_path, sample):
    cfg = write_config(
        tmp_path / "c.yaml",
        sample,
        tmp_path / "run",
        kind="slurm",
        slurm={
            "partition": "cpu",
            "time": "02:00:00",
            "workers": 8,
            "sbatch_args": {"account": "grp"},
            "env_command": "source /opt/venv/bin/activate",
            "stages": {"langid": {"cpus_per_task": 3, "mem_per_cpu_gb": 4, "partition": "fat"}},
        },
    )
    r = shikomi(
        "submit",
        "--config",
        str(cfg),
        "--stages",
        "extract,langid",
        "--dry-run",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )  # no Slurm needed for a dry run
    scripts = sorted((tmp_path / "run" / "submit" / "dry-run").glob("*.sbatch"))
    names = [p.name for p in scripts]
    assert names == [
        "01-extract.extract.sbatch",
        "02-extract.summary.sbatch",
        "03-langid.langid.sbatch",
        "04-langid.summary.sbatch",
    ]
    ex, ex_sum, lid, lid_sum = (p.read_text() for p in scripts)
    # the scripts are printed too
    assert "#SBATCH --job-name=demo-extract-extract" in r.stdout and "nothing was submitted" in r.stdout
    # job arrays of the stage's tasks, throttled by `workers`
    assert "#SBATCH --array=0-1%8" in ex and "#SBATCH --array=0-0%8" in ex_sum
    assert "#SBATCH --partition=cpu" in ex and "#SBATCH --time=02:00:00" in ex and "#SBATCH --account=grp" in ex
    assert "#SBATCH --cpus-per-task=1" in ex and "#SBATCH --mem-per-cpu=2048M" in ex
    # per-stage overrides
    assert "#SBATCH --partition=fat" in lid and "#SBATCH --cpus-per-task=3" in lid and "--mem-per-cpu=4096M" in lid
    # each job after the previous one
    assert "--dependency=afterok:DRYRUN1" in ex_sum and "--dependency=afterok:DRYRUN2" in lid
    assert "--dependency=afterok:DRYRUN3" in lid_sum and "--dependency" not in ex
    # environment, logs and completions under the stage's logs folder
    assert "source /opt/venv/bin/activate" in ex
    assert f"--output={tmp_path / 'run' / 'extract' / 'logs' / 'extract' / 'slurm_logs'}/%A_%a.out" in ex
    assert f"launch_pickled_pipeline {tmp_path / 'run' / 'langid' / 'logs' / 'langid' / 'executor.pik'}" in lid
    assert "#SBATCH --requeue" in ex
    # nothing was submitted, so no submission record
    assert not (tmp_path / "run" / "submit" / "jobs.json").exists()


def test_dry_run_plans_downstream_stage_and_rebuilds_it_on_the_node(tmp_path, sample):
    """langid's input (extract's output) does not exist at submit time: the pickled
    executor carries the config and rebuilds the pipeline inside the array task."""
    import dill

    cfg = write_config(tmp_path / "c.yaml", sample, tmp_path / "run", kind="slurm")
    shikomi("submit", "--config", str(cfg), "--stages", "extract,langid", "--dry-run", cwd=tmp_path)
    with open(tmp_path / "run" / "langid" / "logs" / "langid" / "executor.pik", "rb") as f:
        ex = dill.load(f)
    assert ex.rebuild["stage"] == "langid" and ex.rebuild["job"] == "langid"
    assert ex.pipeline == [] and ex.tasks == 2
    with open(tmp_path / "run" / "extract" / "logs" / "extract" / "executor.pik", "rb") as f:
        ex0 = dill.load(f)
    assert ex0.rebuild is None and len(ex0.pipeline) == 2  # the first stage is pickled as built


def test_dry_run_trainer_and_report_jobs(tmp_path, sample):
    cfg = write_config(
        tmp_path / "c.yaml",
        sample,
        tmp_path / "run",
        kind="slurm",
        slurm={"train": {"nodes": 2, "gpus_per_node": 8, "partition": "gpu", "cpus_per_task": 64}},
    )
    shikomi("submit", "--config", str(cfg), "--stages", "train,report", "--dry-run", cwd=tmp_path)
    scripts = sorted((tmp_path / "run" / "submit" / "dry-run").glob("*.sbatch"))
    assert [p.name for p in scripts] == ["01-train.sbatch", "02-report.sbatch"]
    train = scripts[0].read_text()
    assert "#SBATCH --nodes=2" in train and "#SBATCH --gpus-per-node=8" in train
    assert "#SBATCH --partition=gpu" in train and "#SBATCH --requeue" in train
    assert "--dependency=afterok:DRYRUN1" in scripts[1].read_text()
    assert "shikomi.cli report" in scripts[1].read_text()


# --------------------------------------------------------------------------- trainer script


def test_trainer_sbatch_and_torchrun_command_line(tmp_path):
    from shikomi.executor.sbatch import torchrun_command, train_script

    cfg = load_config(
        None,
        {
            "name": "ja1b",
            "run_dir": str(tmp_path / "run"),
            "executor": {
                "slurm": {
                    "partition": "cpu",
                    "env_command": "source /v/bin/activate",
                    "train": {
                        "nodes": 4,
                        "gpus_per_node": 8,
                        "partition": "gpu",
                        "time": "48:00:00",
                        "signal_before_s": 600,
                        "cpus_per_task": 96,
                        "mem_gb": 800,
                        "rdzv_port": 29600,
                        "args": ["--max-steps", "100"],
                    },
                }
            },
        },
    )
    cmd = torchrun_command(cfg, "/r/submit/config.yaml", 4, 8, 29600, "shikomi.train.trainer", ["--max-steps", "100"])
    # torchrun's agent that keeps waiting for the workers' save after a signal, with
    # a shutdown timeout of signal_before_s (plain torchrun kills them after 30 s)
    assert cmd == [
        "python",
        "-m",
        "shikomi.train.agent",
        "--nnodes=4",
        "--nproc_per_node=8",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=$MASTER_ADDR:29600",
        "--rdzv_id=$SLURM_JOB_ID",
        "--max_restarts=0",
        "--shutdown_timeout=600",
        "-m",
        "shikomi.train.trainer",
        "--config",
        "/r/submit/config.yaml",
        "--resume",
        "--max-steps",
        "100",
    ]
    s = train_script(cfg, "/r/submit/config.yaml", "source /v/bin/activate", "/work")
    lines = s.splitlines()
    assert lines[0] == "#!/bin/bash"
    for d in (
        "--job-name=ja1b-train",
        "--nodes=4",
        "--ntasks-per-node=1",
        "--gpus-per-node=8",
        "--cpus-per-task=96",
        "--partition=gpu",
        "--time=48:00:00",
        "--mem=800G",
        "--requeue",
        "--signal=B:USR1@600",
        "--open-mode=append",
        "--chdir=/work",
    ):
        assert f"#SBATCH {d}" in lines, d
    # the rendezvous host is the first node of the allocation
    assert 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in s
    i = next(i for i, ln in enumerate(lines) if ln.startswith("srun "))
    srun = lines[i] + "\n" + lines[i + 1]
    # the step gets the job's CPUs and memory explicitly (srun does not inherit --cpus-per-task)
    assert lines[i] == "srun --kill-on-bad-exit=1 --ntasks-per-node=1 --cpus-per-task=96 --mem=800G \\"
    assert lines[i + 1].strip().startswith("python -m shikomi.train.agent --nnodes=4 --nproc_per_node=8")
    assert "--rdzv_endpoint=$MASTER_ADDR:$RDZV_PORT" in srun and srun.endswith("--resume --max-steps 100 &")
    assert "RDZV_PORT=$(( 29600 + SLURM_JOB_ID % 1000 ))" in s
    # requeue on the time-limit signal: SIGTERM to the job's steps (the trainer checkpoints),
    # wait for them, then requeue; scancel/preemption (TERM) waits for the checkpoint too
    assert "trap requeue USR1" in s and "trap stopped TERM" in s
    assert 'scancel --signal=TERM "$SLURM_JOB_ID"' in s and 'scontrol requeue "$SLURM_JOB_ID"' in s
    assert s.index("scancel --signal=TERM") < s.index("wait_for_training\n  scontrol requeue")
    assert s.index("source /v/bin/activate") < s.index("srun ")
    # CPU training: one process per node, no GPU request
    cfg.executor.slurm.train.gpus_per_node = 0
    s = train_script(cfg, "/c.yaml", "", "/work")
    assert "--gpus-per-node" not in s and "--nproc_per_node=1" in s


# --------------------------------------------------------------------------- config


def test_job_options_precedence():
    from shikomi.executor.slurm import job_options

    cfg = load_config(
        None,
        {
            "executor": {
                "slurm": {
                    "partition": "cpu",
                    "cpus_per_task": 1,
                    "time": "01:00:00",
                    "sbatch_args": {"account": "a"},
                    "stages": {
                        "dedup": {"cpus_per_task": 4, "sbatch_args": {"constraint": "ssd"}},
                        "dedup/cluster": {"mem_per_cpu_gb": 16, "time": "10:00:00"},
                    },
                }
            }
        },
    )
    o = job_options(cfg, "dedup", Job("signatures", [], tasks=8))
    assert (o["partition"], o["cpus_per_task"], o["time"]) == ("cpu", 4, "01:00:00")
    assert o["sbatch_args"] == {"account": "a", "constraint": "ssd"}
    o = job_options(cfg, "dedup", Job("cluster", []))
    assert (o["cpus_per_task"], o["mem_per_cpu_gb"], o["time"]) == (4, 16, "10:00:00")
    assert job_options(cfg, "langid", Job("langid", []))["cpus_per_task"] == 1


def test_bad_cluster_config_is_one_line(tmp_path, sample):
    with pytest.raises(UserError, match="unknown key 'executor.slurm.partiton'"):
        load_config(None, {"executor": {"slurm": {"partiton": "x"}}})
    cfg = write_config(
        tmp_path / "c.yaml", sample, tmp_path / "run", kind="slurm", slurm={"stages": {"langdi": {"cpus_per_task": 2}}}
    )
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract", "--dry-run", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown stage 'langdi'" in r.stderr
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract,nope", "--dry-run", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "unknown stage(s) ['nope']" in r.stderr


def test_submit_without_slurm_says_so(tmp_path, sample):
    cfg = write_config(tmp_path / "c.yaml", sample, tmp_path / "run", kind="slurm")
    r = shikomi(
        "submit", "--config", str(cfg), "--stages", "extract", cwd=tmp_path, check=False, env={"PATH": "/nonexistent"}
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "'sinfo' not found" in r.stderr


# --------------------------------------------------------------------------- status


def test_status_of_a_local_run_names_failed_tasks(tmp_path, sample):
    cfg = write_config(tmp_path / "c.yaml", sample, tmp_path / "run")
    shikomi("extract", "--config", str(cfg), cwd=tmp_path)
    r = shikomi("status", str(tmp_path / "run"), "--json", cwd=tmp_path)
    st = json.loads(r.stdout)
    assert st["complete"] is True
    jobs = {(s["stage"], j["job"]): j for s in st["stages"] for j in s["jobs"]}
    assert jobs[("extract", "extract")]["tasks"] == 2 and jobs[("extract", "extract")]["done"] == 2
    # a task that ran but left no completion marker is reported failed, with its log
    (tmp_path / "run" / "extract" / "logs" / "extract" / "completions" / "00001").unlink()
    r = shikomi("status", str(tmp_path / "run"), cwd=tmp_path)
    assert "incomplete" in r.stdout
    assert (
        f"extract/extract task 1: {tmp_path / 'run' / 'extract' / 'logs' / 'extract' / 'logs' / 'task_00001.log'}"
        in r.stdout
    )
    r = shikomi("status", str(tmp_path / "nope"), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "run folder not found" in r.stderr


# --------------------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_front_half_matches_local(tmp_path, sample):
    pytest.importorskip("ray")
    local = write_config(tmp_path / "local.yaml", sample, tmp_path / "local")
    shikomi("run", "--config", str(local), "--stages", "extract,langid", cwd=tmp_path)
    ray_cfg = write_config(tmp_path / "ray.yaml", sample, tmp_path / "ray", kind="ray", ray={"num_cpus": 2})
    r = shikomi(
        "submit",
        "--config",
        str(ray_cfg),
        "--stages",
        "extract,langid",
        cwd=tmp_path,
        env={"RAY_AUTH_MODE": "disabled"},
    )
    assert "[langid]" in r.stdout
    a, b = outputs(tmp_path / "local"), outputs(tmp_path / "ray")
    assert any(k.startswith("langid/ja/data/") for k in a) and any(k.startswith("langid/en/data/") for k in a)
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    sa = json.loads((tmp_path / "local" / "langid" / "stats.json").read_text())
    sb = json.loads((tmp_path / "ray" / "langid" / "stats.json").read_text())
    assert (sa["documents_in"], sa["documents_out"], sa["dropped"]) == (
        sb["documents_in"],
        sb["documents_out"],
        sb["dropped"],
    )
