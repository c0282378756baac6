"""`shikomi train`: write the resolved config, build the data index, then start
torchrun (`shikomi.train.agent`) on the trainer and stay between it and the signals.

One node:  torchrun --standalone --nproc_per_node N -m shikomi.train.trainer ...
N nodes:   torchrun --nnodes N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT ...
           (one `shikomi train` per node, e.g. `srun shikomi train ...`; under Slurm the
           node count comes from SLURM_STEP_NUM_NODES / SLURM_NNODES, the endpoint from the
           first host of the job, the port and rendezvous id from SLURM_JOB_ID, unless configured).

SIGTERM or SIGINT (Ctrl-C) to `shikomi train` is forwarded to torchrun, which forwards it
to the workers; they finish their step, write a checkpoint and exit. torchrun waits for
them up to `train.shutdown_timeout_s` (default `executor.slurm.train.signal_before_s`).
The command then exits 0 and says which step it saved and how to resume. A second
Ctrl-C aborts at once (the newest complete checkpoint stays).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from shikomi.core.schemas import MetricsLog
from shikomi.errors import UserError
from shikomi.train import checkpoint as ckpt
from shikomi.train.data import TokenData, batch_split, token_dir_for


def _nproc(cfg, args) -> int:
    if getattr(args, "nproc", None):
        return int(args.nproc)
    if cfg.train.nproc_per_node:
        return cfg.train.nproc_per_node
    if cfg.train.device != "cpu" and shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True)
        gpus = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU ")]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            gpus = [g for g in visible.split(",") if g.strip()]
        if gpus:
            return len(gpus)
    return 1


def _slurm_first_host() -> str | None:
    nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodes or not shutil.which("scontrol"):
        return None
    out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True)
    hosts = out.stdout.split()
    return hosts[0] if hosts else None


def node_count(tc) -> int:
    """Nodes of the run: train.nnodes when set above 1, else the Slurm step's (or job's) node count."""
    if tc.nnodes > 1 or tc.rdzv_endpoint:
        return tc.nnodes
    for var in ("SLURM_STEP_NUM_NODES", "SLURM_NNODES"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) >= 1:
            return int(v)
    return 1


def shutdown_timeout(cfg) -> int:
    """Seconds torchrun gives the workers to checkpoint after a signal."""
    return cfg.train.shutdown_timeout_s or cfg.executor.slurm.train.signal_before_s


def torchrun_command(cfg, config_path: Path, nproc: int, resume: bool, max_steps: int | None) -> list[str]:
    tc = cfg.train
    cmd = [sys.executable, "-m", "shikomi.train.agent", f"--nproc_per_node={nproc}"]
    cmd += [f"--shutdown_timeout={shutdown_timeout(cfg)}", "--max_restarts=0"]
    nnodes = node_count(tc)
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        job = os.environ.get("SLURM_JOB_ID", "")
        endpoint = tc.rdzv_endpoint
        if endpoint is None:
            host = _slurm_first_host()
            if host is None:
                raise UserError("train.nnodes > 1 needs train.rdzv_endpoint (host:port of the first node)")
            # one port per job: two jobs that share a first node do not meet each other
            endpoint = f"{host}:{tc.rdzv_port + (int(job) % 1000 if job.isdigit() else 0)}"
        default_id = type(tc).model_fields["rdzv_id"].default
        rdzv_id = job if job and tc.rdzv_id == default_id else tc.rdzv_id
        cmd += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={rdzv_id}"]
        if "SLURM_NODEID" in os.environ:
            cmd.append(f"--node_rank={os.environ['SLURM_NODEID']}")
    cmd += ["-m", "shikomi.train.trainer", "--config", str(config_path)]
    if resume:
        cmd.append("--resume")
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    return cmd


def _die_with_parent() -> None:
    """In the torchrun child: die (SIGKILL) when `shikomi train` dies, e.g. by kill -9;
    its workers then die with it (they do the same for torchrun). Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover
        return
    if os.getppid() == 1:  # the launcher died before the line above
        os._exit(1)


