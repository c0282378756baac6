"""stats.json: what a stage kept and dropped, summed from datatrove's per-task stats.

Counting convention (datatrove stat keys, summed over tasks into stats.json):
    docs_in / chars_in             documents entering the stage's rules
    docs_out / chars_out           documents written to data/
    dropped/<rule>, dropped_chars/<rule>
    skipped/<reason>               input records that never became documents (extract,
                                   undecodable or invalid JSONL lines, unreadable files)
    skipped_file/<reason>/<path>   the same, per input file (stats.json `skipped_files`)
    tokens_out                     where known

The file's schema is `shikomi.core.schemas.StageStats`: `WriteStageStats` writes it
through the schema (the stage's extras included), every reader reads it the same way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.core.schemas import StageStats


def merge_task_stats(logs_dir: Path) -> list[dict]:
    """Sum datatrove's per-task stats files of one job, step by step."""
    from datatrove.utils.stats import PipelineStats

    total = None
    for f in sorted((logs_dir / "stats").glob("*.json")):
        ps = PipelineStats.from_json(json.loads(f.read_text()))
        total = ps if total is None else total + ps
    if total is None:
        return []
    return [st.to_dict() for st in total.stats]


def stat_total(v) -> float:
    if isinstance(v, dict):
        return v.get("total", 0)
    return v or 0


def summarize(stage_name: str, out_dir: str, job_names: list[str]) -> dict:
    """Build the stage summary from the datatrove stats of its jobs."""
    out = Path(out_dir)
    jobs = {}
    steps = []
    for jn in job_names:
        merged = merge_task_stats(out / "logs" / jn)
        jobs[jn] = merged
        for step in merged:
            steps.append({"job": jn, **step})

    def collect(step_filter) -> dict[str, float]:
        acc: dict[str, float] = {}
        for s in steps:
            if not step_filter(s):
                continue
            for k, v in (s.get("stats") or {}).items():
                acc[k] = acc.get(k, 0) + stat_total(v)
        return acc

    # stage-level in: the first CountIn of the first job; out: the writers
    first_job = job_names[0] if job_names else None
    count_in: dict[str, float] = {}
    for s in steps:  # the first step of the first job that counts documents in
        if s["job"] == first_job and "docs_in" in (s.get("stats") or {}):
            count_in = collect(lambda x, _n=s.get("name"): x["job"] == first_job and x.get("name") == _n)
            break
    writers = collect(lambda s: s.get("name", "").endswith("write") or "write" in s.get("name", "").split(":")[-1])
    everything = collect(lambda s: True)

    dropped: dict[str, dict] = {}
    for k, v in writers.items():
        if k.startswith("dropped/"):
            rule = k.split("/", 1)[1]
            dropped.setdefault(rule, {"documents": 0, "chars": 0})["documents"] = int(v)
        elif k.startswith("dropped_chars/"):
            rule = k.split("/", 1)[1]
            dropped.setdefault(rule, {"documents": 0, "chars": 0})["chars"] = int(v)
    skipped = {k.split("/", 1)[1]: int(v) for k, v in everything.items() if k.startswith("skipped/")}
    skipped_files: dict[str, dict[str, int]] = {}  # input files with skipped lines or records, per reason
    for k, v in everything.items():
        if k.startswith("skipped_file/") and v:
            reason, path = k.split("/", 2)[1:]
            skipped_files.setdefault(path, {})[reason] = int(v)

    rules = []
    for s in steps:
        st = s.get("stats") or {}
        if "docs_in" not in st or "count in" in s.get("name", ""):
            continue
        d_in = stat_total(st.get("docs_in"))
        rules.append(
            {
                "job": s["job"],
                "step": s.get("name"),
                "documents_in": int(d_in),
                "documents_out": int(stat_total(st.get("docs_out"))),
                "chars_in": int(stat_total(st.get("chars_in"))),
                "chars_out": int(stat_total(st.get("chars_out"))),
                "dropped": {k.split("/", 1)[1]: int(stat_total(v)) for k, v in st.items() if k.startswith("dropped/")},
                "time_s": round(float((s.get("time_stats") or {}).get("total", 0.0)), 4),
                # transforms that count what they changed (clean: pii_* masked, decontaminate cut)
                **{k: int(stat_total(st[k])) for k in ("masked", "masked_docs", "found", "found_docs") if k in st},
                **(
                    {"cut": {k.split("/", 1)[1]: int(stat_total(v)) for k, v in st.items() if k.startswith("cut/")}}
                    if any(k.startswith("cut/") for k in st)
                    else {}
                ),
            }
        )

    docs_out = int(writers.get("docs_out", 0))
    n_dropped = sum(d["documents"] for d in dropped.values())
    summary = {
        "stage": stage_name,
        "documents_in": int(count_in.get("docs_in", docs_out + n_dropped)),
        "chars_in": int(count_in.get("chars_in", 0)),
        "documents_out": docs_out,
        "chars_out": int(writers.get("chars_out", 0)),
        "documents_dropped": n_dropped,
        "dropped": dict(sorted(dropped.items())),
        "skipped": dict(sorted(skipped.items())),
        "rules": rules,
    }
    if skipped_files:
        summary["skipped_files"] = dict(sorted(skipped_files.items()))
    if "tokens_out" in everything:
        summary["tokens_out"] = int(everything["tokens_out"])
    if "copies" in everything:  # a stage that writes a document more than once (mix's repeats)
        summary["documents_repeated"] = int(everything["copies"] - everything.get("documents_sampled", 0))
    summary["jobs"] = jobs
    return summary


