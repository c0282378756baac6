"""Stages on Slurm with datatrove's SlurmPipelineExecutor.

Every job of a stage (and its stats job) becomes one datatrove
SlurmPipelineExecutor: a job array of the job's tasks, chained to the previous job
with `afterok` (datatrove's `depends=` / `depends_job_id`). Logs and completion
markers live under `<stage>/logs/<job>/`, so a resubmission sends only the tasks
without a completion marker (datatrove's `skip_completed`).

A stage whose input does not exist yet at submission is built again inside each
array task, from the same config and its registered builder (`Stage.builder`),
once the input exists (`StageSlurmExecutor.rebuild`). Single jobs (the trainer, the
report, a stage that can only be planned inside its job) are sbatch scripts from
`shikomi.executor.sbatch`. The chain itself is planned in `shikomi.pipeline.submit`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml
from datatrove.executor import SlurmPipelineExecutor

from shikomi.core.datatrove_adapter import explicit_sbatch_args, sbatch_launcher
from shikomi.core.documents import set_input_encoding
from shikomi.core.files import write_json_atomic
from shikomi.core.jobs import Job, Stage
from shikomi.core.schemas import StageStats
from shikomi.errors import UserError
from shikomi.executor.logs import quiet_console
from shikomi.executor.status import (
    NEVER_REASONS,
    active_jobs,
    collect_status,
    load_record,
    queue_states,
    slurm_command,
    submitted_job_ids,
)

# --------------------------------------------------------------------------- helpers


def _say(msg: str) -> None:
    print(msg, flush=True)


def submit_dir(cfg) -> Path:
    return Path(cfg.run_dir) / "submit"


def env_command(cfg) -> str:
    """The shell line that sets up Python on the compute nodes."""
    s = cfg.executor.slurm
    if s.env_command:
        return s.env_command
    if sys.prefix != sys.base_prefix:  # running from a venv: the same one (shared filesystem)
        return f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}"
    return ""


def job_options(cfg, stage_name: str, job: Job) -> dict:
    """Slurm resources of one job: defaults < `stages: {stage: ...}`
    < `stages: {stage/job: ...}`."""
    s = cfg.executor.slurm
    opts = {
        "partition": s.partition,
        "cpus_per_task": s.cpus_per_task,
        "mem_per_cpu_gb": s.mem_per_cpu_gb,
        "time": s.time,
        "qos": s.qos,
        "workers": s.workers,
        "sbatch_args": dict(s.sbatch_args),
    }
    for key in (stage_name, f"{stage_name}/{job.name}"):
        o = s.stages.get(key)
        if o is None:
            continue
        for k, v in o.model_dump(exclude_none=True).items():
            if k == "sbatch_args":
                opts["sbatch_args"].update(v)
            else:
                opts[k] = v
    return opts


# --------------------------------------------------------------------------- preflight


def preflight(cfg, option_sets: list[dict]) -> None:
    """Fail now, with one line, on what would otherwise fail in a job log hours later:
    no Slurm, an unknown partition, resources the partition refuses, a broken env_command."""
    if not cfg.executor.slurm.check:
        return
    r = slurm_command(["sinfo", "-h", "-o", "%P"])
    if r.returncode != 0:
        raise UserError(
            f"sinfo failed: {(r.stderr or r.stdout).strip().splitlines()[-1] if (r.stderr or r.stdout).strip() else r.returncode}"
        )
    partitions = {p.strip().rstrip("*") for p in r.stdout.split() if p.strip()}
    for o in option_sets:
        p = o.get("partition")
        if p and p not in partitions:
            raise UserError(
                f"executor.slurm: unknown partition '{p}'; this cluster has: {', '.join(sorted(partitions))}"
            )
    # resources: sbatch --test-only validates partition, time, CPUs and memory without submitting
    seen = set()
    for o in option_sets:
        key = json.dumps(o, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        args = ["sbatch", "--test-only", "--ntasks=1"]
        if o.get("partition"):
            args.append(f"--partition={o['partition']}")
        if o.get("cpus_per_task"):
            args.append(f"--cpus-per-task={o['cpus_per_task']}")
        if o.get("mem_per_cpu_gb"):
            args.append(f"--mem-per-cpu={int(float(o['mem_per_cpu_gb']) * 1024)}M")
        if o.get("time"):
            args.append(f"--time={o['time']}")
        if o.get("qos"):
            args.append(f"--qos={o['qos']}")
        for k, v in (o.get("sbatch_args") or {}).items():
            if k not in ("chdir", "output", "error", "job-name", "array", "dependency"):
                args.append(f"--{k}={v}" if v not in (None, "") else f"--{k}")
        args += ["--wrap", "true"]
        r = slurm_command(args)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise UserError(f"Slurm refuses the job options {_fmt_opts(o)}: {msg[-1] if msg else r.returncode}")
    # the environment the jobs will run in
    env = env_command(cfg)
    probe = f"set -e\n{env}\npython -c 'import shikomi, datatrove'"
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=os.getcwd())
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        raise UserError(
            f"executor.slurm.env_command {env!r} does not give a Python with shikomi: "
            f"{tail[-1] if tail else 'exit ' + str(r.returncode)}"
        )


def _fmt_opts(o: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in o.items() if v not in (None, {}, -1))


# --------------------------------------------------------------------------- executor


def _rebuild_pipeline(spec: dict) -> list:
    """Inside an array task: build the stage again, now that its input exists."""
    import importlib

    from shikomi.config import Config

    cfg = Config.model_validate(spec["config"])
    module, fn = spec["builder"].split(":")
    build = getattr(importlib.import_module(module), fn)
    stage = build(cfg, spec["input"])
    for job in stage.with_summary():
        if job.name == spec["job"]:
            set_input_encoding([job.pipeline], spec.get("input_encoding"))
            return job.pipeline
    raise RuntimeError(f"stage {spec['stage']} has no job '{spec['job']}' any more")


class StageSlurmExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor, plus: pipelines built on the node (`rebuild`), no
    None-valued #SBATCH lines, and no separate merge-stats job (each stage has its own
    stats job that writes stats.json)."""

    def __init__(self, *args, rebuild: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rebuild = rebuild

    def run(self):
        if "SLURM_ARRAY_TASK_ID" in os.environ and self.rebuild:
            self.pipeline = _rebuild_pipeline(self.rebuild)
        return super().run()

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        args = {k: v for k, v in super().get_sbatch_args(max_array).items() if v is not None}
        if "mem-per-cpu" in args and "mem-per-cpu" not in explicit_sbatch_args(self):
            args["mem-per-cpu"] = f"{int(round(float(self.mem_per_cpu_gb) * 1024))}M"  # sbatch takes whole units
        return args

    def launch_merge_stats(self):
        return None


class Submitter:
    """Sends jobs with sbatch (or, dry run, only writes their scripts) and records them."""

    def __init__(self, cfg, dry_run: bool = False):
        self.cfg = cfg
        self.dry_run = dry_run
        self.records: list[dict] = []
        self.scripts_dir = submit_dir(cfg) / ("dry-run" if dry_run else "scripts")
        self._n = 0

    def sbatch(self, contents: str, *args: str, label: str) -> str:
        self._n += 1
        self.scripts_dir.mkdir(parents=True, exist_ok=True)
        path = self.scripts_dir / f"{self._n:02d}-{label.replace('/', '.')}.sbatch"
        deps = [a for a in args if a.startswith("--dependency=")]
        head = contents
        if deps or any(a.startswith("--export") for a in args):
            extra = "".join(f"# sbatch {a}\n" for a in args)
            head = contents.replace("\n", "\n" + extra, 1)
        path.write_text(head)
        if self.dry_run:
            job_id = f"DRYRUN{self._n}"
            _say(f"----- {path} -----")
            _say(head.rstrip())
        else:
            r = slurm_command(["sbatch", "--parsable", *args, str(path)])
            if r.returncode != 0:
                msg = (r.stderr or r.stdout).strip().splitlines()
                raise UserError(f"sbatch refused {label}: {msg[-1] if msg else r.returncode} (script {path})")
            job_id = r.stdout.strip().split(";")[0]
        self.records.append({"label": label, "job_id": job_id, "script": str(path), "args": list(args)})
        return job_id

    @contextlib.contextmanager
    def hooked(self, label: str):
        """Route datatrove's sbatch calls through `self.sbatch`."""

        def launch(contents, _retriever, *args):
            return self.sbatch(contents, *args, label=label)

        with sbatch_launcher(launch):
            yield


# --------------------------------------------------------------------------- planning


def _stage_executors(cfg, name: str, stage: Stage, rebuild: bool, input_path: str | None, cfg_dump: dict):
    out = []
    prefix = cfg.executor.slurm.job_name_prefix or cfg.name
    for job in stage.with_summary():
        o = job_options(cfg, name, job)
        sbatch_args = {"chdir": os.getcwd(), **o["sbatch_args"]}
        spec = (
            {
                "config": stage.config.model_dump(mode="json") if stage.config is not None else cfg_dump,
                "stage": name,
                "builder": stage.builder,
                "input": input_path,
                "job": job.name,
                "input_encoding": stage.input_encoding,
            }
            if rebuild
            else None
        )
        ex = StageSlurmExecutor(
            pipeline=[] if rebuild else job.pipeline,
            tasks=job.tasks,
            time=o["time"],
            partition=o["partition"],
            cpus_per_task=o["cpus_per_task"],
            mem_per_cpu_gb=o["mem_per_cpu_gb"],
            workers=o["workers"] if o["workers"] is not None else -1,
            job_name=f"{prefix}-{stage.name}-{job.name}",
            qos=o["qos"] or "",
            env_command=env_command(cfg) or None,
            sbatch_args=sbatch_args,
            max_array_size=cfg.executor.slurm.max_array_size,
            max_array_launch_parallel=cfg.executor.slurm.max_array_launch_parallel,
            logging_dir=str(Path(stage.logs_dir(job)).resolve()),
            skip_completed=True,
            requeue=cfg.executor.slurm.requeue,
            mail_type="NONE",
            rebuild=spec,
        )
        out.append((job, o, ex))
    return out


def wait_for(job_ids: list[str], poll_s: float, quiet: bool = False) -> list[str]:
    """Wait until none of the jobs is in the queue. Jobs that can never start (their
    dependency failed) are cancelled. Returns the ids cancelled that way."""
    cancelled = []
    last = None
    while True:
        active = active_jobs(queue_states(job_ids))
        stuck = [j for j, ts in active.items() if all(t[1] == "PENDING" and t[2] in NEVER_REASONS for t in ts)]
        for j in stuck:
            slurm_command(["scancel", j])
            cancelled.append(j)
        if not active:
            return cancelled
        line = ", ".join(f"{j}:{'/'.join(sorted({t[1].lower() for t in ts}))}" for j, ts in sorted(active.items()))
        if line != last and not quiet:
            _say(f"  waiting: {line}")
            last = line
        time.sleep(poll_s)


# --------------------------------------------------------------------------- submit


def _previous_still_active(cfg) -> None:
    """A new submission must not run tasks that a previous one is still running."""
    prev = load_record(cfg)
    ids = [j["job_id"] for j in prev.get("jobs", []) if j.get("job_id")]
    states = active_jobs(queue_states(ids))
    if not states:
        return
    never = [j for j, ts in states.items() if all(t[1] == "PENDING" and t[2] in NEVER_REASONS for t in ts)]
    for j in never:  # pending forever behind a failed or cancelled dependency
        slurm_command(["scancel", j])
    rest = sorted(set(states) - set(never))
    if rest:
        raise UserError(
            f"jobs {', '.join(rest)} of the previous submission of {cfg.run_dir} are still queued or running; "
            f"wait for them (shikomi status {cfg.run_dir}) or scancel them, then submit again"
        )


def _write_config(cfg) -> tuple[str, dict]:
    d = submit_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    dump = cfg.model_dump(mode="json")
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(dump, sort_keys=False, allow_unicode=True))
    return str(path.resolve()), dump


