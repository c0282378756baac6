"""Rules: how a stage decides, counts and marks what it drops.

A rule's `check(doc)` returns None to keep a document, or (rule, value) / rule to
drop it; the drop is written into `metadata.reject_reason` as "rule" or
"rule:value" and the routing writer (`core.writers.StageWriter`) sends it to
`rejected/`.
"""

from __future__ import annotations

import time
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

REJECT_KEY = "reject_reason"


def reject(doc: Document, rule: str, value: Any = None) -> Document:
    """Mark a document as dropped by `rule` (with the value that tripped it)."""
    if value is None:
        doc.metadata[REJECT_KEY] = rule
    else:
        if isinstance(value, float):
            value = round(value, 4)
        doc.metadata[REJECT_KEY] = f"{rule}:{value}"
    return doc


def count_route(step: PipelineStep, doc: Document) -> str | None:
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
                    rule, value = res if isinstance(res, tuple) else (res, None)
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
