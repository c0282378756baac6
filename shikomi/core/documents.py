"""Reading documents in the stage-folder contract: the one place that opens
document files.

A stage input may be a stage folder (``<run_dir>/<stage>`` with ``data/`` inside),
a folder of Parquet or JSONL(.gz) files, or a single such file. Stage outputs are
Parquet (zstd), one row per document with ``id``, ``text`` and ``metadata``.

    reader_for / datatrove_reader   datatrove reader steps (files sharded over tasks)
    read_documents                  the documents of an input, in this process
    document_files / parquet_rows   the files under a folder and the rows of one
                                    Parquet file, as read by the tools
    column_batches / text_bytes     column reads of Parquet (no per-document objects),
                                    where a stage only needs a few columns
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader

from shikomi.errors import UserError

PARQUET_GLOB = "**/*.parquet"
JSONL_GLOBS = ("*.jsonl", "*.jsonl.gz", "*.jsonl.zst", "*.json.gz", "*.jsonl.bz2")
# the names of document files, and the folders of a run that hold none
DOC_SUFFIXES = (".parquet", *(g[1:] for g in JSONL_GLOBS))
SKIP_DIRS = {"logs", "report", "_sample", "checkpoints"}


def is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def resolve_input(path: str | Path) -> tuple[str, str, str | None]:
    """Return (kind, folder, glob_pattern) for a stage input.

    kind is "parquet" or "jsonl". Raises UserError naming the path when it holds
    no documents we can read.
    """
    p = str(path)
    if is_remote(p):
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
    if is_remote(folder):
        return [folder]
    return sorted(_glob.glob(str(Path(folder) / (pattern or "*")), recursive=True))


def reader_for(path: str | Path, *, doc_progress: bool = False, limit: int = -1):
    """A datatrove reader step for any stage input (files are sharded over tasks)."""
    kind, folder, pattern = resolve_input(path)
    if not is_remote(folder) and not any(Path(folder).glob(pattern or "*")):
        return EmptyReader(folder)
    return datatrove_reader(kind, folder, pattern, doc_progress=doc_progress, limit=limit)


def datatrove_reader(kind: str, folder: str, pattern: str | None, *, count_empty: bool = True, **kwargs):
    """datatrove's Parquet or JSONL reader of `folder` (`kind` "parquet" or "jsonl").

    With `count_empty`, records without text are counted as `skipped/empty_text` (a
    reader with its own `adapter` counts them there instead). The input file path is
    left out of metadata: outputs must not depend on where the data lives.
    """
    if count_empty:
        cls = CountingParquetReader if kind == "parquet" else CountingJsonlReader
    else:
        cls = ParquetReader if kind == "parquet" else JsonlReader
    reader = cls(folder, glob_pattern=pattern, **kwargs)
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


def is_doc_file(p: Path) -> bool:
    return p.is_file() and p.name.endswith(DOC_SUFFIXES) and not p.name.endswith(".tmp")


def document_files(folder: Path) -> list[Path]:
    """Document files under a folder, sorted, skipping logs and temporary files."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part in SKIP_DIRS for part in rel[:-1]):
            continue
        if is_doc_file(p):
            out.append(p)
    return out


def parquet_rows(path: Path, batch_size: int = 1024):
    """The rows of one Parquet document file as dicts, in order. Raises UserError
    naming the file when it is unreadable or has no `text` column."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's to fix
        raise UserError(f"{path}: not a readable Parquet file ({e})") from None
    names = set(pf.schema_arrow.names)
    if "text" not in names:
        raise UserError(f"{path}: Parquet file without a 'text' column (columns: {', '.join(sorted(names))})")
    for batch in pf.iter_batches(batch_size=batch_size):
        yield from batch.to_pylist()


# Column readers. The tokenize and train-tokenizer stages only need a few fields of
# every document; reading Parquet by column with pyarrow skips building a Document per
# row, which is most of the cost of reading. JSONL has no columns and goes through
# read_documents.


def column_batches(files: list[str], batch_docs: int):
    """(ids, texts, sources, epochs) batches of stage-input files: Parquet read by
    column with pyarrow (no per-document objects), JSONL through datatrove's reader.
    A missing id is `<file name>/<row in batch>`; source is `metadata.source` (None
    when absent), epoch `metadata.epoch` (0 when absent)."""
    import pyarrow.parquet as pq

    for f in files:
        if f.endswith(".parquet"):
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            cols = [c for c in ("id", "text", "metadata") if c in names]
            for b in pf.iter_batches(batch_size=batch_docs, columns=cols):
                n = b.num_rows
                texts = b.column("text").to_pylist()
                ids = b.column("id").to_pylist() if "id" in cols else [None] * n
                ids = [x if x is not None else f"{Path(f).name}/{i}" for i, x in enumerate(ids)]
                sources, epochs = [None] * n, [0] * n
                if "metadata" in cols:
                    meta = b.column("metadata")
                    fields = (
                        {meta.type.field(i).name for i in range(meta.type.num_fields)}
                        if hasattr(meta.type, "num_fields")
                        else set()
                    )
                    if "source" in fields:
                        sources = meta.field("source").to_pylist()
                    if "epoch" in fields:
                        epochs = [int(e or 0) for e in meta.field("epoch").to_pylist()]
                yield ids, texts, sources, epochs
        else:
            batch = []
            for doc in read_documents(f):
                batch.append(doc)
                if len(batch) >= batch_docs:
                    yield _doc_batch(batch)
                    batch = []
            if batch:
                yield _doc_batch(batch)


def _doc_batch(batch: list) -> tuple[list, list, list, list]:
    return (
        [d.id for d in batch],
        [d.text for d in batch],
        [d.metadata.get("source") for d in batch],
        [int(d.metadata.get("epoch", 0) or 0) for d in batch],
    )


def text_bytes(path: str | Path) -> int:
    """UTF-8 bytes of text in a stage input (Parquet: the text column only)."""
    kind, _, _ = resolve_input(path)
    total = 0
    if kind == "parquet":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for f in input_files(path):
            t = pq.read_table(f, columns=["text"])
            if t.num_rows:
                total += int(pc.sum(pc.binary_length(t["text"])).as_py() or 0)
        return total
    for doc in read_documents(path):
        total += len(doc.text.encode("utf-8"))
    return total
