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
from pathlib import Path

from .errors import UserError

# stage name -> (config section, "module:builder"); builders return a shikomi.stage.Stage
STAGES: dict[str, tuple[str, str]] = {
    "extract": ("extract", "shikomi.pipeline.extract:build"),
    "langid": ("langid", "shikomi.pipeline.langid:build"),
    "dedup": ("dedup", "shikomi.dedup.stage:build"),
    "clean": ("clean", "shikomi.filters.stage:build"),
    "mix": ("mix", "shikomi.pipeline.mix:build"),
    "train-tokenizer": ("tokenizer", "shikomi.tokenize.train_tokenizer:build"),
    "tokenize": ("tokenize", "shikomi.tokenize.stage:build"),
}
# commands that run their own code (not a datatrove stage): "module:main(args, cfg)"
COMMANDS: dict[str, str] = {
    "train": "shikomi.train.launch:main",
    "report": "shikomi.pipeline.report:main",
    "inspect": "shikomi.pipeline.inspect:main",
    "find": "shikomi.pipeline.find:main_find",
    "batch": "shikomi.pipeline.find:main_batch",
    "submit": "shikomi.pipeline.submit:main",
    "status": "shikomi.pipeline.submit:main_status",
    "clean-eval": "shikomi.filters.evaluate:main",
    "export-hf": "shikomi.train.export_hf:main",
    "experiment": "shikomi.pipeline.experiment:main",
}


def stage_folder(name: str) -> str:
    """The run-folder sub-folder a stage command writes (train-tokenizer -> tokenizer):
    each stage writes the folder named like its config section."""
    return STAGES[name][0] if name in STAGES else name


def stage_command(folder: str) -> str:
    """The command of the stage that writes `folder` (tokenizer -> train-tokenizer)."""
    return next((k for k, (section, _) in STAGES.items() if section == folder), folder)


CHAIN = ["extract", "langid", "dedup", "clean", "mix", "train-tokenizer", "tokenize", "train", "report"]


def _load(target: str, what: str):
    mod_name, fn = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("shikomi"):
            raise UserError(f"'{what}' is not built yet in this version of shikomi") from None
        raise
    return getattr(mod, fn)


