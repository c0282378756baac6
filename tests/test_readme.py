"""The commands the README and the manual show run as shown.

Every `shikomi ...` line of the code blocks of PAGES is checked against one demo run
(`shikomi run --config configs/demo.yaml`, in a temporary folder where `runs/demo`
and `configs/` are where the pages say):

- `inspect`, `find`, `batch`, `status` and `report` of `runs/demo` run and exit 0;
- `submit` runs as a dry run (`--dry-run` added, `--wait` left out): no cluster here;
- every other command (`run`, `train`, `experiment`, a stage, `export-hf`) parses and
  loads its config (with `--scale`, `--set`), and its stages' checks pass: these are
  cluster-scale or long runs.

Lines that start with `srun`, `sbatch` or `torchrun`, and blocks marked
`<!-- gpu-only -->`, are not run here: they need GPUs, and the GPU tests
(tests/train) run them. Commands with a placeholder (`...`, `<...>`, `runs/x`) are
examples of a form, not runnable, and are skipped.

A block after `<!-- shikomi:output CMD -->` shows the real output of CMD on the demo
run: `$ CMD`, then its lines; the block after `<!-- shikomi:demo -->` (README.md) the
stage lines of the demo's own output. The test fails when the output changed;
`make readme` (= `python tests/test_readme.py --write`) runs the demo and rewrites
those blocks, so numbers never drift from what the code prints.

Every shipped config (configs/**/*.yaml) loads and passes `shikomi submit --dry-run`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *(ROOT / "docs" / n for n in ("inspect.md", "cluster.md", "recipes.md", "train.md"))]
OUTPUT_MARK = re.compile(r"<!-- shikomi:output (.+?) -->\n```[a-z]*\n(.*?)```", re.S)
FENCE = re.compile(r"```(bash|sh|console|text|)\n(.*?)```", re.S)
LEFT_TO_GPU_TESTS = ("srun", "sbatch", "torchrun")
RUN_ON_DEMO = {"inspect", "find", "batch", "status", "report"}
# what differs run to run, left out: " in 1.2s (34 docs/s)", " in 0.1s", " (295 KiB)"
TIMING = re.compile(r" in \d+(\.\d+)?s( \([\d,.]+ [a-z]+/s\))?| \(\d+ KiB\)")
# the demo's summary as the README shows it: the stage lines and their counts
DEMO_MARK = re.compile(r"<!-- shikomi:demo -->\n```[a-z]*\n(.*?)```", re.S)
DEMO_LINES = re.compile(r"^\[[a-z-]+\] (?!note:|-m |sample:)|^  (skipped records|languages|tokens out):")


def page_commands(page: Path) -> list[str]:
    """The `shikomi` command lines of a page's code blocks (comments, `$ ` prompts,
    pipes and continuation lines handled)."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()[-1:] or [""]
        if "gpu-only" in before[0]:
            continue
        body = m.group(2).replace("\\\n", " ")
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if line.startswith("shikomi "):
                out.append(line)
    return out


def split_command(line: str) -> list[str] | None:
    """argv of a command line (up to a pipe or a comment); None for a placeholder."""
    argv = []
    for tok in shlex.split(line, comments=True):
        if tok in ("|", "&&", ">", ";"):
            break
        argv.append(tok)
    if any("..." in t or re.search(r"<[^>]*>", t) or t.startswith("runs/x") for t in argv):
        return None
    return argv


def all_commands() -> list[tuple[str, str]]:
    seen, out = set(), []
    for page in PAGES:
        for line in page_commands(page):
            if line not in seen:
                seen.add(line)
                out.append((page.name, line))
    return out


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """`shikomi ARGV` in a fresh process (as a user runs it), in `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return r.returncode, r.stdout, r.stderr


def normalise(text: str) -> str:
    lines = [TIMING.sub("", line.rstrip()) for line in text.strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def demo_summary(where: Path) -> str:
    """The lines of `make demo`'s output that the README shows."""
    out = (where / "demo-output.txt").read_text(encoding="utf-8")
    return normalise("\n".join(ln for ln in out.splitlines() if DEMO_LINES.match(ln)))


def shown_output(cmd: str, out: str) -> str:
    return normalise(f"$ {cmd}\n{out}")


def make_demo(where: Path) -> Path:
    """A demo run at `where/runs/demo`, with `where/configs` the shipped configs."""
    where.mkdir(parents=True, exist_ok=True)
    if not (where / "configs").exists():
        (where / "configs").symlink_to(ROOT / "configs")
    # the pages' data paths (`../shared/data/...`) are relative to the checkout
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (where.parent / "shared").exists():
        (where.parent / "shared").symlink_to(shared)
    if not (where / "demo-output.txt").is_file():
        rc, out, err = run_cli(["run", "--config", "configs/demo.yaml"], where)
        assert rc == 0, f"the demo failed:\n{out[-2000:]}\n{err[-2000:]}"
        (where / "demo-output.txt").write_text(out, encoding="utf-8")
    return where


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo(tmp_path_factory.mktemp("readme"))


