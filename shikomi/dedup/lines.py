"""Job 5 of dedup (`lines.parts` tasks): lines repeated across documents (cc_net).

Counts, for every normalised line hash, the number of documents that keep it
after duplicate removal (a document counts a line once), over one hash partition
per task, and writes the hashes found in more than `lines.max_docs` documents.
Duplicates are left out of the count, so a page mirrored ten times does not make
its own lines look like boilerplate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C


def removed_idx(work: Path, rank: int) -> np.ndarray:
    f = C.remove_file(work, rank)
    if not f.exists():
        return np.zeros(0, np.int64)
    return pq.read_table(f, columns=["idx"], use_threads=False)["idx"].to_numpy()


class CountLines(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup line counts"

    def __init__(self, work: str, sig_tasks: int, max_docs: int):
        super().__init__()
        self.work = work
        self.sig_tasks = sig_tasks
        self.max_docs = max_docs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work)
        parts = world_size
        with self.track_time():
            chunks = []
            for r in range(self.sig_tasks):
                hf, xf = C.lines_files(work, r)
                if not hf.exists():
                    continue
                h = C.load_npy(hf)
                x = C.load_npy(xf)
                mine = (h % np.uint64(parts)) == np.uint64(rank) if parts > 1 else np.ones(len(h), bool)
                rm = removed_idx(work, r)
                if len(rm):
                    mine &= ~np.isin(x, rm)
                chunks.append(np.asarray(h[mine]))
            allh = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
            values, counts = np.unique(allh, return_counts=True)
            frequent = values[counts > self.max_docs]
            self.stat_update("distinct_lines", value=len(values))
            self.stat_update("frequent_lines", value=len(frequent))
            self.stat_update("frequent_line_documents", value=int(counts[counts > self.max_docs].sum()))
            C.maybe_die("lines")
            C.save_npy(C.frequent_file(work, rank), frequent)
        return
        yield
