"""Optional job 3 of dedup (N tasks): shingle sets of LSH candidates, for real Jaccard.

Each task rereads its share of the input and, for documents in a near-duplicate
candidate pair, writes the sorted unique 64-bit hashes of their character
n-grams. The clustering job then computes the true Jaccard similarity of every
candidate pair from them (memory-mapped) and drops pairs below the threshold,
which removes LSH false positives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C
from shikomi.dedup.text import normalize, shingle_hashes


def near_pair_files(work: Path) -> list[Path]:
    return sorted(p for p in (work / "buckets").glob("*.npy") if not p.name.startswith(C.EXACT_BAND))


def candidate_idx(work: Path, rank: int) -> np.ndarray:
    """Positions of this task's documents that appear in a near-candidate pair."""
    found = []
    for f in near_pair_files(work):
        pairs = C.load_npy(f)
        for col in ("a", "b"):
            n = np.asarray(pairs[col])
            sel = (C.node_src(n) == 0) & (C.node_rank(n) == rank)
            found.append(C.node_idx(n[sel]))
    if not found:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate(found))


def shingle_set(text: str, p: dict) -> np.ndarray:
    norm = normalize(text, p["lowercase"], p["fold_digits"])
    return np.unique(shingle_hashes(norm, p["ngram"]))


class WriteShingles(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup candidate shingles"

    def __init__(self, work: str, params: dict):
        super().__init__()
        self.work = work
        self.p = params

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work)
        want = candidate_idx(work, rank)
        want_set = set(want.tolist())
        idxs, sets = [], []
        for i, doc in enumerate(data):
            if i in want_set:
                with self.track_time():
                    idxs.append(i)
                    sets.append(shingle_set(doc.text or "", self.p))
                    self.stat_update("candidates")
        C.maybe_die("verify")
        fi, fo, fv = C.shingle_files(work, rank)
        offsets = np.zeros(len(sets) + 1, dtype=np.int64)
        if sets:
            offsets[1:] = np.cumsum([len(s) for s in sets])
        C.save_npy(fv, np.concatenate(sets) if sets else np.zeros(0, np.uint64))
        C.save_npy(fo, offsets)
        C.save_npy(fi, np.asarray(idxs, dtype=np.int64))
        return
        yield


class ShingleStore:
    """Memory-mapped shingle sets of one run's candidates, looked up by node."""

    def __init__(self, work: Path, tasks: int):
        self.work = work
        self.ranks = {}
        for r in range(tasks):
            fi, fo, fv = C.shingle_files(work, r)
            if fi.exists():
                idx = C.load_npy(fi, mmap=False)
                self.ranks[r] = ({int(x): j for j, x in enumerate(idx)}, C.load_npy(fo), C.load_npy(fv))

    def get(self, rank: int, idx: int) -> np.ndarray | None:
        entry = self.ranks.get(rank)
        if entry is None:
            return None
        pos, off, vals = entry
        j = pos.get(idx)
        if j is None:
            return None
        return vals[off[j] : off[j + 1]]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
