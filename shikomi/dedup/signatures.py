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
from shikomi.dedup.minhash import band_keys, permutations, signatures_batch
from shikomi.dedup.text import exact_key, fold, line_hash, normalize, normalize_folded, split_lines

_BATCH = 2048  # documents per batch (signatures, and what is held before it is written)
_BATCH_CHARS = 1_000_000  # or fewer, when their normalised texts reach this many characters
_DOCS_ROWS = 65536  # rows per row group of the documents table

DOCS_SCHEMA = pa.schema(
    [("idx", pa.uint32()), ("id", pa.string()), ("date", pa.int64()), ("exact", pa.uint64()), ("chars", pa.int64())]
)


def doc_date(metadata: dict, keys: list[str], cache: dict | None = None) -> int:
    for k in keys:
        v = metadata.get(k)
        if v not in (None, ""):
            if cache is None or not isinstance(v, str):
                return C.parse_date(v)
            if v not in cache:
                if len(cache) > 100_000:
                    cache.clear()
                cache[v] = C.parse_date(v)
            return cache[v]
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
        a, b = permutations(p["num_perm"], p["seed"]) if p["near"] else (None, None)
        bands, rows = p["bands"], p["rows"]
        lines = p["lines"]
        date_cache: dict = {}

        # what the task writes goes to disk a batch at a time: its memory does not grow
        # with its documents (docs/dedup.md, memory)
        band_out = (
            [C.NpyAppender(C.band_file(work, band, rank), C.KEY_DTYPE) for band in range(bands)] if p["near"] else []
        )
        exact_out = C.NpyAppender(C.band_file(work, C.EXACT_BAND, rank), C.KEY_DTYPE) if p["exact"] else None
        line_out = (
            [C.NpyAppender(f, dt) for f, dt in zip(C.lines_files(work, rank), (np.uint64, np.uint32))]
            if lines["enabled"]
            else []
        )
        docs_out = C.ParquetAppender(C.docs_file(work, rank), DOCS_SCHEMA, _DOCS_ROWS)

        ids: list[str] = []
        dates: list[int] = []
        exact: list[int] = []
        chars: list[int] = []
        exact_idx: list[int] = []
        sig_texts: list[str] = []
        sig_idx: list[int] = []
        line_h: list[int] = []
        line_i: list[int] = []
        first = 0  # idx of the first document of the batch
        held = 0  # characters of sig_texts

        def flush():
            nonlocal first, held
            n = len(ids)
            exact_arr = np.asarray(exact, dtype=np.uint64)
            docs_out.write(
                pa.table(
                    {
                        "idx": pa.array(np.arange(first, first + n, dtype=np.uint32)),
                        "id": pa.array(ids, type=pa.string()),
                        "date": pa.array(np.asarray(dates, dtype=np.int64)),
                        "exact": pa.array(exact_arr),
                        "chars": pa.array(np.asarray(chars, dtype=np.int64)),
                    }
                )
            )
            if exact_out is not None and exact_idx:
                xi = np.asarray(exact_idx, dtype=np.uint32)
                exact_out.append(_key_rows(exact_arr[xi - first], xi))
            if sig_texts:
                keys = band_keys(signatures_batch(sig_texts, p["ngram"], a, b), bands, rows)
                si = np.asarray(sig_idx, dtype=np.uint32)
                for band, out in enumerate(band_out):
                    out.append(_key_rows(keys[:, band], si))
            if line_out and line_h:
                line_out[0].append(np.asarray(line_h, dtype=np.uint64))
                line_out[1].append(np.asarray(line_i, dtype=np.uint32))
            first += n
            held = 0
            for lst in (ids, dates, exact, chars, exact_idx, sig_texts, sig_idx, line_h, line_i):
                lst.clear()

        idx = -1
        for idx, doc in enumerate(data):
            with self.track_time():
                text = doc.text or ""
                folded = fold(text)
                ids.append(str(doc.id))
                dates.append(doc_date(doc.metadata, p["date_keys"], date_cache))
                chars.append(len(text))
                key = exact_key(folded) if folded else 0
                exact.append(key)
                if folded and p["exact"]:
                    exact_idx.append(idx)
                if p["near"] and folded:
                    norm = normalize_folded(folded, p["lowercase"], p["fold_digits"])
                    if norm:
                        sig_texts.append(norm)
                        sig_idx.append(idx)
                        held += len(norm)
                        self.stat_update("signatures")
                if lines["enabled"]:
                    lh = doc_line_hashes(text, p["lowercase"], p["fold_digits"], lines["min_line_chars"])
                    if lh:
                        line_h.extend(sorted(lh))
                        line_i.extend([idx] * len(lh))
            if len(ids) >= _BATCH or held >= _BATCH_CHARS:
                with self.track_time():
                    flush()
        with self.track_time():
            if ids or first == 0:
                flush()
            # each band file sorted by (key, idx), one band in memory at a time
            for band, out in enumerate(band_out):
                C.save_npy(out.path, _sort_keys(out.read()))
                out.discard()
                if band == 0:
                    C.maybe_die("signatures")
            if exact_out is not None:
                C.save_npy(exact_out.path, _sort_keys(exact_out.read()))
                exact_out.discard()
            for out in line_out:
                out.close()
            # the documents table last: its presence marks a complete task output
            docs_out.close()
        return
        yield


def _key_rows(keys: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.empty(len(keys), dtype=C.KEY_DTYPE)
    out["key"] = keys
    out["idx"] = idx
    return out


def _sort_keys(rows: np.ndarray) -> np.ndarray:
    """Rows sorted by (key, idx)."""
    return rows[np.lexsort((rows["idx"], rows["key"]))]
