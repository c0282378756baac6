"""Job 1 of dedup (N tasks): per document, its exact key, MinHash band keys and line hashes.

Each task writes, for its own share of the input, one sorted (key, idx) file per
band plus one for the exact key, a table of the documents (id, crawl date, exact
key, length) and the per-document line hashes used by repeated-line removal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C
from shikomi.dedup.minhash import MinHasher, band_keys
from shikomi.dedup.text import exact_key, fold, line_hash, normalize, normalize_folded, split_lines

_BATCH = 2048


def doc_date(metadata: dict, keys: list[str]) -> int:
    for k in keys:
        if metadata.get(k) not in (None, ""):
            return C.parse_date(metadata[k])
    return int(C.DATE_MISSING)


def doc_line_hashes(text: str, lowercase: bool, fold_digits: bool, min_line_chars: int) -> set[int]:
    out = set()
    for line in split_lines(text):
        norm = normalize(line, lowercase, fold_digits)
        if len(norm) >= min_line_chars:
            out.add(line_hash(norm))
    return out


class ComputeSignatures(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup signatures"

    def __init__(self, work: str, params: dict, record: dict | None = None):
        super().__init__()
        self.work = work
        self.p = params
        self.record = record or {"params": params}

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        p = self.p
        work = Path(self.work)
        # every task writes the same run record (what later runs and the index check read)
        C.save_json(work / "params.json", self.record)
        hasher = MinHasher(p["ngram"], p["num_perm"], p["seed"])
        bands, rows = p["bands"], p["rows"]
        lines = p["lines"]

        ids: list[str] = []
        dates: list[int] = []
        exact: list[int] = []
        chars: list[int] = []
        has_exact: list[bool] = []
        band_parts: list[np.ndarray] = []  # (docs, bands) uint64 per batch
        band_idx: list[np.ndarray] = []
        batch_sigs: list[np.ndarray] = []
        batch_idx: list[int] = []
        line_h: list[np.ndarray] = []
        line_i: list[np.ndarray] = []

        def flush():
            if batch_sigs:
                band_parts.append(band_keys(np.stack(batch_sigs), bands, rows))
                band_idx.append(np.asarray(batch_idx, dtype=np.uint32))
                batch_sigs.clear()
                batch_idx.clear()

        idx = -1
        for idx, doc in enumerate(data):
            with self.track_time():
                text = doc.text or ""
                folded = fold(text)
                ids.append(str(doc.id))
                dates.append(doc_date(doc.metadata, p["date_keys"]))
                chars.append(len(text))
                has_exact.append(bool(folded) and p["exact"])
                exact.append(exact_key(folded) if folded else 0)
                if p["near"] and folded:
                    norm = normalize_folded(folded, p["lowercase"], p["fold_digits"])
                    sig = hasher.signature(norm)
                    if sig is not None:
                        batch_sigs.append(sig)
                        batch_idx.append(idx)
                        self.stat_update("signatures")
                        if len(batch_sigs) >= _BATCH:
                            flush()
                if lines["enabled"]:
                    lh = doc_line_hashes(text, p["lowercase"], p["fold_digits"], lines["min_line_chars"])
                    if lh:
                        line_h.append(np.fromiter(sorted(lh), dtype=np.uint64, count=len(lh)))
                        line_i.append(np.full(len(lh), idx, dtype=np.uint32))
        flush()

        n = idx + 1
        idx_all = np.arange(n, dtype=np.uint32)
        docs = pa.table(
            {
                "idx": pa.array(idx_all),
                "id": pa.array(ids, type=pa.string()),
                "date": pa.array(np.asarray(dates, dtype=np.int64)),
                "exact": pa.array(np.asarray(exact, dtype=np.uint64)),
                "chars": pa.array(np.asarray(chars, dtype=np.int64)),
            }
        )
        if p["near"]:
            keys = np.concatenate(band_parts) if band_parts else np.zeros((0, bands), dtype=np.uint64)
            kidx = np.concatenate(band_idx) if band_idx else np.zeros(0, dtype=np.uint32)
            for b in range(bands):
                C.save_npy(C.band_file(work, b, rank), _sorted_keys(keys[:, b], kidx))
                if b == 0:
                    C.maybe_die("signatures")
        if p["exact"]:
            mask = np.asarray(has_exact, dtype=bool)
            C.save_npy(
                C.band_file(work, C.EXACT_BAND, rank),
                _sorted_keys(np.asarray(exact, dtype=np.uint64)[mask], idx_all[mask]),
            )
        if lines["enabled"]:
            hf, xf = C.lines_files(work, rank)
            C.save_npy(hf, np.concatenate(line_h) if line_h else np.zeros(0, dtype=np.uint64))
            C.save_npy(xf, np.concatenate(line_i) if line_i else np.zeros(0, dtype=np.uint32))
        # the documents table last: its presence marks a complete task output
        C.save_parquet(C.docs_file(work, rank), docs)
        return
        yield


def _sorted_keys(keys: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.empty(len(keys), dtype=C.KEY_DTYPE)
    out["key"] = keys
    out["idx"] = idx
    out.sort(order=["key", "idx"], kind="stable")
    return out
