"""Where a run stands: completion markers of every datatrove job, the queue
(`squeue`) and the last submission record (`<run_dir>/submit/jobs.json`)."""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from pathlib import Path

from shikomi.core.schemas import MetricsLog
from shikomi.errors import UserError

ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
    "STOPPED",
}
NEVER_REASONS = {"DependencyNeverSatisfied", "JobHeldAdmin"}


def slurm_command(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a Slurm client command (sinfo, sbatch, squeue, scancel); one-line errors
    when Slurm is not there or does not answer."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(
            f"'{cmd[0]}' not found: run `shikomi submit` on a Slurm login node (or set executor.kind: local or ray)"
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"'{' '.join(cmd[:3])}' did not answer in {timeout:.0f}s: is slurmctld up?") from None


# --------------------------------------------------------------------------- queue


def queue_states(job_ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """{array job id: [(array task index or "", state, reason), ...]} for jobs still in the queue."""
    ids = {str(j) for j in job_ids if j and not str(j).startswith("DRYRUN")}
    if not ids or shutil.which("squeue") is None:
        return {}
    r = slurm_command(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%F|%K|%T|%r|%i"])
    out: dict[str, list] = {}
    if r.returncode != 0:
        return out
    for line in r.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5:
            continue
        array_id, task, state, reason, jid = parts
        key = array_id if array_id in ids else (jid if jid in ids else None)
        if key is None:
            continue
        task = "" if task in ("N/A", "4294967294") else task
        out.setdefault(key, []).append((task, state, reason))
    return out


def active_jobs(states: dict) -> dict:
    return {
        j: [t for t in ts if t[1] in ACTIVE_STATES]
        for j, ts in states.items()
        if any(t[1] in ACTIVE_STATES for t in ts)
    }


def load_record(cfg_or_run_dir) -> dict:
    run_dir = Path(cfg_or_run_dir if isinstance(cfg_or_run_dir, (str, Path)) else cfg_or_run_dir.run_dir)
    p = run_dir / "submit" / "jobs.json"
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def submitted_job_ids(record: dict) -> list[str]:
    return [j["job_id"] for j in record.get("jobs", []) if j.get("job_id")]


# --------------------------------------------------------------------------- status


def _job_dirs(run_dir: Path, chain: list[tuple[str, str]]):
    """(stage command, job, logs_dir) of every datatrove job under the run folder, in chain order."""
    command_of = {folder: command for command, folder in chain}
    found = []
    for ex_json in run_dir.glob("*/logs/*/executor.json"):
        logs = ex_json.parent
        folder = logs.parent.parent.name
        found.append((command_of.get(folder, folder), logs.name, logs))
    order = {command: i for i, (command, _) in enumerate(chain)}
    found.sort(key=lambda t: (order.get(t[0], 99), t[1] == "summary", t[1]))
    return found


def collect_status(run_dir, only: list[str] | None = None, chain: list[tuple[str, str]] = ()) -> dict:
    """Per stage and job: tasks done, running, pending and failed (with their logs).
    `chain` is the (command, folder) of each stage in order (the stage registry)."""
    run_dir = Path(run_dir)
    folder_of = dict(chain)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    record = load_record(run_dir)
    rec_jobs = {(j["stage"], j["job"]): j for j in record.get("jobs", [])}
    queue = queue_states(submitted_job_ids(record))
    stages: dict[str, dict] = {}
    for stage, job, logs in _job_dirs(run_dir, list(chain)):
        if only and stage not in only:
            continue
        try:
            info = json.loads((logs / "executor.json").read_text())
            tasks = int(info.get("world_size") or info.get("tasks") or 0)
        except Exception:
            tasks = 0
        done = {int(p.name) for p in (logs / "completions").glob("*") if p.name.isdigit()}
        rec = rec_jobs.get((stage, job))
        running, pending = set(), set()
        slurm_logs = {}
        if rec and rec.get("job_id") and rec["job_id"] in queue:
            ranks = rec.get("ranks") or []
            for idx, state, _reason in queue[rec["job_id"]]:
                if idx == "" and state == "PENDING":
                    pending |= set(ranks) - done
                    continue
                try:
                    rank = ranks[int(idx)]
                except (ValueError, IndexError):
                    continue
                (running if state in ("RUNNING", "COMPLETING", "CONFIGURING") else pending).add(rank)
        if rec and rec.get("job_id"):
            for i, rank in enumerate(rec.get("ranks") or []):
                slurm_logs[rank] = str(logs / "slurm_logs" / f"{rec['job_id']}_{i}.out")
        failed = []
        for rank in range(tasks):
            if rank in done or rank in running or rank in pending:
                continue
            task_log = logs / "logs" / f"task_{rank:05d}.log"
            submitted = rec is not None and rank in (rec.get("ranks") or [])
            if task_log.exists() or submitted:
                log = str(task_log) if task_log.exists() else slurm_logs.get(rank, str(logs))
                failed.append({"rank": rank, "log": log, "slurm_log": slurm_logs.get(rank)})
        stages.setdefault(stage, {"stage": stage, "jobs": []})["jobs"].append(
            {
                "job": job,
                "tasks": tasks,
                "done": len(done & set(range(tasks))),
                "running": sorted(running),
                "pending": sorted(pending),
                "failed": failed,
                "logs": str(logs),
                "job_id": rec.get("job_id") if rec else None,
            }
        )
    # single jobs of the last submission (trainer, report, deferred stages)
    for (stage, job), rec in rec_jobs.items():
        if only and stage not in only:
            continue
        if rec.get("logs") is not None or not rec.get("job_id"):
            continue
        states = queue.get(rec["job_id"], [])
        state = states[0][1].lower() if states else "finished"
        done, failed = None, []
        stopped = run_dir / folder_of.get("train", "train") / "stopped.json"
        if state == "finished" and stage == "train" and stopped.is_file():
            # the trainer saved and exited on a signal (time limit, scancel, preemption): not a failure
            state = "preempted at step " + str(json.loads(stopped.read_text()).get("step"))
            done = 0  # incomplete: `shikomi submit --stages train` resumes it
        if state == "finished" and stage not in ("train", "report"):
            # a stage planned inside its job: done when it wrote its stats.json
            ok = (run_dir / folder_of.get(stage, stage) / "stats.json").is_file()
            done, failed = (1, []) if ok else (0, [0])
        stages.setdefault(stage, {"stage": stage, "jobs": []})["jobs"].append(
            {
                "job": job,
                "tasks": 1,
                "done": done,
                "running": [0] if state == "running" else [],
                "pending": [0] if state == "pending" else [],
                "failed": failed,
                "logs": None,
                "job_id": rec["job_id"],
                "state": state,
            }
        )
    if not only or "train" in only:
        last = MetricsLog(run_dir / folder_of.get("train", "train")).last()
        if last is not None:
            stages.setdefault("train", {"stage": "train", "jobs": []})["last_step"] = last.step
    complete = all(j["done"] is None or j["done"] >= j["tasks"] for s in stages.values() for j in s["jobs"])
    complete = complete and all(not j["running"] and not j["pending"] for s in stages.values() for j in s["jobs"])
    return {"run_dir": str(run_dir), "stages": list(stages.values()), "complete": complete and bool(stages)}


def print_status(st: dict) -> None:
    print(f"{'stage':<16} {'job':<16} {'tasks':>5} {'done':>5} {'run':>4} {'wait':>4} {'fail':>4}  slurm job")
    failed_lines = []
    for s in st["stages"]:
        for j in s["jobs"]:
            done = j["done"] if j["done"] is not None else j.get("state", "?")
            if str(j.get("state", "")).startswith("preempted"):
                done = j["state"]
            print(
                f"{s['stage']:<16} {j['job']:<16} {j['tasks']:>5} {done!s:>5} {len(j['running']):>4} "
                f"{len(j['pending']):>4} {len(j['failed']):>4}  {j.get('job_id') or '-'}"
            )
            for f in j["failed"]:
                failed_lines.append(
                    f"  {s['stage']}/{j['job']} task {f['rank']}: {f['log']}"
                    + (f" (slurm: {f['slurm_log']})" if f.get("slurm_log") and f["slurm_log"] != f["log"] else "")
                )
        if s.get("last_step") is not None:
            print(f"{s['stage']:<16} last logged step {s['last_step']}")
    if failed_lines:
        print("failed tasks (rerun `shikomi submit` to resubmit only these and what follows):")
        print("\n".join(failed_lines))
    print("complete" if st["complete"] else "incomplete")
