"""The stage registry is the one list of stages: the CLI, the Makefile, `shikomi
run` and `shikomi submit` read it, and a stage's command, section and folder differ
only where the registry says so."""

from __future__ import annotations

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