class WriteStageStats(PipelineStep):
    """The last job of every stage: writes `<stage>/stats.json`."""

    name = "stage stats"
    type = "📊 - STATS"

    def __init__(self, stage_name: str, out_dir: str, job_names: list[str], extras=None):
        super().__init__()
        self.stage_name = stage_name
        self.out_dir = out_dir
        self.job_names = job_names
        self.extras = extras

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if rank != 0:
            return
        summary = summarize(self.stage_name, self.out_dir, self.job_names)
        if self.extras is not None:
            summary.update(self.extras(self.out_dir) or {})
        summary["written_at_unix"] = int(time.time())
        StageStats.parse(summary, Path(self.out_dir) / StageStats.FILENAME).write(self.out_dir)
        return
        yield


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

    repeated = stats.get("documents_repeated", 0)
    kept = dout - repeated  # distinct documents: a repeated copy is not one more kept
    line = (
        f"[{name}] {din:,} documents in -> {kept:,} kept{pct(kept, din)}, {stats.get('documents_dropped', 0):,} dropped"
    )
    if repeated:
        line += f"; {dout:,} written with {repeated:,} repeated copies"
    if "wall_s" in stats:
        rate = din / stats["wall_s"] if stats["wall_s"] else 0
        line += f" in {stats['wall_s']:.1f}s ({rate:,.0f} docs/s)"
    print(line)
    if cin or cout:
        print(f"  characters {_si(cin)} -> {_si(cout)}" + (pct(cout, cin) if cin else ""))
    if stats.get("network"):  # extract: files read over HTTP(S)
        n = stats["network"]
        print(f"  network: {n.get('files', 0):,} files, {n.get('bytes', 0):,} bytes, {n.get('retries', 0):,} retries")
    if stats.get("skipped"):
        print("  skipped records: " + ", ".join(f"{k}={v:,}" for k, v in stats["skipped"].items()))
    files = stats.get("skipped_files") or {}
    for path, reasons in list(files.items())[:5]:
        print(f"  skipped in {path}: " + ", ".join(f"{k}={v:,}" for k, v in reasons.items()))
    if len(files) > 5:
        print(f"  ... {len(files) - 5} more files with skipped records in stats.json (skipped_files)")
    if stats.get("languages"):
        langs = sorted(stats["languages"].items(), key=lambda kv: -(kv[1] if isinstance(kv[1], (int, float)) else 0))
        print("  languages: " + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in langs[:8]))
    rule_time = {}
    for r in stats.get("rules") or []:
        for rule in r.get("dropped") or {}:
            rule_time[rule] = rule_time.get(rule, 0) + r.get("time_s", 0)
    dropped = sorted((stats.get("dropped") or {}).items(), key=lambda kv: -kv[1]["documents"])
    for rule, d in dropped[:10]:
        t = f" {rule_time[rule]:>7.1f}s" if rule in rule_time else ""
        print(f"  dropped {rule:<30} {d['documents']:>9,} docs{pct(d['documents'], din):>9} {d['chars']:>13,} chars{t}")
    if len(dropped) > 10:
        print(f"  ... {len(dropped) - 10} more rules in stats.json")
    if "tokens_out" in stats:
        print(f"  tokens out: {stats['tokens_out']:,}")
    _print_sources(stats)
    print(f"  output: {out_dir}/  stats: {out_dir}/stats.json")
    if dropped:
        print(f"  see why: shikomi inspect {out_dir} --reason {dropped[0][0]}")


def _print_sources(stats: dict) -> None:
    """Per source tokens of mix (plan) and tokenize (shards), and the plan's warnings."""
    mix = stats.get("mix") or {}
    if mix:
        print("  source     available       planned  share  epochs  repeats(rehydration)   reserve")
        for g, s in mix.items():
            flag = " (anchor)" if s.get("anchor") else ""
            print(
                f"  {g:<8} {s.get('available_tokens') or 0:>11,} {s['expected_tokens']:>13,} {s['expected_share']:>6.3f} "
                f"{s['epochs']:>7.2f} {s.get('repeat_tokens') or 0:>9,} ({s.get('rehydration_tokens') or 0:,})"
                f" {s.get('reserve_tokens') or 0:>9,}{flag}"
            )
    srcs = {k: v for k, v in (stats.get("sources") or {}).items() if isinstance(v, dict) and "train_tokens" in v}
    if srcs:
        print("  source        in mix   train tokens  share  epochs    repeats    val tokens  trimmed  reserve left")
        for g, s in srcs.items():
            flag = " (anchor)" if s.get("anchor") else ""
            print(
                f"  {g:<8} {s.get('available_tokens') or 0:>11,} {s['train_tokens']:>14,} {s['realised_share']:>6.3f} "
                f"{s.get('epochs') or 0:>7.2f} {s.get('repeat_tokens') or 0:>10,} {s['val_tokens']:>13,} "
                f"{s['trimmed_tokens']:>8,} {s.get('reserve_unused_tokens') or 0:>13,}{flag}"
            )
    for w in stats.get("warnings") or []:
        print(f"  warning: {w}")