def submit(cfg, planned: list[tuple], input_path: str | None = None, dry_run: bool = False) -> dict:
    """Submit planned stages in order, each job after the previous one, and record
    them in `<run_dir>/submit/jobs.json`. `planned` holds (command, Stage or None,
    rebuild on the node, why it is deferred, kind) per stage; a stage without a Stage
    runs as one job: the trainer, a command, or a stage planned inside its job."""
    from shikomi.executor import sbatch as sb

    quiet_console()
    cfg_path, cfg_dump = _write_config(cfg)
    sub = Submitter(cfg, dry_run)
    # resources of everything we submit, checked before anything is sent
    option_sets = []
    for name, st, _, _, kind in planned:
        if st is not None:
            option_sets += [job_options(cfg, name, j) for j in st.with_summary()]
        elif kind == "stage":
            option_sets.append(job_options(cfg, name, Job(name, [])))
    if not dry_run:
        preflight(cfg, option_sets)
        _previous_still_active(cfg)

    workdir = os.getcwd()
    env = env_command(cfg)
    last_id: str | None = None
    jobs = []
    for name, st, rebuild, why, kind in planned:
        if st is not None:
            for job, _opts, ex in _stage_executors(
                cfg, name, st, rebuild, input_path if not rebuild else None, cfg_dump
            ):
                if last_id:
                    ex.depends_job_id = last_id
                label = f"{name}/{job.name}"
                with sub.hooked(label):
                    ex.launch_job()
                jid = None if ex.job_id in (None, -1) else str(ex.job_id)
                ranks = [] if jid is None else _read_ranks(ex)
                jobs.append(
                    {
                        "stage": name,
                        "job": job.name,
                        "job_id": jid,
                        "tasks": job.tasks,
                        "ranks": ranks,
                        "logs": st.logs_dir(job),
                        "rebuild": bool(rebuild),
                        "max_array_size": ex.max_array_size,
                    }
                )
                _say(
                    f"  {label:<28} {'done, skipped' if jid is None else 'job ' + jid}"
                    f"  ({len(ranks) if jid else job.tasks}/{job.tasks} tasks)"
                )
                if jid:
                    last_id = jid
            continue
        # single jobs: a stage that can only be planned on the node, the trainer, the report
        dep = f"--dependency=afterok:{last_id}" if last_id else None
        if name == "train":
            script = sb.train_script(cfg, cfg_path, env, workdir)
            (Path(cfg.run_dir) / "train" / "slurm").mkdir(parents=True, exist_ok=True)  # sbatch opens the log first
        else:
            o = job_options(cfg, name, Job(name, []))
            if kind == "stage":
                cmd = (
                    f"python -m shikomi.cli {shlex.quote(name)} --config {shlex.quote(cfg_path)} "
                    f"--executor local --workers {o['cpus_per_task']}"
                )
                _say(f"  {name}: planned inside its job ({why})")
            else:
                cmd = f"python -m shikomi.cli report {shlex.quote(str(Path(cfg.run_dir).resolve()))} --config {shlex.quote(cfg_path)}"
            log = str((Path(cfg.run_dir) / name / "logs" / "slurm" / "%j.out").resolve())
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            opts = {
                "partition": o["partition"],
                "cpus-per-task": o["cpus_per_task"],
                "mem-per-cpu": f"{int(float(o['mem_per_cpu_gb']) * 1024)}M",
                "time": o["time"],
                "qos": o["qos"],
                **o["sbatch_args"],
            }
            prefix = cfg.executor.slurm.job_name_prefix or cfg.name
            script = sb.command_script(f"{prefix}-{name}", cmd, env, workdir, log, opts)
        jid = sub.sbatch(script, *([dep] if dep else []), label=name)
        jobs.append(
            {"stage": name, "job": name, "job_id": jid, "tasks": 1, "ranks": [0], "logs": None, "rebuild": False}
        )
        _say(f"  {name:<28} job {jid}")
        last_id = jid

    record = {
        "run_dir": str(cfg.run_dir),
        "config": cfg_path,
        "submitted_at_unix": int(time.time()),
        "dry_run": dry_run,
        "jobs": jobs,
        "scripts": [r["script"] for r in sub.records],
    }
    if not dry_run:
        write_json_atomic(submit_dir(cfg) / "jobs.json", record)
    return record


