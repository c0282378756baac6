"""The stage registry is the one list of stages: the CLI, the Makefile, `shikomi
run` and `shikomi submit` read it, and a stage's command, section and folder differ
only where the registry says so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shikomi.cli import build_parser
from shikomi.config import Config
from shikomi.errors import UserError
from shikomi.pipeline import registry
from shikomi.pipeline.registry import CHAIN, CHAIN_ENTRIES, REGISTRY, select

ROOT = Path(__file__).resolve().parents[2]


def _subcommands() -> set[str]:
    ap = build_parser()
    sub = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


def test_every_stage_is_a_cli_command():
    assert set(CHAIN) <= _subcommands()


def test_every_stage_is_a_make_target():
    text = (ROOT / "Makefile").read_text()
    m = re.search(r"^STAGES\s*:=\s*(.+)$", text, re.M)
    assert m, "Makefile has no STAGES := line"
    assert m.group(1).split() == CHAIN


def test_sections_are_config_sections_and_targets_import():
    for e in CHAIN_ENTRIES:
        assert e.section in Config.model_fields, e
        assert callable(e.load()), e
        assert e.upstream is None or e.upstream.split("/")[0] in registry.FOLDERS


def test_command_folder_and_section_differ_only_for_train_tokenizer():
    differ = [e.command for e in CHAIN_ENTRIES if len({e.command, e.section, e.folder}) > 1]
    assert differ == ["train-tokenizer"]
    assert registry.by_folder("tokenizer").command == "train-tokenizer"


def test_select_keeps_chain_order_and_names_unknown_stages():
    assert select("tokenize,extract") == ["extract", "tokenize"]
    assert select(None) == CHAIN
    with pytest.raises(UserError, match="unknown stage"):
        select("extract,tokenise")


def test_upstream_folders_come_before_their_stage():
    seen: set[str] = set()
    for e in CHAIN_ENTRIES:
        if e.upstream:
            assert e.upstream.split("/")[0] in seen, e
        seen.add(e.folder)
    assert REGISTRY["dedup"].upstream == "langid/ja"


def _run_with_every_stage(run: Path) -> None:
    """A run folder where every stage of the registry ran: a stats.json and a finished
    datatrove job per datatrove stage, train metrics, and the submission record of the
    command stages (train, report)."""
    from shikomi.core.files import write_json_atomic
    from shikomi.core.schemas import MetricsLog, StageStats

    for e in CHAIN_ENTRIES:
        sd = run / e.folder
        if e.is_stage:
            StageStats.parse(
                {
                    "stage": e.folder,
                    "documents_in": 10,
                    "chars_in": 100,
                    "documents_out": 8,
                    "chars_out": 80,
                    "documents_dropped": 2,
                    "dropped": {"rule": {"documents": 2, "chars": 20}},
                    "skipped": {},
                    "rules": [],
                }
            ).write(sd)
            logs = sd / "logs" / "job"
            (logs / "completions").mkdir(parents=True)
            (logs / "completions" / "00000").write_text("")
            write_json_atomic(logs / "executor.json", {"world_size": 1})
    MetricsLog(run / REGISTRY["train"].folder).path.parent.mkdir(parents=True)
    MetricsLog(run / REGISTRY["train"].folder).append(
        {"step": 0, "tokens": 64, "loss": 7.0, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 100.0}
    )
    commands = [e.command for e in CHAIN_ENTRIES if not e.is_stage]
    write_json_atomic(
        run / "submit" / "jobs.json",
        {"jobs": [{"stage": c, "job": c, "job_id": f"DRYRUN-{i}"} for i, c in enumerate(commands)]},
    )


def test_every_stage_is_in_the_report_funnel(tmp_path):
    from shikomi.tools.report.collect import FUNNEL_STAGES, REPORT_FOLDER, funnel

    assert FUNNEL_STAGES == [f for f in registry.FOLDERS if f != REPORT_FOLDER]
    _run_with_every_stage(tmp_path)
    assert [r["stage"] for r in funnel(tmp_path)] == FUNNEL_STAGES


def test_inspect_walks_the_registry_folders():
    from shikomi.tools.inspect import STAGE_ORDER

    assert STAGE_ORDER == registry.FOLDERS


def test_every_stage_is_in_shikomi_status(tmp_path, capsys):
    from shikomi.cli import main as cli

    _run_with_every_stage(tmp_path)
    assert cli(["status", str(tmp_path)]) == 0
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    for command in CHAIN:
        assert command in shown, (command, shown)
    assert cli(["status", str(tmp_path), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in st["stages"]] == CHAIN


def test_builders_take_their_input_from_the_registry_not_a_folder_of_their_own(tmp_path):
    from shikomi.config import load_config
    from shikomi.pipeline.chain import with_default_input

    cfg = load_config(None, {"run_dir": str(tmp_path / "run")})
    for e in CHAIN_ENTRIES:
        if not e.is_stage or e.upstream is None:
            continue
        filled = getattr(with_default_input(e.command, cfg), e.section).input
        assert filled == str(tmp_path / "run" / e.upstream), e
        if e.command == "mix":  # mix's input is the default path of its `ja` source
            continue
        with pytest.raises(UserError, match="no input"):
            e.load()(cfg, None)  # the builder alone has no default folder
    # a config's own input wins over the registry's upstream
    own = load_config(None, {"run_dir": str(tmp_path / "run"), "dedup": {"input": "/data/ja"}})
    assert with_default_input("dedup", own).dedup.input == "/data/ja"


def test_tasks_on_a_stage_that_runs_as_one_task_is_a_one_line_error(capsys):
    from shikomi.cli import main

    unsharded = [e.command for e in CHAIN_ENTRIES if not e.sharded and e.command != "report"]
    assert unsharded == ["train-tokenizer", "train"]
    for command in unsharded:
        assert main([command, "--tasks", "4"]) == 2
        assert "runs as one task" in capsys.readouterr().err
