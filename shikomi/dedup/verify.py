"""Optional job 3 of dedup (N tasks): shingle sets of LSH candidates, for real Jaccard.

Each task rereads its share of the input and, for documents in a near-duplicate
candidate pair, writes the sorted unique 64-bit hashes of their character
n-grams. The clustering job then computes the true Jaccard similarity of every
candidate pair from them (memory-mapped) and drops pairs below the threshold,
which removes LSH false positives.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C
from shikomi.dedup.text import normalize, shingle_hashes, shingle_sets


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


_BATCH = 1024  # candidate documents hashed together
_BATCH_CHARS = 1_000_000  # or fewer, when their texts reach this many characters


class WriteShingles(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup candidate shingles"

    def __init__(self, work: str, params: dict):
        super().__init__()
        self.work = work
        self.p = params

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work)
        p = self.p
        want = candidate_idx(work, rank)
        # one byte per document of the task: is it a candidate
        wanted = np.zeros(int(want[-1]) + 1 if len(want) else 0, dtype=bool)
        wanted[want] = True
        wanted = wanted.tobytes()
        n_want = len(wanted)
        fi, fo, fv = C.shingle_files(work, rank)
        # written a batch at a time: the task holds one batch of shingle sets
        out_i, out_o, out_v = C.NpyAppender(fi, np.int64), C.NpyAppender(fo, np.int64), C.NpyAppender(fv, np.uint64)
        out_o.append(np.zeros(1, dtype=np.int64))
        total = 0
        idxs: list[int] = []
        texts: list[str] = []
        held = 0

        def flush():
            nonlocal total, held
            values, counts = shingle_sets(texts, p["ngram"])
            out_v.append(values)
            out_o.append(total + np.cumsum(counts))
            out_i.append(np.asarray(idxs, dtype=np.int64))
            total += int(counts.sum())
            idxs.clear()
            texts.clear()
            held = 0

        for i, doc in enumerate(data):
            if i < n_want and wanted[i]:
                with self.track_time():
                    idxs.append(i)
                    texts.append(normalize(doc.text or "", p["lowercase"], p["fold_digits"]))
                    held += len(texts[-1])
                    self.stat_update("candidates")
                    if len(idxs) >= _BATCH or held >= _BATCH_CHARS:
                        flush()
        if idxs:
            flush()
        C.maybe_die("verify")
        out_v.close()
        out_o.close()
        out_i.close()
        return
        yield


class ShingleStore:
    """The shingle sets of one run's candidates, looked up by node. The values are read
    from the file for each lookup (not memory-mapped), so the clustering job's memory
    does not grow with the candidates' text."""

    def __init__(self, work: Path, tasks: int):
        self.work = work
        self.ranks = {}
        for r in range(tasks):
            fi, fo, fv = C.shingle_files(work, r)
            if fi.exists():
                idx = C.load_npy(fi, mmap=False)
                off = C.load_npy(fo, mmap=False)
                f = open(fv, "rb")  # noqa: SIM115 - closed in close()
                if np.lib.format.read_magic(f) == (1, 0):
                    np.lib.format.read_array_header_1_0(f)
                else:
                    np.lib.format.read_array_header_2_0(f)
                self.ranks[r] = (idx, off, f, f.tell())

    def get(self, rank: int, idx: int) -> np.ndarray | None:
        entry = self.ranks.get(rank)
        if entry is None:
            return None
        pos, off, f, start = entry
        j = int(np.searchsorted(pos, idx))
        if j >= len(pos) or pos[j] != idx:
            return None
        lo, hi = int(off[j]), int(off[j + 1])
        return np.frombuffer(os.pread(f.fileno(), (hi - lo) * 8, start + lo * 8), dtype="<u8")

    def close(self) -> None:
        for _, _, f, _ in self.ranks.values():
            f.close()
        self.ranks = {}


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