def _read_ranks(ex) -> list[int]:
    try:
        with ex.logging_dir.open("ranks_to_run.json", "r") as f:
            return json.load(f)
    except Exception:
        return []


def submit_stage_and_wait(stage: Stage, cfg) -> dict:
    """`shikomi <stage> --executor slurm`: this stage's jobs as arrays, then wait."""
    t0 = time.time()
    _say(f"[{stage.name}] submitting to Slurm")
    stage.path.mkdir(parents=True, exist_ok=True)
    name = stage.command or stage.name
    record = submit(cfg, [(name, stage, False, None, "stage")])
    wait_for(submitted_job_ids(record), cfg.executor.slurm.poll_s)
    st = collect_status(cfg.run_dir, only=[name], chain=[(name, stage.path.name)])
    failed = [t for s in st["stages"] for j in s["jobs"] for t in j["failed"]]
    incomplete = [j for s in st["stages"] for j in s["jobs"] if j["done"] < j["tasks"]]
    if incomplete:
        where = "; ".join(t["log"] for t in failed[:3]) or stage.logs_dir(incomplete[0]["job"])
        raise UserError(
            f"stage {stage.name}: {sum(j['tasks'] - j['done'] for j in incomplete)} Slurm tasks did not "
            f"complete; logs: {where} (rerun the same command to resume)"
        )
    st = StageStats.read(stage.path, missing_ok=True)
    stats = st.dump() if st is not None else {}
    stats["wall_s"] = round(time.time() - t0, 3)
    return stats
