"""`shikomi submit` and `shikomi status`: the chain on Slurm with datatrove's
SlurmPipelineExecutor.

Every job of every stage (and each stage's stats job) becomes one datatrove
SlurmPipelineExecutor: a job array of the job's tasks, chained to the previous job
with `afterok` (datatrove's `depends=` / `depends_job_id`). Logs and completion
markers live under `<stage>/logs/<job>/`, so rerunning `shikomi submit` sends only
the tasks without a completion marker (datatrove's `skip_completed`).

A stage after the first one in a submission has no input yet when the chain is
submitted, so its pipelines are built again inside each array task, from the
same config, once the input exists (`StageSlurmExecutor.rebuild`); at submit time
it is planned against an empty placeholder input to learn its jobs and task counts.
A stage that cannot be planned even so is submitted as one job running the stage
with the local executor inside its allocation. The trainer and the report are
single sbatch jobs at the end of the chain (see shikomi/pipeline/sbatch.py).

The submission is recorded in `<run_dir>/submit/jobs.json`; `shikomi status`
combines it with the completion markers and `squeue`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from datatrove.executor import SlurmPipelineExecutor

from ..errors import UserError
from ..stage import Job, Stage, write_json_atomic

ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "STOPPED"}
NEVER_REASONS = {"DependencyNeverSatisfied", "JobHeldAdmin"}


# --------------------------------------------------------------------------- helpers

def _say(msg: str) -> None:
    print(msg, flush=True)


def _quiet() -> None:
    try:
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="WARNING", format="{message}")
    except Exception:  # pragma: no cover
        pass


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(f"'{cmd[0]}' not found: run `shikomi submit` on a Slurm login node "
                        f"(or set executor.kind: local or ray)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"'{' '.join(cmd[:3])}' did not answer in {timeout:.0f}s: is slurmctld up?") from None


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
    """Slurm resources of one job: defaults < the stage's hint (Job.slurm) < `stages: {stage: ...}`
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
    for k, v in (job.slurm or {}).items():
        if k in opts and v is not None:
            opts[k] = v
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


def _check_stage_keys(cfg, stage_names: list[str]) -> None:
    from ..cli import CHAIN

    for key in cfg.executor.slurm.stages:
        if key.split("/", 1)[0] not in CHAIN:
            raise UserError(f"executor.slurm.stages: unknown stage '{key}'; allowed: {', '.join(CHAIN)} "
                            f"(or stage/job)")


# --------------------------------------------------------------------------- preflight

def preflight(cfg, option_sets: list[dict]) -> None:
    """Fail now, with one line, on what would otherwise fail in a job log hours later:
    no Slurm, an unknown partition, resources the partition refuses, a broken env_command."""
    if not cfg.executor.slurm.check:
        return
    r = _run(["sinfo", "-h", "-o", "%P"])
    if r.returncode != 0:
        raise UserError(f"sinfo failed: {(r.stderr or r.stdout).strip().splitlines()[-1] if (r.stderr or r.stdout).strip() else r.returncode}")
    partitions = {p.strip().rstrip("*") for p in r.stdout.split() if p.strip()}
    for o in option_sets:
        p = o.get("partition")
        if p and p not in partitions:
            raise UserError(f"executor.slurm: unknown partition '{p}'; this cluster has: {', '.join(sorted(partitions))}")
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
        r = _run(args)
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
    from ..cli import STAGES, _load
    from ..config import Config

    cfg = Config.model_validate(spec["config"])
    build = _load(STAGES[spec["stage"]][1], spec["stage"])
    stage = build(cfg, spec["input"])
    for job in stage.with_summary():
        if job.name == spec["job"]:
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
        if "mem-per-cpu" in args and "mem-per-cpu" not in self._sbatch_args:
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
            r = _run(["sbatch", "--parsable", *args, str(path)])
            if r.returncode != 0:
                msg = (r.stderr or r.stdout).strip().splitlines()
                raise UserError(f"sbatch refused {label}: {msg[-1] if msg else r.returncode} (script {path})")
            job_id = r.stdout.strip().split(";")[0]
        self.records.append({"label": label, "job_id": job_id, "script": str(path), "args": list(args)})
        return job_id

    @contextlib.contextmanager
    def hooked(self, label: str):
        """Route datatrove's sbatch calls through `self.sbatch`."""
        import datatrove.executor.slurm as ds

        real = ds.launch_slurm_job

        def launch(contents, _retriever, *args):
            return self.sbatch(contents, *args, label=label)

        ds.launch_slurm_job = launch
        try:
            yield
        finally:
            ds.launch_slurm_job = real


