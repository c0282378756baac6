"""The stage registry: the one table of what the chain is made of.

Every other place that needs the list of stages reads it from here: the CLI's
subcommands, `shikomi run`, `shikomi submit` and `status`, inspect, report, find,
the experiment runner and the Makefile (checked by a test). Adding a stage means
one entry here plus its package.

Per stage:
    command   the CLI subcommand and Makefile target (`shikomi train-tokenizer`)
    section   the config section it reads (`tokenizer:`)
    folder    the run-folder sub-folder it writes (`<run_dir>/tokenizer/`)
    target    "module:function", imported only when the stage runs (start-up stays
              light): a builder `build(cfg, input_path) -> core.jobs.Stage` for a
              datatrove stage, or `main(args, cfg) -> int` for a command
    upstream  the folder it reads by default (relative to the run folder)
    sharded   whether its work is split over `--tasks` (one task otherwise)
    kind      "stage" (datatrove jobs run by an executor) or "command" (own code)
    check     optional "module:function" `check(cfg)` that validates what the config
              alone cannot (clean rule names against the rule registry); run before
              any stage of a run or submission starts

Only `train-tokenizer` has a command that differs from its folder and section.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from shikomi.errors import UserError


@dataclass(frozen=True)
class StageEntry:
    command: str
    section: str
    folder: str
    target: str
    upstream: str | None
    sharded: bool
    kind: str = "stage"
    help: str = ""
    check: str = ""

    @property
    def is_stage(self) -> bool:
        return self.kind == "stage"

    def load(self):
        """The builder (or command function) behind this entry."""
        module, fn = self.target.split(":")
        return getattr(importlib.import_module(module), fn)


CHAIN_ENTRIES: tuple[StageEntry, ...] = (
    StageEntry(
        "extract",
        "extract",
        "extract",
        "shikomi.extract.stage:build",
        None,
        True,
        help="CommonCrawl WARC/WET records to documents",
    ),
    StageEntry(
        "langid",
        "langid",
        "langid",
        "shikomi.langid.stage:build",
        "extract",
        True,
        help="fastText language ID, one folder per language",
    ),
    StageEntry(
        "dedup",
        "dedup",
        "dedup",
        "shikomi.dedup.stage:build",
        "langid/ja",
        True,
        help="exact and MinHash near-duplicate removal",
    ),
    StageEntry(
        "clean",
        "clean",
        "clean",
        "shikomi.filters.stage:build",
        "dedup",
        True,
        help="HojiChar and quality rules",
        check="shikomi.filters.profile:check_config",
    ),
    StageEntry(
        "mix",
        "mix",
        "mix",
        "shikomi.mix.stage:build",
        "clean",
        True,
        help="ja/en/code sampled to a token budget at fixed ratios",
    ),
    StageEntry(
        "train-tokenizer",
        "tokenizer",
        "tokenizer",
        "shikomi.tokenize.train_tokenizer:build",
        "mix",
        False,
        help="train the SentencePiece tokenizer on the mix",
    ),
    StageEntry(
        "tokenize",
        "tokenize",
        "tokenize",
        "shikomi.tokenize.stage:build",
        "mix",
        True,
        help="documents to Megatron token shards",
    ),
    StageEntry(
        "train",
        "train",
        "train",
        "shikomi.train.launch:main",
        "tokenize",
        False,
        kind="command",
        help="train the model on the token shards (launches torchrun)",
    ),
    StageEntry(
        "report",
        "report",
        "report",
        "shikomi.tools.report:main",
        None,
        False,
        kind="command",
        help="write RUN_DIR/report/index.html",
    ),
)

REGISTRY: dict[str, StageEntry] = {e.command: e for e in CHAIN_ENTRIES}
# the commands of the chain, in order
CHAIN: list[str] = [e.command for e in CHAIN_ENTRIES]
# the datatrove stages (built by a builder, run by an executor)
STAGES: list[str] = [e.command for e in CHAIN_ENTRIES if e.is_stage]
# run-folder sub-folders of the chain, in order
FOLDERS: list[str] = [e.folder for e in CHAIN_ENTRIES]


def check_configs(cfg, names: list[str]) -> None:
    """Run the `check` of every stage in `names` (UserError on the first mistake),
    so that a typo in a late stage's section stops a run before its first stage."""
    for name in names:
        e = entry(name)
        if e.check:
            module, fn = e.check.split(":")
            getattr(importlib.import_module(module), fn)(cfg)


def entry(command: str) -> StageEntry:
    try:
        return REGISTRY[command]
    except KeyError:
        raise UserError(f"unknown stage '{command}'; allowed: {', '.join(CHAIN)}") from None


def by_folder(folder: str) -> StageEntry | None:
    """The entry whose stage writes `<run_dir>/<folder>/`."""
    return next((e for e in CHAIN_ENTRIES if e.folder == folder), None)


def select(names: str | list[str] | None) -> list[str]:
    """A comma-separated subset of the chain (or all of it), in chain order."""
    if not names:
        return list(CHAIN)
    wanted = [s.strip() for s in names.split(",")] if isinstance(names, str) else list(names)
    wanted = [s for s in wanted if s]
    unknown = [s for s in wanted if s not in REGISTRY]
    if unknown:
        raise UserError(f"unknown stage(s) {unknown}; allowed: {', '.join(CHAIN)}")
    return [s for s in CHAIN if s in wanted]
