"""Per-language score thresholds from the run's own score distribution (FineWeb-2's
rule): for each kept language, median − σ of the fastText scores of the documents
labelled with it, clipped to [low, high]; languages with too few documents in the
sample keep the configured threshold.

`langid.thresholds: auto` adds a pre-pass job to the stage: it scores the first
`auto_sample` documents of the input (files in sorted order: deterministic), writes
`langid/thresholds.json`, and the routing job reads it. Documents that are Japanese
by their kana (shikomi.text.lid) are left out of the distribution: their score is not
what decided their label.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

THRESHOLDS_FILE = "thresholds.json"


def derive_thresholds(
    scores: dict[str, list[float]],
    languages: list[str],
    default: float,
    configured: dict[str, float],
    clip: tuple[float, float] = (0.3, 0.9),
    min_docs: int = 20,
) -> dict[str, dict]:
    """{language: {threshold, source, n, median, std}} for every kept language."""
    out = {}
    for lang in languages:
        vals = sorted(scores.get(lang, []))
        fallback = configured.get(lang, default)
        if len(vals) < min_docs:
            out[lang] = {"threshold": fallback, "source": "config", "n": len(vals)}
            continue
        med, sd = statistics.median(vals), statistics.pstdev(vals)
        thr = min(clip[1], max(clip[0], med - sd))
        out[lang] = {
            "threshold": round(thr, 4),
            "source": "auto",
            "n": len(vals),
            "median": round(med, 4),
            "std": round(sd, 4),
        }
    return out


class SampleThresholds(PipelineStep):
    """The pre-pass: scores a deterministic sample of the input and writes
    `<out_dir>/thresholds.json`. Reads the input itself, so that its reader's counts
    do not add to the stage's."""

    name = "langid thresholds"
    type = "📊 - STATS"

    def __init__(self, src: str, out_dir: str, languages: list[str], default: float, configured: dict, lid: dict, auto):
        super().__init__()
        self.src, self.out_dir = src, out_dir
        self.languages, self.default, self.configured = list(languages), default, dict(configured)
        self.lid_args = dict(lid)
        self.sample, self.clip, self.min_docs = auto.sample, tuple(auto.clip), auto.min_docs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from shikomi.core.documents import read_documents
        from shikomi.text.lid import FastTextLID

        lid = FastTextLID(**self.lid_args)
        scores: dict[str, list[float]] = {}
        n = 0
        for doc in read_documents(self.src, limit=self.sample):
            lang, score, how = lid.classify(doc.text)
            n += 1
            if how == "fasttext":
                scores.setdefault(lang, []).append(score)
        res = {
            "rule": f"median - std, clipped to [{self.clip[0]}, {self.clip[1]}]",
            "sample_documents": n,
            "languages": derive_thresholds(
                scores, self.languages, self.default, self.configured, self.clip, self.min_docs
            ),
        }
        self.stat_update("sample_documents", value=n)
        path = Path(self.out_dir) / THRESHOLDS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return
        yield


def read_thresholds(out_dir: str) -> dict | None:
    """thresholds.json of a langid run, or None."""
    p = Path(out_dir) / THRESHOLDS_FILE
    return json.loads(p.read_text()) if p.is_file() else None