def check_command(line: str, cwd: Path) -> str | None:
    """Run or load one documented command; a problem as text, None when it works."""
    if line.split()[0] in LEFT_TO_GPU_TESTS:
        return None
    argv = split_command(line)
    if argv is None:
        return None
    args = argv[1:]
    if args[0] in RUN_ON_DEMO:
        if not any(a.startswith("runs/demo") for a in args):
            return None  # another run folder: an example of the form
        rc, out, err = run_cli(args, cwd)
        return None if rc == 0 else f"exit {rc}: {(err or out).strip()[-500:]}"
    if args[0] == "submit":
        args = [a for a in args if a != "--wait"] + (["--dry-run"] if "--dry-run" not in args else [])
        rc, out, err = run_cli([*args, "--output", "runs/readme-submit"], cwd)
        return None if rc == 0 else f"exit {rc}: {(err or out).strip()[-500:]}"
    return load_only(args, cwd)


def load_only(args: list[str], cwd: Path) -> str | None:
    """Parse the command line and load its config as the command would."""
    from shikomi import cli
    from shikomi.config.overrides import config_from_args
    from shikomi.errors import UserError
    from shikomi.pipeline.registry import REGISTRY, check_configs, select

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.chdir(cwd):
            ns = cli.build_parser().parse_args(args)
            if getattr(ns, "config", None) is None:
                return None
            e = REGISTRY.get(ns.command)
            cfg = config_from_args(ns, e.section if e is not None else None)
            if ns.command == "run":
                check_configs(cfg, select(ns.stages))
    except SystemExit:
        return f"does not parse: {err.getvalue().strip().splitlines()[-1:]}"
    except UserError as e:
        return f"config: {e}"
    return None


def test_pages_show_commands():
    # the parser itself: a page without commands would make the test below vacuous
    cmds = all_commands()
    assert len(cmds) >= 15
    assert any("shikomi find" in c for _, c in cmds) and any("shikomi submit" in c for _, c in cmds)


@pytest.mark.parametrize("page,line", all_commands(), ids=[c[:60] for _, c in all_commands()])
def test_documented_command_runs(demo, page, line):
    problem = check_command(line, demo)
    assert problem is None, f"{page}: `{line}`: {problem}"


def output_blocks() -> list[tuple[Path, str, str]]:
    out = []
    for page in PAGES:
        for m in OUTPUT_MARK.finditer(page.read_text(encoding="utf-8")):
            out.append((page, m.group(1), m.group(2)))
    return out


def test_output_blocks_exist():
    assert output_blocks(), "no `<!-- shikomi:output CMD -->` block in the pages"


@pytest.mark.parametrize("page,cmd,shown", output_blocks(), ids=[b[1][:60] for b in output_blocks()])
def test_output_block_is_the_real_output(demo, page, cmd, shown):
    rc, out, err = run_cli(shlex.split(cmd)[1:], demo)
    assert rc == 0, f"{page.name}: `{cmd}` exit {rc}: {err.strip()[-500:]}"
    assert normalise(shown) == shown_output(cmd, out), (
        f"{page.name}: the output shown for `{cmd}` is not what it prints now; `make readme` rewrites it"
    )


def test_readme_demo_summary_is_the_demo_output(demo):
    m = DEMO_MARK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert m, "README.md has no `<!-- shikomi:demo -->` block"
    assert normalise(m.group(1)) == demo_summary(demo), (
        "README.md: the demo output shown is not what `make demo` prints now; `make readme` rewrites it"
    )


SHIPPED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("config", SHIPPED)
def test_shipped_config_loads_and_dry_runs(tmp_path, config):
    """Load, then plan the whole chain as `shikomi submit --dry-run` (inputs that
    exist only on a cluster are planned without them; Ray only checks)."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    rc, out, err = run_cli(["submit", "--config", config, "--dry-run", "--output", "runs/dry"], tmp_path)
    assert rc == 0, f"{config}: {err.strip()[-800:]}"
    assert "dry run" in out


def write_blocks(where: Path) -> int:
    """Rewrite every output block from the real output (`make readme`); 1 when a
    command failed (its block is left as it was)."""
    make_demo(where)
    changed, failed = 0, []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")

        def render(m, page=page):
            cmd = m.group(1)
            rc, out, err = run_cli(shlex.split(cmd)[1:], where)
            if rc != 0:  # left as it is (the test reports it), the other blocks written
                failed.append(f"{page.name}: `{cmd}` exit {rc}: {err.strip()[-300:]}")
                return m.group(0)
            return f"<!-- shikomi:output {cmd} -->\n```\n{shown_output(cmd, out)}```"

        new = OUTPUT_MARK.sub(render, text)
        new = DEMO_MARK.sub(lambda m: f"<!-- shikomi:demo -->\n```\n{demo_summary(where)}```", new)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
            print(f"rewrote {page.relative_to(ROOT)}")
    for f in failed:
        print(f"not rewritten: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--write"]:
        sys.exit("usage: python tests/test_readme.py --write [FOLDER]  (rewrites the output blocks)")
    sys.exit(write_blocks(Path(sys.argv[2] if len(sys.argv) > 2 else "runs/readme").resolve()))
