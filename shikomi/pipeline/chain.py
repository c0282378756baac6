"""Running the chain: build a stage from its registry entry, run it with the
configured executor and print its summary; run stages in order. `shikomi run`,
`shikomi <stage>`, the Ray submission and `shikomi experiment` all go through here."""

from __future__ import annotations

import argparse

from shikomi.core.documents import set_input_encoding
from shikomi.core.jobs import Stage
from shikomi.core.schemas import StageStats
from shikomi.core.stats import print_summary
from shikomi.errors import UserError
from shikomi.executor.local import reset_stage
from shikomi.executor.run import run_stage
from shikomi.pipeline.fingerprint import check_stage
from shikomi.pipeline.registry import check_configs, entry

# skip reasons that mean input bytes could not be read as documents
UNREADABLE = ("undecodable_line", "invalid_json_line", "unreadable_file", "truncated_or_corrupt_file")


def with_default_input(name: str, cfg):
    """`cfg` with the stage's `input` set to its upstream folder from the registry
    (`<run_dir>/<upstream>`) when the config leaves it unset: builders read their
    input from `input_path` or their section's `input`, never a folder of their own."""
    e = entry(name)
    section = getattr(cfg, e.section)
    if e.upstream is None or getattr(section, "input", None) is not None:
        return cfg
    default = str(cfg.stage_dir(e.upstream))
    return cfg.model_copy(update={e.section: section.model_copy(update={"input": default})})


def build_stage(name: str, cfg, input_path: str | None = None) -> Stage:
    """The Stage of chain stage `name`, built by its registered builder from
    `input_path` (the command line's --input), else the config's, else the
    registry's upstream folder."""
    e = entry(name)
    bcfg = with_default_input(name, cfg)
    stage = e.load()(bcfg, input_path)
    stage.command, stage.builder, stage.config = e.command, e.target, bcfg
    stage.input_encoding = getattr(getattr(bcfg, e.section), "input_encoding", None)
    set_input_encoding([j.pipeline for j in stage.jobs], stage.input_encoding)
    return stage


def input_file_count(step) -> int | None:
    """How many files a reader step shards over its tasks (None: not a file reader)."""
    from datatrove.pipeline.readers.base import BaseDiskReader

    if isinstance(step, BaseDiskReader) and not step.paths_file:
        return len(step.data_folder.get_shard(0, 1, recursive=step.recursive, glob_pattern=step.glob_pattern))
    files = getattr(step, "files", None)
    return len(files()) if callable(files) else None


def note_idle_tasks(stage: Stage) -> None:
    """Files are the unit of sharding: say so when a job has more tasks than files."""
    for job in stage.jobs:
        n = input_file_count(job.pipeline[0]) if job.pipeline else None
        if n and n < job.tasks:
            print(
                f"[{stage.name}] note: {job.tasks} tasks but {n} input file{'s' if n > 1 else ''}: "
                f"{job.tasks - n} tasks have nothing to read (tasks shard whole files; split the input to use them)"
            )
            return


def check_documents_read(name: str, stats: dict) -> None:
    """A stage that read no document while its input files held bytes it could not
    read (not UTF-8, not JSON, not WARC, damaged) has failed: one line saying why."""
    skipped = stats.get("skipped") or {}
    bad = {k: v for k, v in skipped.items() if k in UNREADABLE and v}
    if stats.get("documents_in", 0) or not bad:
        return
    files = list(stats.get("skipped_files") or {})
    where = f" in {', '.join(files[:3])}" + (f" and {len(files) - 3} more" if len(files) > 3 else "") if files else ""
    hint = (
        f"; set {entry(name).section}.input_encoding (e.g. cp932, euc_jp) if its JSONL is not UTF-8"
        if "undecodable_line" in bad
        else ""
    )
    raise UserError(
        f"[{name}] read no documents: its input could not be read ({', '.join(f'{k}={v:,}' for k, v in bad.items())})"
        f"{where}{hint}"
    )


def run_one(
    name: str,
    cfg,
    input_path: str | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
    verbose: bool = False,
    kind: str | None = None,
) -> dict:
    """Build and run one datatrove stage, print its summary, return its stats.

    The stage's config fingerprint is checked first (shikomi.pipeline.fingerprint):
    another config stops here naming the changed keys; `force` clears the folder
    (before build: a builder may check its previous output); a complete stage is
    not run again. The fingerprint is recorded after the build, so a config or input
    the builder rejects leaves nothing behind."""
    folder = cfg.stage_dir(entry(name).folder)
    check_configs(cfg, [name])
    state = check_stage(name, cfg, input_path, force=force, record=False)
    if state == "complete":
        st = StageStats.read(folder, missing_ok=True)
        stats = st.dump() if st is not None else {}
        print(f"[{name}] already complete; nothing to do ({folder}/stats.json; --force runs it again)")
        check_documents_read(name, stats)
        return stats
    stage = build_stage(name, cfg, input_path)
    check_stage(name, cfg, input_path)  # recorded once the build accepted the input and config
    if force and stage.path != folder:
        reset_stage(stage.path)
    note_idle_tasks(stage)
    stats = run_stage(stage, cfg, kind=kind or cfg.executor.kind, workers=workers, verbose=verbose)
    print_summary(stats, stage.path)
    check_documents_read(name, stats)
    return stats


def run_if_missing(name: str, cfg) -> None:
    """Run a stage unless its stats.json says it finished (experiments)."""
    if (cfg.stage_dir(entry(name).folder) / "stats.json").is_file():
        return
    run_one(name, cfg)


def run_chain(cfg, names: list[str], args: argparse.Namespace) -> None:
    """Every stage of `names` in chain order: datatrove stages through the executor,
    commands (train, report) through their `main(args, cfg)`."""
    check_configs(cfg, names)
    for name in names:
        e = entry(name)
        if e.is_stage:
            run_one(
                name,
                cfg,
                None,
                force=getattr(args, "force", False),
                workers=getattr(args, "workers", None),
                verbose=getattr(args, "verbose", False),
            )
            continue
        ns = argparse.Namespace(**vars(args))
        ns.run_dir = str(cfg.run_dir)
        for k in ("resume", "nproc", "max_steps"):
            setattr(ns, k, getattr(ns, k, None))
        e.load()(ns, cfg)


def run_chain_ray(cfg, names: list[str], input_path: str | None = None) -> None:
    """`shikomi submit` with `executor.kind: ray`: the datatrove stages in order on Ray
    (each built when its input exists); the trainer and report are not Ray jobs."""
    first = True
    for name in names:
        if not entry(name).is_stage:
            print(f"  {name}: not a datatrove stage; run `shikomi {name}` (skipped on Ray)")
            continue
        run_one(name, cfg, input_path if first else None, kind="ray")
        first = False
