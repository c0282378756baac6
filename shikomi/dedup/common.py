"""Folder layout of the dedup work files and small helpers the jobs share.

    <stage>/work/params.json                      LSH and normalisation parameters
    <stage>/work/sigs/docs/<rank>.parquet         idx, id, date, exact key, chars per document
    <stage>/work/sigs/band_<b>/<rank>.npy         (key, idx) sorted, one file per band
    <stage>/work/sigs/band_exact/<rank>.npy       (exact key, idx) sorted
    <stage>/work/sigs/lines/<rank>.{hash,idx}.npy line hashes (unique per document) and their document
    <stage>/work/buckets/<band>_<part>.npy        candidate pairs (node a, node b)
    <stage>/work/shingles/<rank>.*.npy            shingle sets of candidates (verification)
    <stage>/work/cluster/remove_<rank>.parquet    documents to drop: idx, reason, duplicate_of, cluster_size
    <stage>/work/cluster/summary.json             cluster sizes, exact/near counts
    <stage>/work/lines/frequent_<part>.npy        hashes of repeated lines

A node is one document as a uint64: source (0 = this run, k = k-th index) in the
top 8 bits, the signature task's rank in the next 24, its position in that task's
input in the low 32. Every file is written to a temporary name and renamed, so a
killed task leaves either nothing or a complete file, and its rerun overwrites it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np

KEY_DTYPE = np.dtype([("key", "<u8"), ("idx", "<u4")])
PAIR_DTYPE = np.dtype([("a", "<u8"), ("b", "<u8")])
EXACT_BAND = "exact"
DATE_MISSING = np.iinfo(np.int64).max

KILL_ENV = "SHIKOMI_DEDUP_KILL_AT"


def work_dir(stage_dir: str | Path) -> Path:
    return Path(stage_dir) / "work"


def band_name(band: int | str) -> str:
    return f"band_{band}" if isinstance(band, str) else f"band_{band:03d}"


def band_file(work: Path, band: int | str, rank: int) -> Path:
    return work / "sigs" / band_name(band) / f"{rank:05d}.npy"


def docs_file(work: Path, rank: int) -> Path:
    return work / "sigs" / "docs" / f"{rank:05d}.parquet"


def lines_files(work: Path, rank: int) -> tuple[Path, Path]:
    d = work / "sigs" / "lines"
    return d / f"{rank:05d}.hash.npy", d / f"{rank:05d}.idx.npy"


def bucket_file(work: Path, band: int | str, part: int) -> Path:
    name = band if isinstance(band, str) else f"{band:03d}"
    return work / "buckets" / f"{name}_{part:03d}.npy"


def shingle_files(work: Path, rank: int) -> tuple[Path, Path, Path]:
    d = work / "shingles"
    return d / f"{rank:05d}.idx.npy", d / f"{rank:05d}.offsets.npy", d / f"{rank:05d}.values.npy"


def remove_file(work: Path, rank: int) -> Path:
    return work / "cluster" / f"remove_{rank:05d}.parquet"


def keep_file(work: Path, rank: int) -> Path:
    """Survivors of duplicate clusters of this task: idx and cluster size."""
    return work / "cluster" / f"keep_{rank:05d}.parquet"


def frequent_file(work: Path, part: int) -> Path:
    return work / "lines" / f"frequent_{part:03d}.npy"


def node(src: int, rank: int, idx) -> np.ndarray:
    return (np.uint64(src) << np.uint64(56)) | (np.uint64(rank) << np.uint64(32)) | np.asarray(idx, dtype=np.uint64)


def node_src(n: np.ndarray) -> np.ndarray:
    return (n >> np.uint64(56)).astype(np.int64)


def node_rank(n: np.ndarray) -> np.ndarray:
    return ((n >> np.uint64(32)) & np.uint64(0xFFFFFF)).astype(np.int64)


def node_idx(n: np.ndarray) -> np.ndarray:
    return (n & np.uint64(0xFFFFFFFF)).astype(np.int64)


def save_npy(path: Path, arr: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    os.replace(tmp, path)


class NpyAppender:
    """A one-dimensional .npy file written piece by piece, so that a task holds none of it.

    Pieces go to a raw file next to `path`; `close` writes the header `np.save` would
    write for the whole array, copies the pieces after it and renames the result into
    place (the same bytes as `save_npy` of the concatenated pieces). `read` returns
    what was appended so far (to sort it at the end of a task)."""

    def __init__(self, path: Path, dtype):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.n = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path)
        self._raw = self.path.with_name(f"{self.path.name}.{os.getpid()}.raw")
        self._f = open(self._raw, "wb")  # noqa: SIM115 - closed in close/discard

    def append(self, arr) -> None:
        a = np.ascontiguousarray(arr, dtype=self.dtype)
        if a.size:
            self._f.write(a.tobytes())
            self.n += a.size

    def read(self) -> np.ndarray:
        self._f.flush()
        return np.fromfile(self._raw, dtype=self.dtype)

    def close(self) -> None:
        self._f.close()
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.n,)}
        with open(tmp, "wb") as out, open(self._raw, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, self.path)
        self.discard()

    def discard(self) -> None:
        self._f.close()
        self._raw.unlink(missing_ok=True)


class ParquetAppender:
    """A Parquet file written as tables arrive: every `rows` rows become one row group
    (zstd), so a task holds at most that many rows. Written to a temporary name and
    renamed at `close`; a file of at most `rows` rows has the bytes of `save_parquet`."""

    def __init__(self, path: Path, schema, rows: int):
        self.path = Path(path)
        self.schema = schema
        self.rows = rows
        self._tables: list = []
        self._held = 0
        self._writer = None
        remove_stale(self.path)
        self._tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")

    def write(self, table) -> None:
        self._tables.append(table)
        self._held += table.num_rows
        if self._held >= self.rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Writes full row groups (and, when `final`, the rest)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        first = self._writer is None
        if first:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        table = pa.concat_tables(self._tables).combine_chunks() if self._tables else self.schema.empty_table()
        end = table.num_rows if final else table.num_rows - table.num_rows % self.rows
        # a file without rows still gets its one (empty) row group, as save_parquet writes it
        for start in range(0, max(end, 1 if final and first else 0), self.rows):
            self._writer.write_table(table.slice(start, min(self.rows, end - start)))
        self._tables = [table.slice(end)] if end < table.num_rows else []
        self._held = table.num_rows - end

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()
        os.replace(self._tmp, self.path)


def remove_stale(path: Path) -> None:
    """Temporary files a killed task left next to `path` (its rerun writes new ones)."""
    path = Path(path)
    if path.parent.is_dir():
        for f in path.parent.glob(f"{path.name}.*"):
            if f.suffix in (".raw", ".tmp"):
                f.unlink(missing_ok=True)


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def save_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def save_json(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def maybe_die(job: str) -> None:
    """Fault injection for the resume tests: with SHIKOMI_DEDUP_KILL_AT=<job>, the
    whole process group is killed with SIGKILL here (after partial output)."""
    if os.environ.get(KILL_ENV) == job:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def parse_date(value) -> int:
    """Crawl date as epoch milliseconds (int64); unknown dates sort last."""
    if value is None or value == "":
        return int(DATE_MISSING)
    if isinstance(value, (int, float)):
        v = float(value)
        return int(v if v > 1e11 else v * 1000)  # seconds or milliseconds
    from datetime import datetime, timezone

    s = str(value).strip()
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            dt = parsedate_to_datetime(s)
        except (TypeError, ValueError):
            return int(DATE_MISSING)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