# --------------------------------------------------------------------------- planning

def _placeholder(cfg) -> str:
    p = submit_dir(cfg) / "placeholder" / "data"
    p.mkdir(parents=True, exist_ok=True)
    return str(p.parent)


def plan_stage(cfg, name: str, input_path: str | None, first: bool):
    """(stage, rebuild_on_node, deferred_reason). The first stage of a submission is
    built now from its real input; later ones are planned against a placeholder."""
    from ..cli import STAGES, _load

    build = _load(STAGES[name][1], name)
    if first:
        return build(cfg, input_path), False, None
    try:
        return build(cfg, input_path), True, None
    except Exception as e:  # its input does not exist yet
        first_err = e
    try:
        return build(cfg, _placeholder(cfg)), True, None
    except Exception as e:
        if isinstance(e, UserError) and str(e) == str(first_err):
            raise  # the same mistake with any input: a config error, reported now
        return None, False, f"{type(first_err).__name__}: {first_err}"


def _stage_executors(cfg, name: str, stage: Stage, rebuild: bool, input_path: str | None, cfg_dump: dict):
    out = []
    prefix = cfg.executor.slurm.job_name_prefix or cfg.name
    for job in stage.with_summary():
        o = job_options(cfg, name, job)
        sbatch_args = {"chdir": os.getcwd(), **o["sbatch_args"]}
        spec = ({"config": cfg_dump, "stage": name, "input": input_path, "job": job.name} if rebuild else None)
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


# --------------------------------------------------------------------------- queue

def queue_states(job_ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """{array job id: [(array task index or "", state, reason), ...]} for jobs still in the queue."""
    ids = {str(j) for j in job_ids if j and not str(j).startswith("DRYRUN")}
    if not ids or shutil.which("squeue") is None:
        return {}
    r = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%F|%K|%T|%r|%i"])
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


def _active(states: dict) -> dict:
    return {j: [t for t in ts if t[1] in ACTIVE_STATES] for j, ts in states.items()
            if any(t[1] in ACTIVE_STATES for t in ts)}


def wait_for(job_ids: list[str], poll_s: float, quiet: bool = False) -> list[str]:
    """Wait until none of the jobs is in the queue. Jobs that can never start (their
    dependency failed) are cancelled. Returns the ids cancelled that way."""
    cancelled = []
    last = None
    while True:
        active = _active(queue_states(job_ids))
        stuck = [j for j, ts in active.items() if all(t[1] == "PENDING" and t[2] in NEVER_REASONS for t in ts)]
        for j in stuck:
            _run(["scancel", j])
            cancelled.append(j)
        if not active:
            return cancelled
        line = ", ".join(f"{j}:{'/'.join(sorted({t[1].lower() for t in ts}))}" for j, ts in sorted(active.items()))
        if line != last and not quiet:
            _say(f"  waiting: {line}")
            last = line
        time.sleep(poll_s)


def _load_record(cfg_or_run_dir) -> dict:
    run_dir = Path(cfg_or_run_dir if isinstance(cfg_or_run_dir, (str, Path)) else cfg_or_run_dir.run_dir)
    p = run_dir / "submit" / "jobs.json"
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def _previous_still_active(cfg) -> None:
    """A new submission must not run tasks that a previous one is still running."""
    prev = _load_record(cfg)
    ids = [j["job_id"] for j in prev.get("jobs", []) if j.get("job_id")]
    states = _active(queue_states(ids))
    if not states:
        return
    never = [j for j, ts in states.items() if all(t[1] == "PENDING" and t[2] in NEVER_REASONS for t in ts)]
    for j in never:  # pending forever behind a failed or cancelled dependency
        _run(["scancel", j])
    rest = sorted(set(states) - set(never))
    if rest:
        raise UserError(
            f"jobs {', '.join(rest)} of the previous submission of {cfg.run_dir} are still queued or running; "
            f"wait for them (shikomi status {cfg.run_dir}) or scancel them, then submit again"
        )


# --------------------------------------------------------------------------- submit

def _write_config(cfg) -> tuple[str, dict]:
    d = submit_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    dump = cfg.model_dump(mode="json")
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(dump, sort_keys=False, allow_unicode=True))
    return str(path.resolve()), dump


