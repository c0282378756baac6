"""Job 6 of dedup (N tasks): drop the duplicates, cut repeated lines, write the output.

Each task rereads the same share of the input as its signature task, so the
position of a document in the stream is the `idx` the clustering job named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline

from shikomi.core.rules import Rule
from shikomi.dedup import common as C
from shikomi.dedup.text import line_hash, normalize, split_lines


class DropDuplicates(Rule):
    """Rejects the documents the clustering job named, with the id of the kept one."""

    name = "🎯 drop duplicates"
    rule = "duplicate"

    def __init__(self, work: str):
        super().__init__()
        self.work = work
        self._remove: dict[int, tuple] = {}
        self._keep: dict[int, int] = {}
        self._idx = -1

    def check(self, doc: Document):
        hit = self._remove.get(self._idx)
        if hit is None:
            # the size of the duplicate cluster this document survived (1: no duplicate),
            # for rehydration in mix
            doc.metadata["dup_cluster_size"] = self._keep.get(self._idx, 1)
            return None
        reason, kept, size = hit
        doc.metadata["duplicate_of"] = kept
        doc.metadata["cluster_size"] = size
        return reason

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        f = C.remove_file(Path(self.work), rank)
        self._remove = {}
        self._keep = {}
        k = C.keep_file(Path(self.work), rank)
        if k.exists():
            t = pq.read_table(k, use_threads=False)
            self._keep = dict(zip(t["idx"].to_pylist(), t["cluster_size"].to_pylist()))
        if f.exists():
            t = pq.read_table(f, use_threads=False)
            for i, reason, kept, size in zip(
                *(t[c].to_pylist() for c in ("idx", "reason", "duplicate_of", "cluster_size"))
            ):
                self._remove[i] = (reason, kept, size)

        def numbered():
            for i, doc in enumerate(data):
                self._idx = i
                if i == 3:
                    C.maybe_die("filter")
                yield doc

        yield from super().run(numbered(), rank, world_size)


class RemoveRepeatedLines(Rule):
    """Cuts lines found in more than `lines.max_docs` documents; rejects documents
    left shorter than `lines.min_chars` (`lines_too_short:<chars left>`)."""

    name = "✂️ repeated lines"
    rule = "lines_too_short"

    def __init__(self, work: str, parts: int, lowercase: bool, fold_digits: bool, min_line_chars: int, min_chars: int):
        super().__init__()
        self.work = work
        self.parts = parts
        self.lowercase = lowercase
        self.fold_digits = fold_digits
        self.min_line_chars = min_line_chars
        self.min_chars = min_chars
        self._frequent: set[int] = set()
        self._docs: set[int] = set()
        self._idx = -1

    def _load(self, rank: int) -> None:
        work = Path(self.work)
        arrs = [np.asarray(C.load_npy(C.frequent_file(work, p))) for p in range(self.parts)]
        frequent = np.concatenate(arrs) if arrs else np.zeros(0, np.uint64)
        self._frequent = set(frequent.tolist())
        # documents of this task holding a repeated line (from the signature job's line hashes)
        hf, xf = C.lines_files(work, rank)
        self._docs = set()
        if len(frequent) and hf.exists():
            h, x = C.load_npy(hf), C.load_npy(xf)
            self._docs = set(np.unique(np.asarray(x)[np.isin(h, frequent)]).tolist())

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._load(rank)

        def numbered():
            for i, doc in enumerate(data):
                self._idx = i
                yield doc

        yield from super().run(numbered(), rank, world_size)

    def check(self, doc: Document):
        if self._idx not in self._docs:
            return None
        frequent = self._frequent
        kept, removed = [], 0
        for line in split_lines(doc.text):
            norm = normalize(line, self.lowercase, self.fold_digits)
            if len(norm) >= self.min_line_chars and line_hash(norm) in frequent:
                removed += 1
            else:
                kept.append(line)
        if not removed:
            return None
        text = "".join(kept)
        self.stat_update("lines_removed", value=removed)
        self.stat_update("line_chars_removed", value=len(doc.text) - len(text))
        left = len(text.strip())
        if left < self.min_chars:
            doc.metadata["lines_removed"] = removed
            return self.rule, left
        self.stat_update("documents_with_lines_removed")
        doc.text = text
        doc.metadata["lines_removed"] = removed
        return None
