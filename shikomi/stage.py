"""The building blocks every stage shares: jobs, counting steps, rejection and stats.

A stage is a list of jobs; a job is a datatrove pipeline run over N tasks by the
configured executor (local, Slurm or Ray). Every stage writes

    <run_dir>/<stage>/data/       kept documents (Parquet, zstd)
    <run_dir>/<stage>/rejected/   dropped documents, metadata.reject_reason = "rule" or "rule:value"
    <run_dir>/<stage>/logs/<job>/ datatrove logs, completions and per-task stats
    <run_dir>/<stage>/stats.json  the stage summary (written by a final one-task job)

Counting convention (datatrove stat keys, summed over tasks into stats.json):
    docs_in / chars_in             documents entering the stage's rules
    docs_out / chars_out           documents written to data/
    dropped/<rule>, dropped_chars/<rule>
    skipped/<reason>               input records that never became documents (extract)
    tokens_out                     where known
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from .io import DocWriter

REJECT_KEY = "reject_reason"


@dataclass
class Job:
    """One datatrove pipeline of a stage, run over `tasks` tasks."""

    name: str
    pipeline: list
    tasks: int = 1
    workers: int = -1
    # Slurm overrides for this job (cpus_per_task, mem_per_cpu_gb, time, partition)
    slurm: dict = field(default_factory=dict)


@dataclass
class Stage:
    name: str
    out_dir: str
    jobs: list[Job]
    inputs: list[str] = field(default_factory=list)
    # called in the summary job: returns extra keys merged into stats.json
    extras: Optional[Callable[[str], dict]] = None

    @property
    def path(self) -> Path:
        return Path(self.out_dir)

    def logs_dir(self, job: Job | str) -> str:
        name = job if isinstance(job, str) else job.name
        return str(self.path / "logs" / name)

    def with_summary(self) -> list[Job]:
        """The stage's jobs followed by the one-task job that writes stats.json."""
        summary = Job("summary", [WriteStageStats(self.name, self.out_dir, [j.name for j in self.jobs], self.extras)])
        return [*self.jobs, summary]


def reject(doc: Document, rule: str, value: Any = None) -> Document:
    """Mark a document as dropped by `rule` (with the value that tripped it)."""
    if value is None:
        doc.metadata[REJECT_KEY] = rule
    else:
        if isinstance(value, float):
            value = round(value, 4)
        doc.metadata[REJECT_KEY] = f"{rule}:{value}"
    return doc


def count_route(step: PipelineStep, doc: Document) -> Optional[str]:
    """Count a document leaving the stage: returns its rule when it was rejected
    (counted as dropped) or None when it is kept (counted as out)."""
    r = doc.metadata.get(REJECT_KEY)
    if r:
        rule = r.split(":", 1)[0]
        step.stat_update(f"dropped/{rule}")
        step.stat_update(f"dropped_chars/{rule}", value=len(doc.text))
        return rule
    step.stat_update("docs_out")
    step.stat_update("chars_out", value=len(doc.text))
    return None


class CountIn(PipelineStep):
    """Counts documents and characters entering the stage."""

    name = "count in"
    type = "📊 - STATS"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            self.stat_update("docs_in")
            self.stat_update("chars_in", value=len(doc.text))
            yield doc


