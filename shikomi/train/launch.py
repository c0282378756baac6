"""`shikomi train`: write the resolved config, then start torchrun on the trainer.

One node:  torchrun --standalone --nproc_per_node N -m shikomi.train.trainer ...
N nodes:   torchrun --nnodes N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT ...
           (one `shikomi train` per node, e.g. `srun shikomi train ...`; under Slurm the
           node count, node rank and endpoint come from SLURM_* when not configured).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def torchrun_command(cfg, config_path: Path, nproc: int, resume: bool, max_steps: int | None) -> list[str]:
    tc = cfg.train
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    nnodes = tc.nnodes
    if nnodes == 1 and os.environ.get("SLURM_NNODES", "1") != "1" and not tc.rdzv_endpoint:
        nnodes = int(os.environ["SLURM_NNODES"])
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        endpoint = tc.rdzv_endpoint
        if endpoint is None:
            host = _slurm_first_host()
            if host is None:
                raise UserError("train.nnodes > 1 needs train.rdzv_endpoint (host:port of the first node)")
            endpoint = f"{host}:29500"
        cmd += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={tc.rdzv_id}"]
        if "SLURM_NODEID" in os.environ:
            cmd.append(f"--node_rank={os.environ['SLURM_NODEID']}")
    cmd += ["-m", "shikomi.train.trainer", "--config", str(config_path)]
    if resume:
        cmd.append("--resume")
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    return cmd


def main(args, cfg) -> int:
    if getattr(args, "input", None):
        cfg.train.input = args.input
    out = cfg.stage_dir("train")
    token_dir = token_dir_for(cfg)
    TokenData(token_dir, cfg.train.seed)  # fails early, in one line, on a bad token folder
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
    batch_split(cfg.train, nproc * cfg.train.nnodes)  # a bad split is a one-line error, before torchrun
    cmd = torchrun_command(cfg, config_path, nproc, resume, getattr(args, "max_steps", None))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    print("[train] " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise UserError(
            f"training failed (exit code {rc}); logs above; rerun with --resume to continue "
            f"from the latest checkpoint in {out}/checkpoints"
        )
    print_summary(out)
    return 0


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
