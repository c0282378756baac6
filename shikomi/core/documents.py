"""Reading and writing documents in the stage-folder contract.

A stage input may be a stage folder (``<run_dir>/<stage>`` with ``data/`` inside),
a folder of Parquet or JSONL(.gz) files, or a single such file. Stage outputs are
Parquet (zstd), one row per document with ``id``, ``text`` and ``metadata``.
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader

from shikomi.errors import UserError

PARQUET_GLOB = "**/*.parquet"
JSONL_GLOBS = ("*.jsonl", "*.jsonl.gz", "*.jsonl.zst", "*.json.gz", "*.jsonl.bz2")


def _is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def resolve_input(path: str | Path) -> tuple[str, str, str | None]:
    """Return (kind, folder, glob_pattern) for a stage input.

    kind is "parquet" or "jsonl". Raises UserError naming the path when it holds
    no documents we can read.
    """
    p = str(path)
    if _is_remote(p):
        kind = "jsonl" if ".jsonl" in p or ".json." in p else "parquet"
        return kind, p, None
    pp = Path(p)
    if not pp.exists():
        raise UserError(f"input not found: {p}")
    if pp.is_file():
        name = pp.name
        if name.endswith(".parquet"):
            return "parquet", str(pp.parent), name
        if any(name.endswith(g[1:]) for g in JSONL_GLOBS):
            return "jsonl", str(pp.parent), name
        raise UserError(f"{p}: not a Parquet or JSONL(.gz) file")
    if (pp / "data").is_dir() or (pp / "stats.json").is_file():
        pp = pp / "data"
        pp.mkdir(exist_ok=True)
    if any(pp.glob(PARQUET_GLOB)):
        return "parquet", str(pp), PARQUET_GLOB
    for g in JSONL_GLOBS:
        if any(pp.glob(g)):
            return "jsonl", str(pp), g
    if (pp / "rejected").is_dir() or pp.name == "data":
        # an empty stage output: valid, no documents
        return "parquet", str(pp), PARQUET_GLOB
    raise UserError(
        f"{path}: not a stage folder, Parquet or JSONL input (expected <dir>/data/*.parquet, *.parquet or *.jsonl[.gz])"
    )


def input_files(path: str | Path) -> list[str]:
    """The files a stage input resolves to, sorted (local paths only)."""
    kind, folder, pattern = resolve_input(path)
    if _is_remote(folder):
        return [folder]
    return sorted(_glob.glob(str(Path(folder) / (pattern or "*")), recursive=True))


def reader_for(path: str | Path, *, doc_progress: bool = False, limit: int = -1):
    """A datatrove reader step for any stage input (files are sharded over tasks)."""
    kind, folder, pattern = resolve_input(path)
    if not _is_remote(folder) and not any(Path(folder).glob(pattern or "*")):
        return EmptyReader(folder)
    common = dict(glob_pattern=pattern, doc_progress=doc_progress, limit=limit)
    reader = CountingParquetReader(folder, **common) if kind == "parquet" else CountingJsonlReader(folder, **common)
    # datatrove adds the input file path to metadata; that would make outputs depend
    # on where the run folder lives, so we leave it out.
    reader.add_file_path = False
    return reader


class _CountEmpty:
    """datatrove's readers drop records without text with one warning; we count them."""

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file):
        doc = super().get_document_from_dict(data, source_file, id_in_file)
        if doc is None:
            self.stat_update("skipped/empty_text")
        return doc


class CountingParquetReader(_CountEmpty, ParquetReader):
    pass


class CountingJsonlReader(_CountEmpty, JsonlReader):
    pass


class EmptyReader(PipelineStep):
    """An input folder with no documents yet (an upstream stage that kept nothing)."""

    name = "empty input"
    type = "📖 - READER"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data


def read_documents(path: str | Path, limit: int = -1):
    """Iterate the documents of a stage input in this process (tools, tests)."""
    reader = reader_for(path, limit=limit)
    yield from reader.run(None, 0, 1)
