"""`shikomi dedup`: exact, MinHash near-duplicate and repeated-line removal.

Jobs, each a datatrove pipeline run by the configured executor:

    signatures  N tasks               exact key, band keys, line hashes per document
    buckets     (bands+1) x parts     candidate pairs per band (and exact key)
    verify      N tasks               shingle sets of candidates (dedup.verify)
    cluster     1 task                union-find, survivor per cluster, drop lists
    lines       lines.parts tasks     lines repeated in more than lines.max_docs documents
    filter      N tasks               drop duplicates, cut repeated lines, write data/ and rejected/

Every job's output depends only on the documents and the config, never on which
worker ran what, so 1, 2 or 4 tasks keep the same documents.
"""

from __future__ import annotations

import json
from pathlib import Path

from shikomi.core.documents import reader_for, resolve_input
from shikomi.core.jobs import Job, Stage
from shikomi.core.rules import CountIn
from shikomi.core.writers import StageWriter
from shikomi.dedup import common as C
from shikomi.dedup.buckets import MatchBuckets
from shikomi.dedup.cluster import ClusterDuplicates
from shikomi.dedup.filter import DropDuplicates, RemoveRepeatedLines
from shikomi.dedup.lines import CountLines
from shikomi.dedup.minhash import lsh_params
from shikomi.dedup.signatures import ComputeSignatures
from shikomi.dedup.verify import WriteShingles
from shikomi.errors import UserError

# parameters that must match between this run and an index of an earlier run
INDEX_KEYS = ("ngram", "num_perm", "seed", "bands", "rows", "lowercase", "fold_digits", "exact", "near")


def params_for(cfg) -> dict:
    d = cfg.dedup
    lsh = lsh_params(d.threshold, d.num_perm, d.fp_weight, d.fn_weight, d.bands, d.rows) if d.near else {}
    return {
        "exact": d.exact,
        "near": d.near,
        "ngram": d.ngram,
        "num_perm": d.num_perm,
        "seed": d.seed if d.seed is not None else cfg.seed,
        "threshold": d.threshold,
        "bands": lsh.get("bands", 0),
        "rows": lsh.get("rows", 0),
        "lsh": lsh,
        "lowercase": d.lowercase,
        "fold_digits": d.fold_digits,
        "verify": d.verify and d.near,
        "date_keys": list(d.date_keys),
        "bucket_parts": d.bucket_parts,
        "lines": d.lines.model_dump(),
    }


def _check_index(paths: list[str], params: dict) -> list[str]:
    works = []
    for p in paths:
        w = C.work_dir(p) if (Path(p) / "work").is_dir() else Path(p)
        pf = w / "params.json"
        if not pf.is_file():
            raise UserError(f"dedup.index: {p} is not a dedup stage folder (no work/params.json)")
        old = json.loads(pf.read_text())["params"]
        bad = [k for k in INDEX_KEYS if old.get(k) != params.get(k)]
        if bad:
            raise UserError(
                f"dedup.index: {p} was built with other parameters ({', '.join(f'{k}={old.get(k)!r}' for k in bad)}); "
                "use the same dedup settings or rebuild it"
            )
        works.append(str(w))
    return works


def _check_previous(work: Path, record: dict) -> None:
    pf = work / "params.json"
    if pf.is_file():
        old = json.loads(pf.read_text())
        if old != record:
            raise UserError(
                f"{work.parent} holds a dedup run with another configuration, input or task count; "
                "rerun with --force to start over"
            )


def build(cfg, input_path: str | None = None) -> Stage:
    d = cfg.dedup
    inp = input_path or d.input
    if not inp:
        raise UserError("dedup: no input (pass --input or set dedup.input)")
    resolve_input(inp)  # one-line error when the input is missing
    out = cfg.stage_dir("dedup")
    work = C.work_dir(out)
    tasks = d.tasks or cfg.executor.tasks
    params = params_for(cfg)
    index_works = _check_index(d.index, params)

    record = {"params": params, "input": str(inp), "tasks": tasks, "index": index_works}
    _check_previous(work, record)

    bands: list = list(range(params["bands"])) if d.near else []
    if d.exact:
        bands.append(C.EXACT_BAND)

    jobs = [Job("signatures", [reader_for(inp), CountIn(), ComputeSignatures(str(work), params, record)], tasks=tasks)]
    if bands:
        jobs.append(
            Job(
                "buckets",
                [MatchBuckets(str(work), bands, d.bucket_parts, tasks, index_works)],
                tasks=len(bands) * d.bucket_parts,
            )
        )
        if params["verify"]:
            jobs.append(Job("verify", [reader_for(inp), WriteShingles(str(work), params)], tasks=tasks))
        jobs.append(Job("cluster", [ClusterDuplicates(str(work), params, tasks, index_works)], tasks=1))
    filters = [DropDuplicates(str(work))]
    if d.lines.enabled:
        jobs.append(Job("lines", [CountLines(str(work), tasks, d.lines.max_docs)], tasks=d.lines.parts))
        filters.append(
            RemoveRepeatedLines(
                str(work), d.lines.parts, d.lowercase, d.fold_digits, d.lines.min_line_chars, d.lines.min_chars
            )
        )
    jobs.append(Job("filter", [reader_for(inp), *filters, StageWriter(str(out))], tasks=tasks))
    return Stage("dedup", str(out), jobs, extras=dedup_extras)


def _job_stat(out: Path, job: str, key: str) -> int:
    from shikomi.core.stats import merge_task_stats, stat_total

    total = 0
    for step in merge_task_stats(out / "logs" / job):
        total += stat_total((step.get("stats") or {}).get(key))
    return int(total)


def dedup_extras(out_dir: str) -> dict:
    """Dedup numbers for stats.json: LSH parameters, clusters, lines."""
    out = Path(out_dir)
    work = C.work_dir(out)
    rec = json.loads((work / "params.json").read_text())
    p = rec["params"]
    cluster = {}
    cf = work / "cluster" / "summary.json"
    if cf.is_file():
        cluster = json.loads(cf.read_text())
    lines = {}
    if p["lines"]["enabled"]:
        lines = {
            "max_docs": p["lines"]["max_docs"],
            "distinct_lines": _job_stat(out, "lines", "distinct_lines"),
            "repeated_lines": _job_stat(out, "lines", "frequent_lines"),
            "lines_removed": _job_stat(out, "filter", "lines_removed"),
            "line_chars_removed": _job_stat(out, "filter", "line_chars_removed"),
            "documents_with_lines_removed": _job_stat(out, "filter", "documents_with_lines_removed"),
        }
    return {
        "dedup": {
            "tasks": rec["tasks"],
            "ngram": p["ngram"],
            "normalisation": {
                "nfkc": True,
                "whitespace": "folded",
                "lowercase": p["lowercase"],
                "fold_digits": p["fold_digits"],
            },
            "lsh": p["lsh"],
            "verify": p["verify"],
            "survivor": "index of an earlier run first, then earliest crawl date, then lowest id",
            "index": rec["index"],
            **cluster,
            "lines": lines,
        }
    }
