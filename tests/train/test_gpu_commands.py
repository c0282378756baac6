"""Every GPU and cluster command of README.md and docs/train.md, as written: the
config loads with the command's own arguments, the model has the shape the text
states, an sbatch header asks for the time-limit signal and CPUs, srun gets
`--cpus-per-task`, and `shikomi submit ... --dry-run` writes a trainer script with
the signal, requeue, CPU and memory options."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shikomi.cli import build_parser
from shikomi.config.overrides import config_from_args
from shikomi.train.model import PRESETS, count_params, model_args

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "train.md"]


def code_lines() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for block in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            out += [(doc.name, ln.strip()) for ln in block.splitlines() if ln.strip()]
    return out


def shikomi_argv(line: str) -> list[str] | None:
    """The shikomi arguments of a command line (after `srun [options]`), or None."""
    words = shlex.split(line.split("#", 1)[0] if not line.startswith("#") else "")
    while words and (words[0] == "srun" or words[0].startswith("-")):
        words = words[1:]
    if words and words[0].endswith("shikomi"):
        return words[1:]
    return None


GPU_LINES = [
    (doc, ln)
    for doc, ln in code_lines()
    if ln.startswith("#SBATCH") or ln.startswith("srun") or "configs/recipes/" in ln or "--stages train" in ln
]


def test_the_docs_have_gpu_commands():
    cmds = [ln for _, ln in GPU_LINES]
    assert any(ln.startswith("srun") for ln in cmds) and any(ln.startswith("#SBATCH") for ln in cmds)
    assert any("preset=1.3B" in ln for ln in cmds) and any("--dry-run" in ln for ln in cmds)


@pytest.mark.parametrize("doc,line", GPU_LINES, ids=[f"{d}:{ln[:60]}" for d, ln in GPU_LINES])
def test_gpu_command_runs_as_written(doc, line, tmp_path):
    if line.startswith("#SBATCH"):
        if "--gpus-per-node" in line:
            assert "--signal=" in line and "--cpus-per-task=" in line, line
        return
    if line.startswith("srun"):
        assert "--cpus-per-task=" in line.split("shikomi")[0], f"{doc}: srun does not inherit --cpus-per-task: {line}"
    argv = shikomi_argv(line)
    assert argv is not None, line
    assert not any("configs/" in a and not (ROOT / a).is_file() for a in argv), f"{doc}: no such config: {line}"
    if argv[0] == "submit":
        res = subprocess.run(
            [sys.executable, "-m", "shikomi.cli", *[str(ROOT / a) if a.startswith("configs/") else a for a in argv]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        script = next((tmp_path / "runs").glob("*/submit/dry-run/*train.sbatch")).read_text()
        assert re.search(r"#SBATCH --signal=B:USR1@\d+", script) and "#SBATCH --requeue" in script
        assert re.search(r"\nsrun [^\n]*--cpus-per-task=\d+ --mem=\S+", script), script
        return
    args = build_parser().parse_args([str(ROOT / a) if a.startswith("configs/") else a for a in argv])
    cfg = config_from_args(args, "train")
    m = model_args(cfg.train.model, cfg.train, cfg.tokenizer.vocab_size)
    preset = re.search(r"train\.model\.preset=(\S+)", line)
    if preset:  # the preset named on the command line is the shape that trains
        want = PRESETS[preset.group(1)]
        assert (m.dim, m.n_layers, m.n_heads) == (want["dim"], want["n_layers"], want["n_heads"]), line
    if "sarashina2.yaml" in line:  # the sizes docs/train.md states
        total = count_params(m)["total"] / 1e9
        assert round(total, 2) == (1.65 if preset and preset.group(1) == "1.3B" else 7.32), (line, total)
