"""The `shikomi` command line: one subcommand per stage, plus run, submit and tools.

    shikomi <stage> --config FILE [--input PATH] [--output DIR]
                    [--executor local|slurm|ray] [--tasks N] [--workers N]

`--output` is the run folder: a stage writes `<output>/<stage>/`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from shikomi.errors import UserError
from shikomi.pipeline.registry import CHAIN, CHAIN_ENTRIES, REGISTRY, select

# commands outside the chain: "module:main(args, cfg)", imported only when run
COMMANDS: dict[str, str] = {
    "inspect": "shikomi.tools.inspect:main",
    "find": "shikomi.tools.find:main_find",
    "batch": "shikomi.tools.find:main_batch",
    "submit": "shikomi.pipeline.submit:main",
    "status": "shikomi.pipeline.submit:main_status",
    "clean-eval": "shikomi.filters.evaluate:main",
    "export-hf": "shikomi.train.export_hf:main",
    "experiment": "shikomi.tools.experiment:main",
}
# commands that take no config
NO_CONFIG = {"inspect", "status"}
# commands (besides the stages) that write into the run folder: checked before they start
WRITES_RUN_DIR = {"train", "submit", "experiment"}


def _load(target: str):
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def _writable_folder(path) -> None:
    """A one-line error, before anything runs, when the run folder cannot be created
    or written (a path under a file, a read-only or virtual file system)."""
    import tempfile
    from pathlib import Path

    p = Path(path).absolute()
    # the nearest folder that exists: probed with a temporary file, so that a command
    # failing for another reason leaves no empty run folder behind
    anc = next((a for a in [p, *p.parents] if a.exists()), None)
    if anc is not None and not anc.is_dir():
        raise UserError(f"output folder {path}: cannot write there ({anc} is a file)")
    try:
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as e:
        raise UserError(f"output folder {path}: cannot write there ({e.strerror or type(e).__name__})") from None


def _common(p: argparse.ArgumentParser, needs_config: bool = False) -> None:
    p.add_argument("--config", "-c", help="YAML config (default: built-in defaults)", required=needs_config)
    p.add_argument(
        "--input",
        "-i",
        action="append",
        help="input path, glob or URL (overrides the config); repeat it or separate several with commas",
    )
    p.add_argument("--output", "-o", help="run folder (overrides run_dir); the stage writes <output>/<stage>/")
    p.add_argument("--executor", choices=["local", "slurm", "ray"], help="override executor.kind")
    p.add_argument("--tasks", type=int, help="number of tasks (input shards), >= 1")
    p.add_argument("--workers", type=int, help="tasks run at once (local), >= 1")
    p.add_argument("--force", action="store_true", help="delete this stage's previous output first")
    p.add_argument("--verbose", "-v", action="store_true", help="show datatrove's task logs")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set dedup.threshold=0.7 (repeatable)",
    )
    p.add_argument(
        "--scale",
        choices=["full", "tiny"],
        default="full",
        help="tiny: use the config's CPU-sized variant (NAME.tiny.yaml beside NAME.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="shikomi", description="Japanese-first pretraining corpus builder and trainer")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for e in CHAIN_ENTRIES:
        if e.is_stage:
            p = sub.add_parser(e.command, help=e.help)
            _common(p)
            if e.command == "extract":
                p.add_argument("--dry-run", action="store_true", help="print the files and bytes it would read; no run")
    p = sub.add_parser("run", help="run every stage in order")
    _common(p)
    p.add_argument("--stages", help="comma-separated subset of: " + ",".join(CHAIN))
    p = sub.add_parser("train", help=REGISTRY["train"].help)
    _common(p)
    p.add_argument("--resume", action="store_true", help="resume from the latest complete checkpoint")
    p.add_argument("--nproc", type=int, help="processes per node (default from config)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p = sub.add_parser("report", help=REGISTRY["report"].help)
    p.add_argument("run_dir", nargs="?")
    p.add_argument("--config", "-c")
    p.add_argument("--output", "-o")
    p = sub.add_parser("inspect", help="browse a stage folder, Parquet file or token folder")
    p.add_argument("path")
    p.add_argument("--reason", help="only rejected documents of this rule")
    p.add_argument("--lang")
    p.add_argument("--source")
    p.add_argument("--grep", help="regular expression on the text")
    p.add_argument("--id", dest="doc_id")
    p.add_argument("-n", "--limit", type=int, default=5, help="documents to show")
    p.add_argument("--seed", type=int, default=0, help="sample seed")
    p.add_argument("--json", action="store_true", help="JSON lines for scripts")
    p.add_argument("--chars", type=int, default=400, help="characters of text to show per document (0 = all)")
    p = sub.add_parser("find", help="where a text occurs in the final token shards")
    p.add_argument("text")
    p.add_argument("run_dir")
    p.add_argument("--config", "-c")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ngram", action="store_true", help="also report n-gram similar documents")
    p = sub.add_parser("batch", help="list the documents of a training step")
    p.add_argument("step", type=int)
    p.add_argument("run_dir")
    p.add_argument("--config", "-c")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("submit", help="submit the chain to Slurm (or Ray)")
    _common(p, needs_config=True)
    p.add_argument("--stages", help="comma-separated subset of stages")
    p.add_argument("--dry-run", action="store_true", help="write and print the sbatch scripts, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
    p = sub.add_parser("status", help="which stages and tasks are done, running or failed")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("clean-eval", help="score the clean profile against labelled JSONL")
    p.add_argument("--config", "-c")
    p.add_argument("--labels", required=True, help="JSONL with text and label (good/bad)")
    p.add_argument("--group", type=int, default=1, help="join this many same-label lines into one document")
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds for a quality classifier trained on these labels"
    )
    p.add_argument("--profile", help="compare these profiles side by side (comma-separated), with HojiChar's chain")
    p.add_argument("--no-hojichar", action="store_true", help="with --profile: leave out HojiChar's own chain")
    p.add_argument(
        "--held-out", action="store_true", help="only the lines the shipped model never saw, scored by it as shipped"
    )
    p.add_argument("--plot", help="with --profile: also write good kept vs bad dropped as a PNG here")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export-hf", help="export a checkpoint as a transformers Llama model")
    p.add_argument("--config", "-c")
    p.add_argument("--output", "-o", help="run folder (default: run_dir)")
    p.add_argument("--checkpoint", help="checkpoint folder (default: latest complete)")
    p.add_argument("--dest", help="output folder (default: <run_dir>/hf)")
    p = sub.add_parser("experiment", help="experiments, e.g. mix-scaling")
    p.add_argument("name", choices=["mix-scaling"])
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--output", "-o")
    p.add_argument("--scale", choices=["full", "tiny"], default="full", help="tiny: NAME.tiny.yaml beside NAME.yaml")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    for name in ("report", "find", "batch", "clean-eval", "export-hf"):  # `--scale` wherever `--config` is taken
        sub.choices[name].add_argument(
            "--scale", choices=["full", "tiny"], default="full", help="tiny: NAME.tiny.yaml beside NAME.yaml"
        )
    return ap


def cmd_run(args) -> int:
    from shikomi.config.overrides import config_from_args
    from shikomi.pipeline.chain import run_chain

    cfg = config_from_args(args)
    names = select(args.stages)
    _writable_folder(cfg.run_dir)
    t0 = time.time()
    run_chain(cfg, names, args)
    print(f"run finished in {time.time() - t0:.1f}s: {cfg.run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    if isinstance(getattr(args, "input", None), list):  # --input A --input B,C -> "A,B,C"
        args.input = ",".join(args.input)
    try:
        for opt in ("tasks", "workers"):
            if getattr(args, opt, None) is not None and getattr(args, opt) < 1:
                raise UserError(f"--{opt} must be >= 1, got {getattr(args, opt)}")
        if args.command == "run":
            return cmd_run(args)
        e = REGISTRY.get(args.command)
        # the config and the chain are imported only now: `shikomi --help` and
        # `shikomi inspect` stay fast
        from shikomi.config.overrides import config_from_args

        if e is not None and not e.sharded and getattr(args, "tasks", None) not in (None, 1):
            raise UserError(f"`shikomi {e.command}` runs as one task; --tasks does not apply to it")
        if e is not None and e.is_stage:
            from shikomi.pipeline.chain import run_one

            cfg = config_from_args(args, e.section)
            _writable_folder(cfg.run_dir)
            if getattr(args, "dry_run", False):
                from shikomi.extract.stage import dry_run

                print(dry_run(cfg, args.input))
                return 0
            run_one(e.command, cfg, args.input, force=args.force, workers=args.workers, verbose=args.verbose)
            return 0
        fn = e.load() if e is not None else _load(COMMANDS[args.command])
        cfg = None
        if args.command not in NO_CONFIG:
            cfg = config_from_args(args, e.section if e is not None else None)
            if args.command in WRITES_RUN_DIR:
                _writable_folder(cfg.run_dir)
        rc = fn(args, cfg)
        return int(rc or 0)
    except UserError as e:
        print(f"shikomi: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: a bug, with its traceback
            raise
        print(f"shikomi: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shikomi: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
