"""The chain on a real Slurm: Debian's slurmctld/slurmd/munge on localhost, started by
scripts/slurm/start.sh and stopped (by PID) at the end. Skips where Slurm cannot be
installed or started (a user's laptop); under CI=true it is installed and must run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.submit import outputs, shikomi, write_config

from shikomi.pipeline.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
SLURM_DIR = Path(os.environ.get("SHIKOMI_SLURM_DIR", "/tmp/shikomi-slurm"))

pytestmark = pytest.mark.slurm


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def slurm():
    """A running single-node Slurm; yields the environment to reach it."""

    def unavailable(msg: str):
        if IN_CI:
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)

    if IN_CI:
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm" / "install.sh")], check=False)
    missing = [
        exe
        for exe in ("slurmctld", "slurmd", "sbatch", "munged")
        if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists()
    ]
    if missing:
        unavailable(f"Slurm is not installed ({', '.join(missing)} missing; sudo bash scripts/slurm/install.sh)")
    if os.geteuid() != 0:
        unavailable("starting slurmd needs root")
    env = {"SLURM_CONF": str(SLURM_DIR / "slurm.conf"), "SHIKOMI_SLURM_DIR": str(SLURM_DIR)}
    was_up = _alive(SLURM_DIR / "slurmctld.pid") and _alive(SLURM_DIR / "slurmd.pid")
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm" / "start.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    if r.returncode != 0:
        unavailable(f"the local Slurm did not start: {r.stderr.strip()[-500:]}")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not was_up:  # stop only the daemons this session started
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "slurm" / "stop.sh")],
                env={**os.environ, **env},
                check=False,
                timeout=120,
            )


def slurm_config(tmp_path: Path, sample: Path, run: str, **slurm) -> Path:
    opts = {"partition": "debug", "cpus_per_task": 1, "mem_per_cpu_gb": 0.5, "time": "00:20:00", "poll_s": 1}
    opts.update(slurm)
    return write_config(tmp_path / f"{run}.yaml", sample, tmp_path / run, kind="slurm", slurm=opts)


def datatrove_stages() -> list[str]:
    """The demo chain's datatrove stages that this checkout has, from extract up to
    the first one it lacks."""
    from shikomi.pipeline.registry import CHAIN_ENTRIES

    out = []
    for e in CHAIN_ENTRIES:
        name = e.command
        if not e.is_stage:
            break
        if importlib.util.find_spec(e.target.split(":")[0]) is None:
            break
        out.append(name)
    return out


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "submit" / "jobs.json").read_text())


def test_demo_chain_on_slurm_matches_local(slurm, tmp_path, sample):
    stages = ",".join(datatrove_stages())
    shikomi(
        "run",
        "--config",
        str(write_config(tmp_path / "local.yaml", sample, tmp_path / "local")),
        "--stages",
        stages,
        cwd=tmp_path,
    )
    r = shikomi(
        "submit", "--config", str(slurm_config(tmp_path, sample, "slurm")), "--stages", stages, "--wait", cwd=tmp_path
    )
    assert "complete" in r.stdout.splitlines()[-1], r.stdout
    a, b = outputs(tmp_path / "local"), outputs(tmp_path / "slurm")
    assert any(k.startswith("langid/ja/data/") for k in a)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    for st in stages.split(","):
        folder = REGISTRY[st].folder
        la = json.loads((tmp_path / "local" / folder / "stats.json").read_text())
        lb = json.loads((tmp_path / "slurm" / folder / "stats.json").read_text())
        assert (la["documents_in"], la["documents_out"], la["dropped"]) == (
            lb["documents_in"],
            lb["documents_out"],
            lb["dropped"],
        ), st
    # every job ran as its own Slurm job, chained in order
    rec = record(tmp_path / "slurm")
    ids = [int(j["job_id"]) for j in rec["jobs"]]
    assert ids == sorted(ids) and len(ids) >= 2 * len(stages.split(","))
    st = json.loads(shikomi("status", str(tmp_path / "slurm"), "--json", cwd=tmp_path).stdout)
    assert st["complete"] and all(j["done"] == j["tasks"] for s in st["stages"] for j in s["jobs"])


def test_cancelled_array_task_is_resubmitted_alone(slurm, tmp_path, sample):
    cfg = slurm_config(tmp_path, sample, "run")
    shikomi("submit", "--config", str(cfg), "--stages", "extract,langid", cwd=tmp_path)
    run = tmp_path / "run"
    first = record(run)
    extract_id = first["jobs"][0]["job_id"]
    subprocess.run(["scancel", f"{extract_id}_1"], check=True)
    from shikomi.executor.slurm import wait_for

    wait_for([j["job_id"] for j in first["jobs"] if j["job_id"]], 1, quiet=True)
    st = json.loads(shikomi("status", str(run), "--json", cwd=tmp_path).stdout)
    jobs = {(s["stage"], j["job"]): j for s in st["stages"] for j in s["jobs"]}
    ex = jobs[("extract", "extract")]
    assert not st["complete"] and ex["done"] == 1
    assert [f["rank"] for f in ex["failed"]] == [1]
    assert ex["failed"][0]["slurm_log"].endswith(f"slurm_logs/{extract_id}_1.out")
    assert jobs[("langid", "langid")]["done"] == 0  # its dependency failed: never ran
    # rerun: only extract's task 1 is sent again, then everything after it
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract,langid", "--wait", cwd=tmp_path)
    second = record(run)
    assert second["jobs"][0]["stage"] == "extract" and second["jobs"][0]["ranks"] == [1]
    assert second["jobs"][0]["job_id"] != extract_id
    assert "complete" in r.stdout.splitlines()[-1]
    shikomi(
        "run",
        "--config",
        str(write_config(tmp_path / "local.yaml", sample, tmp_path / "local")),
        "--stages",
        "extract,langid",
        cwd=tmp_path,
    )
    a, b = outputs(tmp_path / "local"), outputs(run)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    # a third submit finds nothing to do
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract,langid", cwd=tmp_path)
    assert r.stdout.count("done, skipped") == 4


def test_bad_cluster_config_fails_at_submit(slurm, tmp_path, sample):
    cfg = slurm_config(tmp_path, sample, "bad", partition="gpu-huge")
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown partition 'gpu-huge'; this cluster has: debug" in r.stderr
    cfg = slurm_config(tmp_path, sample, "bad", env_command="source /nonexistent/venv/bin/activate")
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "does not give a Python with shikomi" in r.stderr
    assert "/nonexistent/venv/bin/activate" in r.stderr
    cfg = slurm_config(tmp_path, sample, "bad", cpus_per_task=512)
    r = shikomi("submit", "--config", str(cfg), "--stages", "extract", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "Slurm refuses the job options" in r.stderr
    assert not (tmp_path / "bad" / "submit" / "jobs.json").exists()  # nothing was submitted


def _train_config(tmp_path: Path, sample: Path) -> Path:
    from shikomi.train.synthetic import synthetic_token_folder

    cfg = slurm_config(
        tmp_path,
        sample,
        "trun",
        train={"nodes": 1, "gpus_per_node": 0, "cpus_per_task": 1, "time": "00:20:00", "args": ["--max-steps", "3"]},
    )
    data = yaml.safe_load(cfg.read_text())
    data["train"] = {
        "model": {"preset": "tiny"},
        "seq_len": 32,
        "global_batch_size": 2,
        "micro_batch_size": 1,
        "max_steps": 3,
        "eval_interval": 0,
        "checkpoint_interval": 0,
        "progress": False,
        "device": "cpu",
        "eval_sequences": 2,
    }
    cfg.write_text(yaml.safe_dump(data))
    synthetic_token_folder(tmp_path / "trun" / "tokenize", vocab_size=256, docs_per_source=20)
    return cfg


def test_trainer_sbatch_passes_test_only_and_trains_on_slurm(slurm, tmp_path, sample):
    cfg = _train_config(tmp_path, sample)
    shikomi("submit", "--config", str(cfg), "--stages", "train", "--dry-run", cwd=tmp_path)
    script = tmp_path / "trun" / "submit" / "dry-run" / "01-train.sbatch"
    r = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "to start at" in r.stderr
    # one node, CPU, through Slurm: srun torchrun with the c10d rendezvous
    r = shikomi("submit", "--config", str(cfg), "--stages", "train", "--wait", cwd=tmp_path)
    logs = list((tmp_path / "trun" / "train" / "slurm").glob("*.out"))
    log = logs[0].read_text() if logs else ""
    metrics = tmp_path / "trun" / "train" / "metrics.jsonl"
    assert metrics.is_file(), log[-3000:]
    steps = [json.loads(ln)["step"] for ln in metrics.read_text().splitlines() if ln.strip()]
    assert steps == [0, 1, 2], log[-3000:]  # three optimizer steps
    assert "rendezvous" in log
    assert "last logged step 2" in shikomi("status", str(tmp_path / "trun"), cwd=tmp_path).stdout


def _log_of(run: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((run / "train" / "slurm").glob("*.out")))


def _train_steps(run: Path) -> dict[int, dict]:
    p = run / "train" / "metrics.jsonl"
    rows = [json.loads(ln) for ln in p.read_text().splitlines() if ln.endswith("}")] if p.is_file() else []
    return {r["step"]: r for r in rows}


def _job(job: str) -> str:
    """What Slurm says of a job, for a failure message."""
    r = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True)
    return f"\n--- scontrol show job {job}\n{r.stdout}{r.stderr}"


def _until(cond, timeout: float, what: str, log=lambda: ""):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}\n{log()[-3000:]}")


def test_train_job_checkpoints_at_the_time_limit_requeues_resumes_and_survives_scancel(slurm, tmp_path, sample):
    """A 3-minute train job with `--signal=B:USR1@60`: at the signal the trainer saves
    the step it is at and the job requeues itself; the restart resumes from there;
    `scancel` of the running job leaves a complete checkpoint and shows as a
    preemption; a new submit finishes the run, whose loss trace equals an
    uninterrupted local run's bit for bit."""
    from shikomi.train import checkpoint as ckpt
    from shikomi.train.synthetic import synthetic_token_folder

    steps = 300
    cfg = slurm_config(
        tmp_path,
        sample,
        "pre",
        train={"nodes": 1, "gpus_per_node": 0, "cpus_per_task": 1, "time": "00:03:00", "signal_before_s": 60},
    )
    data = yaml.safe_load(cfg.read_text())
    data["train"] = {
        "model": {"preset": "tiny"},
        "seq_len": 32,
        "global_batch_size": 2,
        "micro_batch_size": 1,
        "max_steps": steps,
        "eval_interval": 0,
        "checkpoint_interval": 0,  # every checkpoint before the end is a signal's
        "progress": False,
        "device": "cpu",
        "eval_sequences": 2,
        "inject_step_sleep_s": 0.4,  # the tiny model is too fast to be caught by a time limit otherwise
    }
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "pre"
    synthetic_token_folder(run / "tokenize", vocab_size=256, docs_per_source=20)
    script = shikomi("submit", "--config", str(cfg), "--stages", "train", "--dry-run", cwd=tmp_path)
    text = (run / "submit" / "dry-run" / "01-train.sbatch").read_text()
    assert "#SBATCH --signal=B:USR1@60" in text and "#SBATCH --requeue" in text
    assert "--cpus-per-task=1 --mem=0" in text and "--shutdown_timeout=60" in text, script.stdout
    shikomi("submit", "--config", str(cfg), "--stages", "train", cwd=tmp_path)
    job = record(run)["jobs"][-1]["job_id"]
    root = run / "train/checkpoints"

    def release_hold():
        # a requeued job waits CredExpire (30 s in scripts/slurm/start.sh) before it may start
        # again; shorten that wait, but not to zero: slurmd refuses a job credential created in
        # the same second as the one it revoked at the requeue ("Job credential revoked") and
        # the job then fails instead of resuming
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+5"], capture_output=True)

    def saved_steps() -> list[int]:
        return [int(ln.split("saved step ")[1].split()[0]) for ln in _log_of(run).splitlines() if ": saved step " in ln]

    # 1. the time-limit signal: a checkpoint at the step reached, then a requeue and a resume from it
    _until(lambda: f"job {job} requeued" in _log_of(run), 300, "the time-limit requeue", lambda: _log_of(run))
    first = saved_steps()[0]
    assert 0 < first < steps and (ckpt.step_dir(root, first) / ckpt.COMPLETE).is_file()
    # 2. scancel of the job while it trains again: the workers save before KillWait; a preemption, not a failure
    while True:
        n = _log_of(run).count("time limit near")
        release_hold()
        resumed = ckpt.step_dir(root, saved_steps()[-1])
        _until(
            lambda r=resumed: f"resumed from {r}" in _log_of(run), 300, "the resume", lambda: _log_of(run) + _job(job)
        )
        start = int(resumed.name.split("_")[1])
        _until(
            lambda s=start, n=n: max(_train_steps(run), default=0) >= s + 2
            or _log_of(run).count("time limit near") > n,
            300,
            "steps after the resume",
            lambda: _log_of(run),
        )
        if _log_of(run).count("time limit near") == n:  # still training in this allocation
            break
        _until(lambda n=n: _log_of(run).count(f"job {job} requeued") > n, 120, "the next requeue", lambda: _log_of(run))
    subprocess.run(["scancel", job], check=True)
    from shikomi.executor.slurm import wait_for

    wait_for([job], 1, quiet=True)
    stopped = json.loads((run / "train/stopped.json").read_text())
    assert stopped["step"] > start and stopped["signal"] == "SIGTERM", _log_of(run)[-3000:]
    assert ckpt.latest(root) == ckpt.step_dir(root, stopped["step"])
    assert "train: SIGTERM: waiting for the checkpoint" in _log_of(run)
    st = shikomi("status", str(run), cwd=tmp_path).stdout
    assert f"preempted at step {stopped['step']}" in st and "incomplete" in st, st
    # 3. a new submission (with time to finish) resumes from the scancel checkpoint and finishes
    shikomi(
        "submit",
        "--config",
        str(cfg),
        "--stages",
        "train",
        "--wait",
        "--set",
        "executor.slurm.train.time=00:15:00",
        cwd=tmp_path,
    )
    # the uninterrupted reference: the same config, one local process, without the sleeps
    ref = shikomi(
        "train",
        "--config",
        str(cfg),
        "--output",
        str(tmp_path / "ref"),
        "--input",
        str(run / "tokenize"),
        "--nproc",
        "1",
        "--set",
        "train.inject_step_sleep_s=0",
        "--set",
        "executor.kind=local",
        cwd=tmp_path,
    )
    assert "steps 0..299" in ref.stdout
    got, want = _train_steps(run), _train_steps(tmp_path / "ref")
    assert sorted(got) == list(range(steps)), _log_of(run)[-3000:]
    for s in range(steps):
        for key in ("loss", "grad_norm", "lr", "batch_crc"):
            assert got[s][key] == want[s][key], (s, key)
    assert "last logged step 299" in shikomi("status", str(run), cwd=tmp_path).stdout