def _chain(args_stages: str | None) -> list[str]:
    from ..cli import CHAIN

    if not args_stages:
        return list(CHAIN)
    names = [s.strip() for s in args_stages.split(",") if s.strip()]
    unknown = [s for s in names if s not in CHAIN]
    if unknown:
        raise UserError(f"unknown stage(s) {unknown}; allowed: {', '.join(CHAIN)}")
    return [s for s in CHAIN if s in names]


def submit_chain(cfg, stage_names: list[str], input_path: str | None = None, dry_run: bool = False,
                 stages: dict | None = None) -> dict:
    """Submit the stages in order, each job after the previous one. `stages` may hold
    already built Stage objects (name -> Stage) to submit as they are."""
    from ..cli import STAGES
    from . import sbatch as sb

    _quiet()
    _check_stage_keys(cfg, stage_names)
    cfg_path, cfg_dump = _write_config(cfg)
    sub = Submitter(cfg, dry_run)
    planned = []
    first = True
    for name in stage_names:
        if stages and name in stages:
            planned.append((name, stages[name], False, None))
        elif name in STAGES:
            st, rebuild, why = plan_stage(cfg, name, input_path if first else None, first)
            planned.append((name, st, rebuild, why))
        else:
            planned.append((name, None, False, None))
        first = False

    # resources of everything we submit, checked before anything is sent
    option_sets = []
    for name, st, _, _ in planned:
        if st is not None:
            option_sets += [job_options(cfg, name, j) for j in st.with_summary()]
        elif name in STAGES:
            option_sets.append(job_options(cfg, name, Job(name, [])))
    if not dry_run:
        preflight(cfg, option_sets)
        _previous_still_active(cfg)

    workdir = os.getcwd()
    env = env_command(cfg)
    last_id: str | None = None
    jobs = []
    for name, st, rebuild, why in planned:
        if st is not None:
            for job, o, ex in _stage_executors(cfg, name, st, rebuild, input_path if not rebuild else None, cfg_dump):
                if last_id:
                    ex.depends_job_id = last_id
                label = f"{name}/{job.name}"
                with sub.hooked(label):
                    ex.launch_job()
                jid = None if ex.job_id in (None, -1) else str(ex.job_id)
                ranks = [] if jid is None else _read_ranks(ex)
                jobs.append({"stage": name, "job": job.name, "job_id": jid, "tasks": job.tasks, "ranks": ranks,
                             "logs": st.logs_dir(job), "rebuild": bool(rebuild), "max_array_size": ex.max_array_size})
                _say(f"  {label:<28} {'done, skipped' if jid is None else 'job ' + jid}"
                     f"  ({len(ranks) if jid else job.tasks}/{job.tasks} tasks)")
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
            if name in STAGES:
                cmd = (f"python -m shikomi.cli {shlex.quote(name)} --config {shlex.quote(cfg_path)} "
                       f"--executor local --workers {o['cpus_per_task']}")
                _say(f"  {name}: planned inside its job ({why})")
            else:
                cmd = f"python -m shikomi.cli report {shlex.quote(str(Path(cfg.run_dir).resolve()))} --config {shlex.quote(cfg_path)}"
            log = str((Path(cfg.run_dir) / name / "logs" / "slurm" / "%j.out").resolve())
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            opts = {"partition": o["partition"], "cpus-per-task": o["cpus_per_task"],
                    "mem-per-cpu": f"{int(float(o['mem_per_cpu_gb']) * 1024)}M", "time": o["time"], "qos": o["qos"],
                    **o["sbatch_args"]}
            prefix = cfg.executor.slurm.job_name_prefix or cfg.name
            script = sb.command_script(f"{prefix}-{name}", cmd, env, workdir, log, opts)
        jid = sub.sbatch(script, *([dep] if dep else []), label=name)
        jobs.append({"stage": name, "job": name, "job_id": jid, "tasks": 1, "ranks": [0], "logs": None,
                     "rebuild": False})
        _say(f"  {name:<28} job {jid}")
        last_id = jid

    record = {"run_dir": str(cfg.run_dir), "config": cfg_path, "submitted_at_unix": int(time.time()),
              "dry_run": dry_run, "jobs": jobs, "scripts": [r["script"] for r in sub.records]}
    if not dry_run:
        write_json_atomic(submit_dir(cfg) / "jobs.json", record)
    return record


