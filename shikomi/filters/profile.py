"""Clean profiles: which rules run, in which order, with which thresholds.

A profile is YAML:

    name: default
    rules:
      - normalize                      # a rule with its default parameters
      - hiragana_fraction: {min: 0.2}  # a rule with parameters
      ...

`CleanConfig.rules` overrides a profile per rule ({rule: {param: value}} or
{rule: false}); `CleanConfig.quality_labels` / `quality_model` configure the
`quality_classifier` rule.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from shikomi.errors import UserError
from shikomi.filters.base import CleanRule
from shikomi.filters.classifier import CLASSIFIER_RULE
from shikomi.filters.registry import RULES, make_rule, unknown_rule

PROFILES_DIR = Path(__file__).parent / "profiles"


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise UserError(f"clean profile file not found: {p}")
        return p
    p = PROFILES_DIR / f"{name}.yaml"
    if not p.is_file():
        raise UserError(
            f"unknown clean profile '{name}'; built-in: {', '.join(builtin_profiles())} (or a path to a YAML)"
        )
    return p


def load_profile(name: str) -> list[tuple[str, dict]]:
    """[(rule, params)] in order."""
    p = profile_path(name)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UserError(f"{p}: a clean profile needs a 'rules:' list")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((rule, params),) = item.items()
            if params is not None and not isinstance(params, dict):
                raise UserError(f"{p}: parameters of rule '{rule}' must be a mapping, got {params!r}")
            out.append((rule, dict(params or {})))
        else:
            raise UserError(f"{p}: each rule is a name or {{name: {{param: value}}}}, got {item!r}")
    for rule, _ in out:
        if rule not in RULES:
            raise UserError(unknown_rule(rule, str(p)))
    return out


def resolve_rules(clean_cfg) -> tuple[list[tuple[str, dict]], list[str]]:
    """The profile with the config's overrides applied: ([(rule, params)], notes)."""
    specs = load_profile(clean_cfg.profile)
    names = [r for r, _ in specs]
    notes: list[str] = []
    for rule, ov in (clean_cfg.rules or {}).items():
        if rule not in RULES:  # a typo, even in `rule: false`, is an error, not a rule left on
            raise UserError(unknown_rule(rule, "clean.rules"))
        if rule not in names:
            if ov is False:
                continue
            raise UserError(
                f"clean.rules: rule '{rule}' is not in profile '{clean_cfg.profile}' (rules: {', '.join(names)})"
            )
    out = []
    for rule, params in specs:
        ov = (clean_cfg.rules or {}).get(rule, True)
        if ov is False:
            notes.append(f"{rule}: turned off by clean.rules")
            continue
        if isinstance(ov, dict):
            params = {**params, **ov}
        if rule == CLASSIFIER_RULE:
            if params.get("model") and (clean_cfg.quality_model or clean_cfg.quality_labels):
                # the profile's threshold belongs to its model: another model starts from the
                # rule's default unless clean.rules sets one
                if not (isinstance(ov, dict) and "threshold" in ov):
                    params = {k: v for k, v in params.items() if k != "threshold"}
            if clean_cfg.quality_model:
                params = {**params, "model": clean_cfg.quality_model, "labels": None}
            elif clean_cfg.quality_labels:
                params = {**params, "labels": clean_cfg.quality_labels, "model": None}
            if not params.get("model") and not params.get("labels"):
                notes.append(f"{rule}: left out (set clean.quality_labels or clean.quality_model)")
                continue
        out.append((rule, params))
    return out, notes


def build_rules(clean_cfg) -> tuple[list[CleanRule], list[str]]:
    specs, notes = resolve_rules(clean_cfg)
    where = f"clean profile '{clean_cfg.profile}'"
    rules = [make_rule(r, p, where) for r, p in specs]
    seen = set()
    for r in rules:
        if r.rule in seen:
            raise UserError(f"{where}: rule '{r.rule}' is listed twice")
        seen.add(r.rule)
    return rules, notes


def check_config(cfg) -> None:
    """Validate `clean:` before anything runs: the profile, its rule names, the names
    and parameters in `clean.rules` (rules are only instantiated, nothing is loaded)."""
    build_rules(cfg.clean)
