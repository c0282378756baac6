"""Helpers of the cluster tests: the CLI in a subprocess, a demo
config pointed at it with executor settings, and the outputs of a run to compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def shikomi(*args, cwd, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args], cwd=cwd, capture_output=True, text=True, env=e, timeout=600
    )
    if check and r.returncode != 0:
        raise AssertionError(f"shikomi {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def write_config(path: Path, sample: Path, run_dir: Path, **executor) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data["run_dir"] = str(run_dir)
    data["extract"]["input"] = [str(sample / "warc")]
    data["extract"].pop("generate_sample", None)
    for src in data.get("mix", {}).get("sources", []):
        if "path" in src:
            src["path"] = src["path"].replace("{run_dir}/_sample", str(sample))
    ex = data.setdefault("executor", {})
    for k, v in executor.items():
        ex[k] = v
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def outputs(run_dir: Path) -> dict[str, bytes]:
    """Every kept/rejected document file and token file of a run, by relative path."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or rel.parts[0] in ("submit",) or "logs" in rel.parts:
            continue
        if p.suffix in (".parquet", ".bin", ".idx", ".model") or p.name.endswith(".ids.jsonl"):
            out[str(rel)] = p.read_bytes()
        elif p.name == "manifest.json":
            m = json.loads(p.read_text())
            m.get("tokenizer", {}).pop("path", None)
            out[str(rel)] = json.dumps(m, sort_keys=True).encode()
    return out
