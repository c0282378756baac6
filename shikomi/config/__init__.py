"""The run configuration: one YAML file, validated with pydantic.

Every stage has its own section (in its own module here). Unknown keys and bad
values are reported as one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from shikomi.config.base import Section
from shikomi.config.clean import CleanConfig
from shikomi.config.dedup import DedupConfig
from shikomi.config.executor import ExecutorConfig
from shikomi.config.experiment import ExperimentConfig
from shikomi.config.extract import ExtractConfig
from shikomi.config.langid import LangidConfig
from shikomi.config.mix import MixConfig
from shikomi.config.report import ReportConfig
from shikomi.config.tokenize import TokenizeConfig
from shikomi.config.tokenizer import TokenizerConfig
from shikomi.config.train import TrainConfig
from shikomi.errors import UserError


class Config(Section):
    name: str = "shikomi"
    run_dir: str = "runs/default"
    seed: int = 1234
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    langid: LangidConfig = Field(default_factory=LangidConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)

    # Where the YAML came from (relative paths in it are relative to the cwd, as
    # users type them on the command line).
    source_path: str | None = Field(None, exclude=True)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)

    def stage_dir(self, stage: str) -> Path:
        return self.run_path / stage


def _format_error(err: ValidationError, where: str) -> str:
    e = err.errors()[0]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".") or "(top level)"
    value = e.get("input")
    kind = e["type"]
    if kind == "extra_forbidden":
        parent = e["loc"][:-1]
        allowed = _allowed_keys(parent)
        close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown key '{key}' (value {value!r}){hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "literal_error":
        allowed = e.get("ctx", {}).get("expected", "")
        return f"{where}: bad value for '{key}': {value!r}; allowed: {allowed}"
    msg = e["msg"]
    return f"{where}: bad value for '{key}': {value!r} ({msg})"


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys of the section at `loc` (through list items, `mix.sources[0]`, and
    mapping values, `executor.slurm.stages.clean`)."""
    model: Any = Config
    for part in loc:
        if isinstance(model, type) and issubclass(model, Section):
            field = model.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            model = field.annotation
        elif typing.get_origin(model) in (list, dict):  # an item or a value: its type
            model = typing.get_args(model)[-1]
        else:
            return []
        while typing.get_origin(model) in (typing.Union, types.UnionType):  # `X | None`
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
    if isinstance(model, type) and issubclass(model, Section):
        return sorted(k for k in model.model_fields if k != "source_path")
    return []


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_dict(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of sections, got {type(data).__name__}")
    # `base: other.yaml` composes configs (recipes and their tiny variants).
    base = data.pop("base", None)
    if base is not None:
        data = _deep_merge(load_dict(p.parent / base), data)
    return data


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load and validate a config; with no path, the defaults."""
    data = load_dict(path) if path else {}
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e, str(path or "config"))) from None
    cfg.source_path = str(path) if path else None
    _check_gate_sources(cfg, str(path or "config"))
    return cfg


def _check_gate_sources(cfg: Config, where: str) -> None:
    """The Japanese gate skips non-Japanese pages before extraction, so a mix source
    reading this run's `langid/<xx>` (xx not ja) would find nothing: say so up front."""
    run = os.path.abspath(cfg.run_dir)

    def rel(path: str) -> list[str]:
        return os.path.relpath(os.path.abspath(path.replace("{run_dir}", cfg.run_dir)), run).split(os.sep)

    if not cfg.extract.japanese_gate.enabled or (cfg.langid.input and rel(cfg.langid.input)[0] != "extract"):
        return  # no gate, or langid reads documents the gate never saw
    for i, src in enumerate(cfg.mix.sources):
        if not src.path or "://" in src.path:
            continue
        parts = rel(src.path)
        if len(parts) >= 2 and parts[0] == "langid" and parts[1] not in ("ja", "rejected", "*"):
            raise UserError(
                f"{where}: mix.sources[{i}] ({src.name}) reads {src.path}, but extract.japanese_gate skips "
                f"non-Japanese pages before extraction, so langid/{parts[1]} gets almost none; set "
                f"extract.japanese_gate.enabled: false or take {src.name} from another source"
            )


__all__ = ["Config", "load_config", "load_dict", "UserError"]
