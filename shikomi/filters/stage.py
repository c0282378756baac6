"""`shikomi clean`: the configured profile's rules as one datatrove pipeline.

    reader (run_dir/dedup by default) -> CountIn -> rule 1 -> ... -> rule N -> StageWriter

Kept documents go to clean/data/, dropped ones to clean/rejected/ with
metadata.reject_reason = "rule:value"; stats.json has, per rule, documents and
characters in/out, drops and time spent.
"""

from __future__ import annotations

from shikomi.config import Config
from shikomi.core.documents import reader_for
from shikomi.core.jobs import Job, Stage
from shikomi.core.rules import CountIn
from shikomi.core.writers import StageWriter
from shikomi.errors import UserError
from shikomi.filters.decontam import Decontaminate
from shikomi.filters.profile import build_rules

STAGE = "clean"


def build(cfg: Config, input_path: str | None = None) -> Stage:
    clean = cfg.clean
    src = input_path or clean.input
    if not src:
        raise UserError("clean: no input (pass --input or set clean.input)")
    out_dir = str(cfg.stage_dir(STAGE))
    rules, notes = build_rules(clean)
    for n in notes:
        print(f"[clean] note: {n}")
    tasks = clean.tasks or cfg.executor.tasks
    # the last step: n-gram overlap with benchmark items (docs/clean.md, Decontamination)
    dc = clean.decontaminate
    decontam = [Decontaminate(dc, cache_dir=str(cfg.stage_dir(STAGE) / "decontaminate"))] if dc.benchmarks else []
    pipeline = [
        reader_for(src),
        CountIn(),
        *rules,
        *decontam,
        StageWriter(out_dir, write_rejected=clean.write_rejected),
    ]
    profile = {
        "profile": clean.profile,
        "rules": [{"rule": r.rule, **r.params.model_dump()} for r in rules],
        "notes": notes,
    }
    return Stage(
        name=STAGE,
        out_dir=out_dir,
        jobs=[Job("clean", pipeline, tasks=tasks)],
        extras=lambda _out: {"clean_profile": profile},
    )
