"""Executor overhead: one stage (langid on real Japanese Wikipedia leads) run by the
local executor (the anchor), through the local Slurm (job arrays) and through a local
Ray, on the same input in the same run. Slurm needs `scripts/slurm/start.sh` first
(SLURM_CONF set); a missing executor is reported as such."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _run(args, cwd, env=None) -> tuple[float, int, str]:
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return (
        time.time() - t0,
        r.returncode,
        (r.stderr or r.stdout).strip().splitlines()[-1:] and (r.stderr or r.stdout).strip().splitlines()[-1] or "",
    )


def bench(data: Path, quick: bool) -> dict:
    src = data / "ja" / "jawiki_annotated_corpus_leads.jsonl"
    work = Path(tempfile.mkdtemp(prefix="shikomi-bench-cluster-"))
    try:
        docs = sum(1 for _ in src.open(encoding="utf-8"))
        inp = work / "in.jsonl"
        lines = src.read_text(encoding="utf-8").splitlines()
        if quick:
            lines = lines[:1000]
            docs = len(lines)
        inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        base = {
            "name": "bench",
            "seed": 1,
            "executor": {
                "tasks": 2,
                "workers": 2,
                "slurm": {"cpus_per_task": 1, "mem_per_cpu_gb": 0.5, "time": "00:30:00", "poll_s": 1},
                "ray": {"num_cpus": 2},
            },
        }
        rows = []
        anchor = None
        ref = None
        for kind in ("local", "slurm", "ray"):
            cfg = dict(base, run_dir=str(work / kind))
            (work / f"{kind}.yaml").write_text(yaml.safe_dump(cfg))
            if kind == "slurm" and (shutil.which("sbatch") is None or not os.environ.get("SLURM_CONF")):
                rows.append([kind, docs, "-", "-", "no Slurm (run scripts/slurm/start.sh, export SLURM_CONF)"])
                continue
            wall, rc, last = _run(
                ["langid", "--config", str(work / f"{kind}.yaml"), "--input", str(inp), "--executor", kind],
                work,
                {"RAY_AUTH_MODE": "disabled"},
            )
            if rc != 0:
                rows.append([kind, docs, "-", "-", f"failed: {last}"])
                continue
            out = {
                str(p.relative_to(work / kind)): p.read_bytes()
                for p in sorted((work / kind / "langid").glob("*/data/*.parquet"))
            }
            if kind == "local":
                anchor, ref = wall, out
            same = "anchor" if kind == "local" else ("same output bytes" if out == ref else "OUTPUT DIFFERS")
            rows.append([kind, docs, f"{wall:.1f}", f"{wall / anchor:.2f}" if anchor else "-", same])
        return {
            "title": "Executor overhead: langid stage (2 tasks) on jawiki leads",
            "columns": ["executor", "documents", "wall s", "× local", "note"],
            "rows": rows,
            "notes": [
                "Wall time of `shikomi langid --executor KIND` including submission, scheduling, "
                "Python start-up in each task and the stats job; same input; the note compares the kept "
                "documents' Parquet files with the local run's."
            ],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