def _read_ranks(ex) -> list[int]:
    try:
        with ex.logging_dir.open("ranks_to_run.json", "r") as f:
            return json.load(f)
    except Exception:
        return []


def _job_ids(record: dict) -> list[str]:
    return [j["job_id"] for j in record.get("jobs", []) if j.get("job_id")]


def main(args, cfg) -> int:
    """`shikomi submit --config FILE [--stages a,b] [--dry-run] [--wait]`."""
    if cfg.executor.kind == "local":
        cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"kind": "slurm"})})
    names = _chain(getattr(args, "stages", None))
    if cfg.executor.kind == "ray":
        from .ray_exec import run_chain_ray

        run_chain_ray(cfg, names, getattr(args, "input", None))
        return 0
    _say(f"submitting {', '.join(names)} of {cfg.run_dir} to Slurm" + (" (dry run)" if args.dry_run else ""))
    record = submit_chain(cfg, names, getattr(args, "input", None), dry_run=args.dry_run)
    if args.dry_run:
        _say(f"dry run: scripts in {submit_dir(cfg) / 'dry-run'}; nothing was submitted")
        return 0
    _say(f"submitted {len(_job_ids(record))} jobs; `shikomi status {cfg.run_dir}` shows progress")
    if getattr(args, "wait", False):
        wait_for(_job_ids(record), cfg.executor.slurm.poll_s)
        st = collect_status(cfg.run_dir)
        print_status(st)
        return 0 if st["complete"] else 1
    return 0


def submit_stage_and_wait(stage: Stage, cfg) -> dict:
    """`shikomi <stage> --executor slurm`: this stage's jobs as arrays, then wait."""
    t0 = time.time()
    _say(f"[{stage.name}] submitting to Slurm")
    stage.path.mkdir(parents=True, exist_ok=True)
    from ..cli import stage_command

    name = stage_command(stage.name)
    record = submit_chain(cfg, [name], None, stages={name: stage})
    wait_for(_job_ids(record), cfg.executor.slurm.poll_s)
    st = collect_status(cfg.run_dir, only=[name])
    failed = [t for s in st["stages"] for j in s["jobs"] for t in j["failed"]]
    incomplete = [j for s in st["stages"] for j in s["jobs"] if j["done"] < j["tasks"]]
    if incomplete:
        where = "; ".join(t["log"] for t in failed[:3]) or stage.logs_dir(incomplete[0]["job"])
        raise UserError(f"stage {stage.name}: {sum(j['tasks'] - j['done'] for j in incomplete)} Slurm tasks did not "
                        f"complete; logs: {where} (rerun the same command to resume)")
    stats_path = stage.path / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    stats["wall_s"] = round(time.time() - t0, 3)
    return stats


# --------------------------------------------------------------------------- status