def run_forwarding_signals(cmd: list[str], env: dict) -> tuple[int, list[str]]:
    """Run torchrun in its own session (so Ctrl-C reaches it once, through us) and
    forward SIGTERM/SIGINT to it. A second SIGINT kills it at once. Returns (exit code,
    names of the signals received)."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    got: list[str] = []

    def forward(signum, frame):
        name = signal.Signals(signum).name
        if got and signum == signal.SIGINT:
            print("\n[train] SIGINT again: aborting without a checkpoint", file=sys.stderr, flush=True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the workers die with torchrun (PR_SET_PDEATHSIG)
            except ProcessLookupError:
                pass
            got.append(name)
            return
        first = not got
        got.append(name)
        if first:
            print(f"\n[train] {name}: finishing the step and writing a checkpoint ...", file=sys.stderr, flush=True)
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except InterruptedError:  # pragma: no cover (PEP 475 retries)
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return rc, got


def main(args, cfg) -> int:
    if getattr(args, "input", None):
        cfg.train.input = args.input
    out = cfg.stage_dir("train")
    token_dir = token_dir_for(cfg)
    # fails early, in one line, on a bad token folder; builds the shared document index once
    TokenData(token_dir, cfg.train.seed, cfg.train.shuffle_block_docs)
    if getattr(args, "force", False) and out.exists():
        shutil.rmtree(out)
    latest = ckpt.latest(out / "checkpoints")
    resume = getattr(args, "resume", None)
    if resume is None:  # `shikomi run` continues an interrupted chain
        resume = latest is not None
    if not resume and latest is not None:
        raise UserError(
            f"{out}/checkpoints already holds checkpoints: pass --resume to continue the run, or --force to start over"
        )
    max_steps = getattr(args, "max_steps", None) or cfg.train.max_steps
    if resume and latest is not None and int(latest.name.split("_")[1]) >= max_steps:
        print(f"[train] {latest} already has {max_steps} steps; nothing to train")
        print_summary(out)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    # the workers read the resolved config, with absolute paths
    resolved = cfg.model_dump(mode="json")
    resolved["run_dir"] = str(Path(cfg.run_dir).resolve())
    resolved["train"]["input"] = str(Path(token_dir).resolve())
    config_path = out / "config.yaml"
    config_path.write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    nproc = _nproc(cfg, args)
    batch_split(cfg.train, nproc * node_count(cfg.train))  # a bad split is a one-line error, before torchrun
    cmd = torchrun_command(cfg, config_path, nproc, resume, getattr(args, "max_steps", None))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    print("[train] " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    started = time.time()
    rc, signals = run_forwarding_signals(cmd, env)
    if signals[1:2] == ["SIGINT"]:
        latest = ckpt.latest(out / "checkpoints")
        print(f"[train] aborted; the newest complete checkpoint is {latest}" if latest else "[train] aborted")
        return 130
    stopped = _stopped(out, started)
    if stopped is not None and stopped.get("checkpoint"):
        how = "shikomi train " + " ".join(_resume_args(config_path)) + " --resume"
        print(
            f"[train] stopped by {stopped['signal']} after step {stopped['step']}: saved {stopped['checkpoint']}; "
            f"continue with: {how}"
        )
        print_summary(out)
        return 0
    latest = ckpt.latest(out / "checkpoints")
    if signals and latest is not None and int(latest.name.split("_")[1]) >= max_steps:
        print_summary(out)  # the signal came after the last step: the run is complete
        return 0
    if signals:
        raise UserError(
            f"training interrupted ({signals[0]}) before a checkpoint was written (exit code {rc}); "
            + (f"the newest complete checkpoint is {latest}; --resume continues from it" if latest else "no checkpoint")
        )
    if rc != 0:
        raise UserError(
            f"training failed (exit code {rc}); logs above; rerun with --resume to continue "
            f"from the latest checkpoint in {out}/checkpoints"
        )
    print_summary(out)
    return 0


def _stopped(out: Path, since: float) -> dict | None:
    """The trainer's stopped.json when this run wrote it (a signal-save before max_steps)."""
    p = out / "stopped.json"
    try:
        if p.stat().st_mtime < since - 1:
            return None
        info = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if info.get("checkpoint") and not (Path(info["checkpoint"]) / ckpt.COMPLETE).is_file():
        return None
    return info


def _resume_args(config_path: Path) -> list[str]:
    """The arguments of this `shikomi train` without --force/--resume (or the resolved config)."""
    import shlex

    if len(sys.argv) > 1 and sys.argv[1] == "train":
        return [shlex.quote(a) for a in sys.argv[2:] if a not in ("--force", "--resume")]
    return ["--config", shlex.quote(str(config_path))]


def print_summary(out: Path) -> None:
    log = MetricsLog(out)
    metrics = log.path
    rows = log.read()
    if not rows:
        return
    ok = [r for r in rows if r.loss is not None] or rows
    first, last = ok[0], ok[-1]
    skipped = [r.step for r in rows if r.skipped]
    print(
        f"[train] steps {first.step}..{last.step}: loss {first.loss:.4f} -> {last.loss:.4f}, "
        f"{last.tokens:,} tokens" + (f", skipped steps {skipped}" if skipped else "")
    )
    evals = [r for r in rows if r.val_losses()]
    if evals:
        e = evals[-1]
        vals = ", ".join(
            f"{src} {v:.4f} (ppl {e.value('val_ppl/' + src) or 0:.1f})" for src, v in e.val_losses().items()
        )
        print(f"[train] validation loss at step {e.step}: {vals}")
    latest = ckpt.latest(out / "checkpoints")
    print(f"  output: {out}/  metrics: {metrics}" + (f"  checkpoint: {latest}" if latest else ""))
