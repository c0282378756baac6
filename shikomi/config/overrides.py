"""Command-line overrides of a config: `--set KEY=VALUE`, `--output`, `--executor`,
`--workers`, `--tasks` and `--scale tiny` (NAME.tiny.yaml beside NAME.yaml)."""

from __future__ import annotations

from pathlib import Path

from shikomi.config import load_config
from shikomi.errors import UserError


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
