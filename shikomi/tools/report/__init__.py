"""`shikomi report RUN_DIR`: one self-contained HTML page about a run.

Writes RUN_DIR/report/index.html (charts are matplotlib PNGs embedded as base64; no
network, no external files) and RUN_DIR/report/report.json (the numbers behind it).
Sections: the funnel from WARC records to training tokens (documents, characters and
tokens per stage of the chain and per rule), languages and language scores, dedup
cluster sizes, the realised mix by tokens against its target, characters per token
per source, training and per-source validation loss, and sampled dropped documents
per rule. A partial run shows what exists; every section says what it is missing.

    collect   the numbers, read from the run folder through shikomi.core.schemas
    charts    the matplotlib figures
    page      the HTML
"""

from __future__ import annotations

import json
from pathlib import Path

from shikomi.errors import UserError
from shikomi.tools.inspect import is_run_dir
from shikomi.tools.report.collect import FUNNEL_STAGES, collect
from shikomi.tools.report.page import render

__all__ = ["FUNNEL_STAGES", "collect", "main", "render", "resolve_run_dir", "write_report"]


def resolve_run_dir(args, cfg) -> Path:
    rd = getattr(args, "run_dir", None) or getattr(args, "output", None)
    if not rd and cfg is not None:
        rd = cfg.report.input or cfg.run_dir
    if not rd:
        raise UserError("report: give a run folder (shikomi report RUN_DIR)")
    p = Path(rd)
    if not p.is_dir():
        raise UserError(f"{p}: no such run folder")
    if not is_run_dir(p):
        raise UserError(
            f"{p}: not a run folder (expected stage folders such as {p}/extract or {p}/clean with stats.json)"
        )
    return p


def write_report(run_dir: Path, cfg=None) -> Path:
    data = collect(run_dir, cfg)
    page = render(data, cfg)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "index.html")
    slim = {k: v for k, v in data.items() if k != "samples"}
    (out / "report.json").write_text(
        json.dumps(slim, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8"
    )
    return out / "index.html"


def main(args, cfg=None) -> int:
    run_dir = resolve_run_dir(args, cfg)
    path = write_report(run_dir, cfg)
    print(f"[report] {path} ({path.stat().st_size / 1024:,.0f} KiB)")
    return 0
