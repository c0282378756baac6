"""`shikomi submit` and `shikomi status`: the chain planned for Slurm (or Ray).

The executor side (job arrays, sbatch scripts, the queue) is `shikomi.executor.slurm`;
this module decides what to submit from the stage registry.

A stage after the first one in a submission has no input yet when the chain is
submitted: it is planned against an empty placeholder input to learn its jobs and
task counts, and built again inside each array task once its input exists. A stage
that cannot be planned even so is submitted as one job running the stage with the
local executor inside its allocation. The trainer and the report are single sbatch
jobs at the end of the chain.

The submission is recorded in `<run_dir>/submit/jobs.json`; `shikomi status`
combines it with the completion markers and `squeue`.
"""

from __future__ import annotations

import json

from shikomi.errors import UserError
from shikomi.executor.slurm import submit, submit_dir, wait_for
from shikomi.executor.status import collect_status, print_status, submitted_job_ids
from shikomi.pipeline.chain import build_stage, run_chain_ray
from shikomi.pipeline.fingerprint import check_stage
from shikomi.pipeline.registry import CHAIN, CHAIN_ENTRIES, check_configs, entry, select

# (command, run folder) of each stage in chain order, for `shikomi status`
COMMAND_FOLDERS = [(e.command, e.folder) for e in CHAIN_ENTRIES]


def _say(msg: str) -> None:
    print(msg, flush=True)


def _check_stage_keys(cfg, stage_names: list[str]) -> None:
    for key in cfg.executor.slurm.stages:
        if key.split("/", 1)[0] not in CHAIN:
            raise UserError(f"executor.slurm.stages: unknown stage '{key}'; allowed: {', '.join(CHAIN)} (or stage/job)")


def _placeholder(cfg) -> str:
    p = submit_dir(cfg) / "placeholder" / "data"
    p.mkdir(parents=True, exist_ok=True)
    return str(p.parent)


def plan_stage(cfg, name: str, input_path: str | None, first: bool, dry_run: bool = False):
    """(stage, rebuild_on_node, deferred_reason). The first stage of a submission is
    built now from its real input; later ones are planned against a placeholder (in a
    dry run the first one too, when its input is not there: the scripts are shown)."""
    if first:
        try:
            return build_stage(name, cfg, input_path), False, None
        except UserError as e:
            if not dry_run:
                raise
            _say(f"  {name}: {e} (dry run: planned without it)")
    try:
        return build_stage(name, cfg, input_path), True, None
    except Exception as e:  # its input does not exist yet
        first_err = e
    try:
        return build_stage(name, cfg, _placeholder(cfg)), True, None
    except Exception as e:
        if isinstance(e, UserError) and str(e) == str(first_err) and str(cfg.run_dir) not in str(e):
            # the same mistake with any input: a config error, reported now (one that
            # names the run folder is about an output of an earlier stage, not made yet)
            raise
        return None, False, f"{type(first_err).__name__}: {first_err}"


def submit_chain(
    cfg, stage_names: list[str], input_path: str | None = None, dry_run: bool = False, force: bool = False
) -> dict:
    """Submit the stages in order, each job after the previous one. Each stage's
    config fingerprint is checked (and, unless a dry run, recorded) first: a stage
    folder made with another config stops the submission (`force` clears it)."""
    _check_stage_keys(cfg, stage_names)
    check_configs(cfg, stage_names)
    planned = []
    first = True
    for name in stage_names:
        if entry(name).is_stage:
            if not (force and dry_run):  # a dry run with --force clears nothing and checks nothing
                check_stage(name, cfg, input_path if first else None, force=force, record=not dry_run)
            st, rebuild, why = plan_stage(cfg, name, input_path if first else None, first, dry_run)
            planned.append((name, st, rebuild, why, "stage"))
        else:
            planned.append((name, None, False, None, "command"))
        first = False
    return submit(cfg, planned, input_path, dry_run)


def main(args, cfg) -> int:
    """`shikomi submit --config FILE [--stages a,b] [--dry-run] [--wait]`."""
    if cfg.executor.kind == "local":
        cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"kind": "slurm"})})
    names = select(getattr(args, "stages", None))
    if cfg.executor.kind == "ray":
        if args.dry_run:  # Ray runs the stages from here: a dry run checks the config and stops
            check_configs(cfg, names)
            _say(f"dry run: would run {', '.join(n for n in names if entry(n).is_stage)} of {cfg.run_dir} on Ray")
            return 0
        run_chain_ray(cfg, names, getattr(args, "input", None))
        return 0
    _say(f"submitting {', '.join(names)} of {cfg.run_dir} to Slurm" + (" (dry run)" if args.dry_run else ""))
    record = submit_chain(
        cfg, names, getattr(args, "input", None), dry_run=args.dry_run, force=getattr(args, "force", False)
    )
    if args.dry_run:
        _say(f"dry run: scripts in {submit_dir(cfg) / 'dry-run'}; nothing was submitted")
        return 0
    _say(f"submitted {len(submitted_job_ids(record))} jobs; `shikomi status {cfg.run_dir}` shows progress")
    if getattr(args, "wait", False):
        wait_for(submitted_job_ids(record), cfg.executor.slurm.poll_s)
        st = collect_status(cfg.run_dir, chain=COMMAND_FOLDERS)
        print_status(st)
        return 0 if st["complete"] else 1
    return 0


def main_status(args, cfg) -> int:
    """`shikomi status RUN_DIR [--json]`."""
    st = collect_status(args.run_dir, chain=COMMAND_FOLDERS)
    if getattr(args, "json", False):
        print(json.dumps(st, indent=2))
    else:
        print_status(st)
    return 0
