"""Running the chain: build a stage from its registry entry, run it with the
configured executor and print its summary; run stages in order. `shikomi run`,
`shikomi <stage>`, the Ray submission and `shikomi experiment` all go through here."""

from __future__ import annotations

import argparse

from shikomi.core.jobs import Stage
from shikomi.core.stats import print_summary
from shikomi.executor.local import reset_stage
from shikomi.executor.run import run_stage
from shikomi.pipeline.registry import entry


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
    return stage


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
    """Build and run one datatrove stage, print its summary, return its stats."""
    if force:
        reset_stage(cfg.stage_dir(entry(name).folder))  # before build: a builder may check its previous output
    stage = build_stage(name, cfg, input_path)
    if force and stage.path != cfg.stage_dir(entry(name).folder):
        reset_stage(stage.path)
    stats = run_stage(stage, cfg, kind=kind or cfg.executor.kind, workers=workers, verbose=verbose)
    print_summary(stats, stage.path)
    return stats


def run_if_missing(name: str, cfg) -> None:
    """Run a stage unless its stats.json says it finished (experiments)."""
    if (cfg.stage_dir(entry(name).folder) / "stats.json").is_file():
        return
    run_one(name, cfg)


def run_chain(cfg, names: list[str], args: argparse.Namespace) -> None:
    """Every stage of `names` in chain order: datatrove stages through the executor,
    commands (train, report) through their `main(args, cfg)`."""
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
