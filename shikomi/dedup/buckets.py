"""Job 2 of dedup ((bands + exact) x parts tasks): documents sharing a band key.

Task t handles one band (the last "band" is the exact key) and one hash-range part
of it: it reads that key range from every signature task's sorted file (and from
the index of earlier runs), sorts it, and writes each run of equal keys as star
edges (first document, other document). Memory is the size of that key range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C


def part_range(part: int, parts: int) -> tuple[int, int]:
    """Key range [lo, hi) of a hash-range part (hi = 2^64 for the last, as Python int)."""
    step = (1 << 64) // parts
    lo = part * step
    hi = (1 << 64) if part == parts - 1 else (part + 1) * step
    return lo, hi


def read_range(path: Path, lo: int, hi: int) -> np.ndarray:
    arr = C.load_npy(path)
    keys = arr["key"]
    start = int(np.searchsorted(keys, np.uint64(lo), side="left")) if lo > 0 else 0
    end = len(keys) if hi >= (1 << 64) else int(np.searchsorted(keys, np.uint64(hi), side="left"))
    return np.array(arr[start:end])


def star_pairs(keys: np.ndarray, nodes: np.ndarray, is_index: np.ndarray) -> np.ndarray:
    """Edges from the first element of every run of equal keys to the others.

    Rows must be sorted by (key, not is_index, node): an index document (from an
    earlier run) heads its run when there is one. Index-index edges are left out.
    """
    out = np.empty(0, dtype=C.PAIR_DTYPE)
    if len(keys) < 2:
        return out
    new_run = np.ones(len(keys), dtype=bool)
    new_run[1:] = keys[1:] != keys[:-1]
    head = np.maximum.accumulate(np.where(new_run, np.arange(len(keys)), 0))
    sel = ~new_run & ~is_index
    out = np.empty(int(sel.sum()), dtype=C.PAIR_DTYPE)
    out["a"] = nodes[head[sel]]
    out["b"] = nodes[sel]
    return out


class MatchBuckets(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup buckets"

    def __init__(self, work: str, bands: list, parts: int, sig_tasks: int, index_works: list[str]):
        super().__init__()
        self.work = work
        self.bands = bands  # band numbers, then "exact"
        self.parts = parts
        self.sig_tasks = sig_tasks
        self.index_works = index_works

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work)
        band = self.bands[rank // self.parts]
        part = rank % self.parts
        lo, hi = part_range(part, self.parts)
        with self.track_time():
            keys, nodes, is_index = [], [], []
            sources = [(0, work, self.sig_tasks)]
            for k, iw in enumerate(self.index_works):
                n_idx = len(list((Path(iw) / "sigs" / "docs").glob("*.parquet")))
                sources.append((k + 1, Path(iw), n_idx))
            for src, w, n_tasks in sources:
                for r in range(n_tasks):
                    f = C.band_file(w, band, r)
                    if not f.exists():
                        continue
                    arr = read_range(f, lo, hi)
                    keys.append(arr["key"])
                    nodes.append(C.node(src, r, arr["idx"]))
                    is_index.append(np.full(len(arr), src > 0))
            if keys:
                k = np.concatenate(keys)
                nd = np.concatenate(nodes)
                ix = np.concatenate(is_index)
            else:
                k = np.zeros(0, np.uint64)
                nd = np.zeros(0, np.uint64)
                ix = np.zeros(0, bool)
            self.stat_update("entries", value=len(k))
            order = np.lexsort((nd, ~ix, k))
            pairs = star_pairs(k[order], nd[order], ix[order])
            self.stat_update("pairs", value=len(pairs))
            C.maybe_die("buckets")
            C.save_npy(C.bucket_file(work, band, part), pairs)
        return
        yield