def _common(p: argparse.ArgumentParser, needs_config: bool = False) -> None:
    p.add_argument("--config", "-c", help="YAML config (default: built-in defaults)", required=needs_config)
    p.add_argument("--input", "-i", help="input path (overrides the config)")
    p.add_argument("--output", "-o", help="run folder (overrides run_dir); the stage writes <output>/<stage>/")
    p.add_argument("--executor", choices=["local", "slurm", "ray"], help="override executor.kind")
    p.add_argument("--tasks", type=int, help="number of tasks (input shards)")
    p.add_argument("--workers", type=int, help="tasks run at once (local)")
    p.add_argument("--force", action="store_true", help="delete this stage's previous output first")
    p.add_argument("--verbose", "-v", action="store_true", help="show datatrove's task logs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set dedup.threshold=0.7 (repeatable)")
    p.add_argument("--scale", choices=["full", "tiny"], default="full",
                   help="tiny: use the config's CPU-sized variant (NAME.tiny.yaml beside NAME.yaml)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="shikomi", description="Japanese-first pretraining corpus builder and trainer")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in STAGES:
        _common(sub.add_parser(name, help=f"run the {name} stage"))
    p = sub.add_parser("run", help="run every stage in order")
    _common(p)
    p.add_argument("--stages", help="comma-separated subset of: " + ",".join(CHAIN))
    p = sub.add_parser("train", help="train the model on the token shards (launches torchrun)")
    _common(p)
    p.add_argument("--resume", action="store_true", help="resume from the latest complete checkpoint")
    p.add_argument("--nproc", type=int, help="processes per node (default from config)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p = sub.add_parser("report", help="write RUN_DIR/report/index.html")
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
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for a quality classifier trained on these labels")
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)")
    return ap


def _parse_set(items: list[str]) -> dict:
    import yaml

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        key, val = item.split("=", 1)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(val)
    return out


def config_from_args(args, stage_section: str | None = None):
    from .config import load_config

    overrides = _parse_set(getattr(args, "set", []) or [])
    if getattr(args, "output", None):
        overrides["run_dir"] = args.output
    if getattr(args, "executor", None):
        overrides.setdefault("executor", {})["kind"] = args.executor
    if getattr(args, "workers", None):
        overrides.setdefault("executor", {})["workers"] = args.workers
    if stage_section and getattr(args, "tasks", None):
        overrides.setdefault(stage_section, {})["tasks"] = args.tasks
    return load_config(scaled_config_path(getattr(args, "config", None), getattr(args, "scale", None)), overrides)


def scaled_config_path(path: str | None, scale: str | None) -> str | None:
    """`--scale tiny`: configs/recipes/X.yaml -> configs/recipes/X.tiny.yaml."""
    if not path or scale in (None, "full") or Path(path).name.endswith(f".{scale}.yaml"):
        return path
    p = Path(path)
    tiny = p.with_name(f"{p.name[:-5] if p.name.endswith('.yaml') else p.stem}.{scale}.yaml")
    if not tiny.is_file():
        raise UserError(f"--scale {scale}: {tiny} does not exist (a {scale} variant of {p})")
    return str(tiny)


def _si(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:,.0f}"


def print_summary(stats: dict, out_dir: Path) -> None:
    """The one-screen summary printed when a stage ends."""
    name = stats.get("stage", "?")
    din, dout = stats.get("documents_in", 0), stats.get("documents_out", 0)
    cin, cout = stats.get("chars_in", 0), stats.get("chars_out", 0)

    def pct(a, b):
        return f" ({a / b:.1%})" if b else ""

    line = f"[{name}] {din:,} documents in -> {dout:,} kept{pct(dout, din)}, {stats.get('documents_dropped', 0):,} dropped"
    if "wall_s" in stats:
        rate = din / stats["wall_s"] if stats["wall_s"] else 0
        line += f" in {stats['wall_s']:.1f}s ({rate:,.0f} docs/s)"
    print(line)
    if cin or cout:
        print(f"  characters {_si(cin)} -> {_si(cout)}" + (pct(cout, cin) if cin else ""))
    if stats.get("skipped"):
        print("  skipped records: " + ", ".join(f"{k}={v:,}" for k, v in stats["skipped"].items()))
    if stats.get("languages"):
        langs = sorted(stats["languages"].items(), key=lambda kv: -(kv[1] if isinstance(kv[1], (int, float)) else 0))
        print("  languages: " + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in langs[:8]))
    rule_time = {}
    for r in stats.get("rules") or []:
        for rule in (r.get("dropped") or {}):
            rule_time[rule] = rule_time.get(rule, 0) + r.get("time_s", 0)
    dropped = sorted((stats.get("dropped") or {}).items(), key=lambda kv: -kv[1]["documents"])
    for rule, d in dropped[:10]:
        t = f" {rule_time[rule]:>7.1f}s" if rule in rule_time else ""
        print(f"  dropped {rule:<30} {d['documents']:>9,} docs{pct(d['documents'], din):>9} {d['chars']:>13,} chars{t}")
    if len(dropped) > 10:
        print(f"  ... {len(dropped) - 10} more rules in stats.json")
    if "tokens_out" in stats:
        print(f"  tokens out: {stats['tokens_out']:,}")
    print(f"  output: {out_dir}/  stats: {out_dir}/stats.json")
    if dropped:
        print(f"  see why: shikomi inspect {out_dir} --reason {dropped[0][0]}")


def run_one_stage(name: str, cfg, input_path: str | None, args) -> dict:
    from .pipeline.executors import reset_stage, run_stage

    section, target = STAGES[name]
    build = _load(target, name)
    if getattr(args, "force", False):
        reset_stage(cfg.stage_dir(section))  # before build: a builder may check its previous output
    stage = build(cfg, input_path)
    if getattr(args, "force", False) and stage.path != cfg.stage_dir(section):
        reset_stage(stage.path)
    stats = run_stage(stage, cfg, kind=cfg.executor.kind, workers=getattr(args, "workers", None),
                      verbose=getattr(args, "verbose", False))
    print_summary(stats, stage.path)
    return stats


def cmd_run(args) -> int:
    cfg = config_from_args(args)
    stages = args.stages.split(",") if args.stages else CHAIN
    unknown = [s for s in stages if s not in CHAIN]
    if unknown:
        raise UserError(f"unknown stage(s) {unknown}; allowed: {', '.join(CHAIN)}")
    t0 = time.time()
    for name in CHAIN:
        if name not in stages:
            continue
        if name in STAGES:
            run_one_stage(name, cfg, None, args)
        else:
            fn = _load(COMMANDS[name], name)
            ns = argparse.Namespace(**vars(args))
            ns.run_dir = str(cfg.run_dir)
            for k in ("resume", "nproc", "max_steps"):
                setattr(ns, k, getattr(ns, k, None))
            fn(ns, cfg)
    print(f"run finished in {time.time() - t0:.1f}s: {cfg.run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command in STAGES:
            cfg = config_from_args(args, STAGES[args.command][0])
            run_one_stage(args.command, cfg, args.input, args)
            return 0
        fn = _load(COMMANDS[args.command], args.command)
        cfg = None
        if args.command not in ("inspect", "status"):
            if args.command in ("train",):
                cfg = config_from_args(args, "train")
            else:
                cfg = config_from_args(args)
        rc = fn(args, cfg)
        return int(rc or 0)
    except UserError as e:
        print(f"shikomi: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shikomi: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