class Rule(PipelineStep):
    """Base of every document rule: `check(doc)` returns None to keep, or
    (rule, value) / rule to drop. Documents already rejected upstream pass through
    untouched, so each rule sees and counts only what reached it; `StageWriter`
    finally routes rejected documents to `rejected/`.
    """

    type = "🔻 - RULE"
    rule: str = "rule"

    def check(self, doc: Document):  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # Counters are kept in locals and written to datatrove's stats once, when the
        # task's documents are exhausted: per-document stat updates cost more than
        # many rules themselves.
        docs_in = chars_in = docs_out = chars_out = 0
        dropped: dict[str, list[int]] = {}
        seconds = 0.0
        clock = time.perf_counter
        try:
            for doc in data:
                if REJECT_KEY in doc.metadata:
                    yield doc
                    continue
                docs_in += 1
                chars_in += len(doc.text)
                t0 = clock()
                res = self.check(doc)
                seconds += clock() - t0
                if res is not None and res is not False:
                    rule, value = (res if isinstance(res, tuple) else (res, None))
                    if rule is True:
                        rule = self.rule
                    reject(doc, rule, value)
                    d = dropped.setdefault(rule, [0, 0])
                    d[0] += 1
                    d[1] += len(doc.text)
                else:
                    docs_out += 1
                    chars_out += len(doc.text)
                yield doc
        finally:
            if docs_in:
                self.stat_update("docs_in", value=docs_in)
                self.stat_update("chars_in", value=chars_in)
                self.stat_update("docs_out", value=docs_out)
                self.stat_update("chars_out", value=chars_out)
                for rule, (n, c) in dropped.items():
                    self.stat_update(f"dropped/{rule}", value=n)
                    self.stat_update(f"dropped_chars/{rule}", value=c)
                self.stats.time_stats.update(seconds)


class StageWriter(PipelineStep):
    """Writes kept documents to `data/` and rejected ones to `rejected/`, counting both."""

    name = "write"
    type = "💽 - WRITER"

    def __init__(self, out_dir: str, data_subdir: str = "data", write_rejected: bool = True):
        super().__init__()
        self.out_dir = out_dir
        self.data_subdir = data_subdir
        self.write_rejected = write_rejected

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        (Path(self.out_dir) / self.data_subdir).mkdir(parents=True, exist_ok=True)
        kept = DocWriter(str(Path(self.out_dir) / self.data_subdir))
        rejected = DocWriter(str(Path(self.out_dir) / "rejected")) if self.write_rejected else None
        with kept:
            try:
                for doc in data or []:
                    if count_route(self, doc) is None:
                        kept.write(doc, rank)
                    elif rejected is not None:
                        rejected.write(doc, rank)
            finally:
                if rejected is not None:
                    rejected.close()
        return
        yield  # a generator that yields nothing


def _merge_task_stats(logs_dir: Path) -> list[dict]:
    """Sum datatrove's per-task stats files of one job, step by step."""
    from datatrove.utils.stats import PipelineStats

    total = None
    for f in sorted((logs_dir / "stats").glob("*.json")):
        ps = PipelineStats.from_json(json.loads(f.read_text()))
        total = ps if total is None else total + ps
    if total is None:
        return []
    return [st.to_dict() for st in total.stats]


def _stat_total(v) -> float:
    if isinstance(v, dict):
        return v.get("total", 0)
    return v or 0


def summarize(stage_name: str, out_dir: str, job_names: list[str]) -> dict:
    """Build the stage summary from the datatrove stats of its jobs."""
    out = Path(out_dir)
    jobs = {}
    steps = []
    for jn in job_names:
        merged = _merge_task_stats(out / "logs" / jn)
        jobs[jn] = merged
        for step in merged:
            steps.append({"job": jn, **step})

    def collect(step_filter) -> dict[str, float]:
        acc: dict[str, float] = {}
        for s in steps:
            if not step_filter(s):
                continue
            for k, v in (s.get("stats") or {}).items():
                acc[k] = acc.get(k, 0) + _stat_total(v)
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

    rules = []
    for s in steps:
        st = s.get("stats") or {}
        if "docs_in" not in st or "count in" in s.get("name", ""):
            continue
        d_in = _stat_total(st.get("docs_in"))
        rules.append(
            {
                "job": s["job"],
                "step": s.get("name"),
                "documents_in": int(d_in),
                "documents_out": int(_stat_total(st.get("docs_out"))),
                "chars_in": int(_stat_total(st.get("chars_in"))),
                "chars_out": int(_stat_total(st.get("chars_out"))),
                "dropped": {k.split("/", 1)[1]: int(_stat_total(v)) for k, v in st.items() if k.startswith("dropped/")},
                "time_s": round(float((s.get("time_stats") or {}).get("total", 0.0)), 4),
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
    if "tokens_out" in everything:
        summary["tokens_out"] = int(everything["tokens_out"])
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
        write_json_atomic(Path(self.out_dir) / "stats.json", summary)
        return
        yield


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