def _job_dirs(run_dir: Path):
    """(stage, job, logs_dir) of every datatrove job under the run folder, in chain order."""
    from ..cli import CHAIN

    found = []
    for ex_json in run_dir.glob("*/logs/*/executor.json"):
        logs = ex_json.parent
        found.append((logs.parent.parent.name, logs.name, logs))
    order = {n: i for i, n in enumerate(CHAIN)}
    found.sort(key=lambda t: (order.get(t[0], 99), t[1] == "summary", t[1]))
    return found


def collect_status(run_dir, only: list[str] | None = None) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    record = _load_record(run_dir)
    rec_jobs = {(j["stage"], j["job"]): j for j in record.get("jobs", [])}
    queue = queue_states(_job_ids(record))
    stages: dict[str, dict] = {}
    for stage, job, logs in _job_dirs(run_dir):
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
        stages.setdefault(stage, {"stage": stage, "jobs": []})["jobs"].append({
            "job": job, "tasks": tasks, "done": len(done & set(range(tasks))), "running": sorted(running),
            "pending": sorted(pending), "failed": failed, "logs": str(logs),
            "job_id": rec.get("job_id") if rec else None,
        })
    # single jobs of the last submission (trainer, report, deferred stages)
    for (stage, job), rec in rec_jobs.items():
        if only and stage not in only:
            continue
        if rec.get("logs") is not None or not rec.get("job_id"):
            continue
        states = queue.get(rec["job_id"], [])
        state = states[0][1].lower() if states else "finished"
        done, failed = None, []
        if state == "finished" and stage not in ("train", "report"):
            # a stage planned inside its job: done when it wrote its stats.json
            from ..cli import stage_folder

            ok = (run_dir / stage_folder(stage) / "stats.json").is_file()
            done, failed = (1, []) if ok else (0, [0])
        stages.setdefault(stage, {"stage": stage, "jobs": []})["jobs"].append({
            "job": job, "tasks": 1, "done": done, "running": [0] if state == "running" else [],
            "pending": [0] if state == "pending" else [], "failed": failed, "logs": None,
            "job_id": rec["job_id"], "state": state,
        })
    train = run_dir / "train" / "metrics.jsonl"
    if train.is_file() and (not only or "train" in only):
        lines = [ln for ln in train.read_text().splitlines() if ln.strip()]
        if lines:
            last = json.loads(lines[-1])
            stages.setdefault("train", {"stage": "train", "jobs": []})["last_step"] = last.get("step")
    complete = all(j["done"] is None or j["done"] >= j["tasks"] for s in stages.values() for j in s["jobs"])
    complete = complete and all(not j["running"] and not j["pending"] for s in stages.values() for j in s["jobs"])
    return {"run_dir": str(run_dir), "stages": list(stages.values()), "complete": complete and bool(stages)}


def print_status(st: dict) -> None:
    print(f"{'stage':<16} {'job':<16} {'tasks':>5} {'done':>5} {'run':>4} {'wait':>4} {'fail':>4}  slurm job")
    failed_lines = []
    for s in st["stages"]:
        for j in s["jobs"]:
            done = j["done"] if j["done"] is not None else j.get("state", "?")
            print(f"{s['stage']:<16} {j['job']:<16} {j['tasks']:>5} {done!s:>5} {len(j['running']):>4} "
                  f"{len(j['pending']):>4} {len(j['failed']):>4}  {j.get('job_id') or '-'}")
            for f in j["failed"]:
                failed_lines.append(f"  {s['stage']}/{j['job']} task {f['rank']}: {f['log']}"
                                    + (f" (slurm: {f['slurm_log']})" if f.get("slurm_log") and f["slurm_log"] != f["log"] else ""))
        if s.get("last_step") is not None:
            print(f"{s['stage']:<16} last logged step {s['last_step']}")
    if failed_lines:
        print("failed tasks (rerun `shikomi submit` to resubmit only these and what follows):")
        print("\n".join(failed_lines))
    print("complete" if st["complete"] else "incomplete")


def main_status(args, cfg) -> int:
    """`shikomi status RUN_DIR [--json]`."""
    st = collect_status(args.run_dir)
    if getattr(args, "json", False):
        print(json.dumps(st, indent=2))
    else:
        print_status(st)
    return 0
