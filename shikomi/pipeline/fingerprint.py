"""Config fingerprints: which config made a stage folder.

Before a stage writes anything, `<stage>/fingerprint.json` records the values that
determine its output: the stage's config section, the seed, its number of tasks (the
sharding of its input), its input and the fingerprints of the stage folders it reads.
A stage started again with other values stops with one line naming the keys that
changed (`--force` clears the folder and starts over); with equal values it resumes,
and a stage whose stats.json is written says it is already complete.

Executor settings that do not change the output (workers, executor kind, Slurm
resources) are left out, so a stage started locally can be resumed on Slurm.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shikomi.core.schemas import StageFingerprint
from shikomi.errors import UserError
from shikomi.executor.local import reset_stage
from shikomi.pipeline.registry import StageEntry, entry

# config keys a stage reads outside its own section (its own section and the seed
# always count)
EXTRA_KEYS: dict[str, tuple[str, ...]] = {"extract": ("langid.model",)}
# stage folders a stage reads besides its input
EXTRA_UPSTREAM: dict[str, tuple[str, ...]] = {"tokenize": ("tokenizer",)}
# how many changed keys the error names
SHOWN_CHANGES = 6


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):  # an empty mapping adds no key: the same as unset
        for k in sorted(value):
            _flatten(value[k], f"{prefix}.{k}", out)
    else:
        out[prefix] = value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in _strings(v)] if isinstance(value, list) else []


def _get(dump: dict, dotted: str) -> Any:
    node: Any = dump
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def stage_folder_of(path: str | Path) -> Path | None:
    """The stage folder (one with a fingerprint.json) that holds `path`: the folder
    itself, or its parent for a language folder such as `langid/ja`."""
    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if (cand / StageFingerprint.FILENAME).is_file():
            return cand
    return None


def _upstream(path: str | Path) -> str | None:
    folder = stage_folder_of(path)
    if folder is None:
        return None
    fp = StageFingerprint.read(folder, missing_ok=True)
    return fp.fingerprint if fp is not None else None


def stage_values(name: str, cfg, input_path: str | None = None) -> dict[str, Any]:
    """The flattened values that determine the output of chain stage `name`."""
    e: StageEntry = entry(name)
    dump = cfg.model_dump(mode="json")
    section = dict(dump.get(e.section) or {})
    section.pop("tasks", None)  # counted below as the tasks the stage runs with
    values: dict[str, Any] = {}
    _flatten(section, e.section, values)
    values["seed"] = dump.get("seed")
    for key in EXTRA_KEYS.get(name, ()):
        values[key] = _get(dump, key)
    tasks = getattr(getattr(cfg, e.section), "tasks", None) or cfg.executor.tasks
    values[f"{e.section}.tasks"] = tasks if e.sharded else 1
    inp = input_path or getattr(getattr(cfg, e.section), "input", None)
    if inp is None and e.upstream is not None:
        inp = str(cfg.stage_dir(e.upstream))
    if input_path is not None:
        values[f"{e.section}.input"] = input_path
    paths = [inp] if isinstance(inp, str) else list(inp or [])
    run_dir = str(cfg.run_dir)
    for v in _strings(list(values.values())):  # other stage folders the section names (mix.sources[i].path)
        if v.startswith("{run_dir}") or v.startswith(run_dir + "/"):
            paths.append(v.replace("{run_dir}", run_dir))
    for p in paths:
        up = _upstream(p)
        if up is not None:
            values[f"upstream.{stage_folder_of(p).name}"] = up  # type: ignore[union-attr]
    for folder in EXTRA_UPSTREAM.get(name, ()):
        up = _upstream(cfg.stage_dir(folder))
        if up is not None:
            values[f"upstream.{folder}"] = up
    return values


def fingerprint_of(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:37] + "..."


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key old -> new` for every key that differs, sorted."""
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k, "<unset>") != new.get(k, "<unset>"):
            a = _short(old[k]) if k in old else "unset"
            b = _short(new[k]) if k in new else "unset"
            out.append(f"{k} {a} -> {b}" if not k.startswith("upstream.") else f"{k} (rerun with another config)")
    return out


def has_output(folder: Path) -> bool:
    """Whether a stage folder holds anything a run wrote (a new or empty one does not)."""
    return folder.is_dir() and any(folder.iterdir())


def check_stage(name: str, cfg, input_path: str | None = None, *, force: bool = False, record: bool = True) -> str:
    """Compare the stage's recorded fingerprint with this config's, before it runs.

    Returns "new" (nothing there yet, or `force`: the folder was cleared), "resume"
    (the same config; unfinished tasks run) or "complete" (the same config and
    stats.json is written). Raises UserError naming the changed keys when the folder
    was made with another config. With `record`, writes fingerprint.json (a dry run
    does not)."""
    e = entry(name)
    folder = cfg.stage_dir(e.folder)
    values = stage_values(name, cfg, input_path)
    fp = fingerprint_of(values)
    state, old = "new", None
    if force:
        reset_stage(folder)
    else:
        old = StageFingerprint.read(folder, missing_ok=True)
        if old is not None and old.fingerprint != fp:
            changes = changed_keys(old.values, values)
            more = f" and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
            raise UserError(
                f"{folder} was made with a different config (changed: {'; '.join(changes[:SHOWN_CHANGES])}{more}); "
                f"rerun with --force to clear it and run `{name}` again, or choose another --output"
            )
        if old is not None or has_output(folder):
            state = "complete" if (folder / "stats.json").is_file() else "resume"
    if record and (state != "complete" or old is None):
        folder.mkdir(parents=True, exist_ok=True)
        StageFingerprint.parse({"stage": name, "fingerprint": fp, "values": values}).write(folder)
    return state
