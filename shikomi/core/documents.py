"""Reading documents in the stage-folder contract: the one place that opens
document files.

A stage input may be a stage folder (``<run_dir>/<stage>`` with ``data/`` inside),
a folder of Parquet or JSONL(.gz) files, or a single such file. Stage outputs are
Parquet (zstd), one row per document with ``id``, ``text`` and ``metadata``.

    expand_inputs                   an input value: several paths (commas), globs, URLs
    reader_for / datatrove_reader   datatrove reader steps (files sharded over tasks;
                                    several inputs: MultiReader, http(s) URLs: UrlReader)
    read_documents                  the documents of an input, in this process
    document_files / parquet_rows   the files under a folder and the rows of one
                                    Parquet file, as read by the tools
    column_batches / text_bytes     column reads of Parquet (no per-document objects),
                                    where a stage only needs a few columns
    open_parquet / parquet_batches  how every reader here opens and reads Parquet: on
                                    the task's one thread
"""

from __future__ import annotations

import glob as _glob
import io
import os
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


def split_inputs(spec) -> list[str]:
    """The paths of an input value: a list, or one string of paths separated by commas
    (`--input A,B`; the CLI joins a repeated `--input A --input B` the same way). A
    path that exists with a comma in its name is taken whole."""
    items = [str(x) for x in spec] if isinstance(spec, (list, tuple)) else [] if spec is None else [str(spec)]
    out: list[str] = []
    for item in items:
        if "," in item and not Path(item).exists():
            out.extend(x.strip() for x in item.split(",") if x.strip())
        else:
            out.append(item)
    return out


def expand_inputs(spec) -> list[str]:
    """`split_inputs` with local globs expanded (`data/*.jsonl.gz`, `runs/**/data`;
    sorted): a glob that matches nothing is a one-line error naming it. URLs are taken
    as they are (a server cannot be globbed: list the files)."""
    out: list[str] = []
    for p in split_inputs(spec):
        if is_remote(p):
            if "*" in p.split("?")[0]:
                raise UserError(f"{p}: globs are not expanded in URLs; list the files (repeat --input or use commas)")
            out.append(p)
        elif _glob.has_magic(p) and not Path(p).exists():  # a real name with [ ] in it is not a glob
            hits = sorted(_glob.glob(os.path.expanduser(p), recursive=True))
            if not hits:
                raise UserError(f"input glob matches nothing: {p}")
            out.extend(hits)
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def resolve_input(path: str | Path) -> tuple[str, str, str | None]:
    """Return (kind, folder, glob_pattern) for a stage input.

    kind is "parquet" or "jsonl". Raises UserError naming the path when it holds
    no documents we can read. Several inputs (globs, commas) are each checked and
    the first is returned: `reader_for` and `input_files` read them all.
    """
    parts = expand_inputs(path)
    if len(parts) > 1 or (parts and parts[0] != str(path)):
        found = [resolve_input(x) for x in parts]
        return found[0]
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
    parts = expand_inputs(path)
    if len(parts) > 1:
        return [f for x in parts for f in input_files(x)]
    kind, folder, pattern = resolve_input(path)
    if is_remote(folder):
        return [folder]
    return sorted(_glob.glob(str(Path(folder) / (pattern or "*")), recursive=True))


def reader_for(path: str | Path, *, doc_progress: bool = False, limit: int = -1):
    """A datatrove reader step for any stage input (files are sharded over tasks);
    several inputs (globs, commas) are read by one `MultiReader`."""
    parts = expand_inputs(path)
    if len(parts) > 1:
        return MultiReader([reader_for(x, doc_progress=doc_progress) for x in parts], limit=limit)
    if parts and served_over_http(parts[0]):
        return UrlReader(parts, limit=limit)
    kind, folder, pattern = resolve_input(path)
    if not is_remote(folder) and not any(Path(folder).glob(pattern or "*")):
        return EmptyReader(folder)
    return datatrove_reader(kind, folder, pattern, doc_progress=doc_progress, limit=limit)


def datatrove_reader(
    kind: str, folder: str, pattern: str | None, *, count_empty: bool = True, encoding: str | None = None, **kwargs
):
    """datatrove's Parquet or JSONL reader of `folder` (`kind` "parquet" or "jsonl").

    Both skip and count what they cannot read instead of losing it silently: a JSONL
    line that does not decode in `encoding` (default UTF-8) is `skipped/undecodable_line`,
    one that is not a JSON object `skipped/invalid_json_line`, a file that cannot be
    opened or ends in the middle (bad gzip, damaged Parquet) `skipped/unreadable_file`;
    every good line of the same file is kept. Each skip also names its file
    (`skipped_file/<reason>/<path>`, see `count_skipped_file`).

    With `count_empty`, records without text are counted as `skipped/empty_text` (a
    reader with its own `adapter` counts them there instead). The input file path is
    left out of metadata: outputs must not depend on where the data lives.
    """
    if kind == "parquet":
        cls = CountingParquetReader if count_empty else SafeParquetReader
    else:
        cls = CountingJsonlReader if count_empty else SafeJsonlReader
    reader = cls(folder, glob_pattern=pattern, **kwargs)
    reader.add_file_path = False
    if encoding and kind != "parquet":
        reader.encoding = encoding
    return reader


# how many skipped lines of one file are logged one by one (the rest are counted)
LOGGED_SKIPS_PER_FILE = 3


def count_skipped_file(step: PipelineStep, reason: str, path: str, detail: str = "") -> None:
    """Count one input record (or a whole file) skipped for `reason` in `path`:
    `skipped/<reason>` for stats.json and the console, `skipped_file/<reason>/<path>`
    so that the summary names the file, and a warning in the task log."""
    from datatrove.utils.logging import logger

    step.stat_update(f"skipped/{reason}")
    step.stat_update(f"skipped_file/{reason}/{path}")
    if detail:
        logger.warning(f"{path}: {reason}: {detail}")


def set_input_encoding(pipelines, encoding: str | None) -> None:
    """Make the JSONL readers of these pipelines (lists of steps) decode their lines
    with `encoding` (a section's `input_encoding`; None keeps UTF-8)."""
    if not encoding:
        return
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(
            f"input_encoding: unknown encoding '{encoding}' (e.g. utf-8, cp932, shift_jis, euc_jp)"
        ) from None
    for pipeline in pipelines:
        for step in pipeline:
            for reader in getattr(step, "readers", [step]):  # a MultiReader's readers
                if isinstance(reader, SafeJsonlReader):
                    reader.encoding = encoding


class SafeJsonlReader(JsonlReader):
    """datatrove's JsonlReader, line by line in bytes: a line that does not decode or
    parse is skipped and counted, not the rest of its file (datatrove's reader stops
    at the first undecodable byte of a file and only logs it)."""

    encoding = "utf-8"

    def read_file(self, filepath: str):
        import orjson

        bad: dict[str, int] = {}
        li = -1
        path = self.data_folder.resolve_paths(filepath)
        try:
            with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
                if not isinstance(f, io.IOBase):  # zstandard's reader has no line iteration
                    f = io.BufferedReader(f)
                for li, raw in enumerate(f):
                    with self.track_time():
                        try:
                            line = raw.decode(self.encoding)
                        except UnicodeDecodeError as e:
                            self._skip_line(bad, "undecodable_line", path, li, f"not {self.encoding} ({e.reason})")
                            continue
                        if not line.strip():
                            continue
                        try:
                            data = orjson.loads(line)
                        except orjson.JSONDecodeError as e:
                            self._skip_line(bad, "invalid_json_line", path, li, str(e))
                            continue
                        if not isinstance(data, dict):
                            self._skip_line(bad, "invalid_json_line", path, li, "not a JSON object")
                            continue
                        document = self.get_document_from_dict(data, filepath, li)
                        if not document:
                            continue
                    yield document
        except Exception as e:  # noqa: BLE001 - a damaged file is counted; its good lines are kept
            where = f"after line {li + 1}" if li >= 0 else "at open"
            count_skipped_file(self, "unreadable_file", path, f"{where}: {type(e).__name__}: {e}")
        for reason, n in bad.items():
            if n > LOGGED_SKIPS_PER_FILE:
                from datatrove.utils.logging import logger

                logger.warning(f"{path}: {reason}: {n} lines in all")

    def _skip_line(self, bad: dict, reason: str, path: str, li: int, detail: str) -> None:
        bad[reason] = bad.get(reason, 0) + 1
        shown = bad[reason] <= LOGGED_SKIPS_PER_FILE
        count_skipped_file(self, reason, path, f"line {li + 1}: {detail}; skipped" if shown else "")


def open_parquet(source, buffer_size: int = 0):
    """pyarrow's ParquetFile of a path or open file, to be read on one thread without
    pre-buffering (with `parquet_batches`): a task is one core, and Arrow's reader
    threads leave memory behind (RSS grew by ~10 MB per pass over the same 6 MB file,
    and stays flat this way), at the same speed. `buffer_size` > 0 streams pages
    through a buffer of that size instead of reading a column chunk whole."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(source, buffer_size=buffer_size, pre_buffer=False)


def parquet_batches(pf, batch_size: int, columns: list[str] | None = None):
    """The record batches of an `open_parquet` file, decoded on this thread."""
    return pf.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


class SafeParquetReader(ParquetReader):
    """datatrove's ParquetReader; a file that cannot be read is counted
    (`skipped/unreadable_file`, after the rows read before the damage).

    As datatrove's, but read on one thread (`open_parquet`, `parquet_batches`)."""

    def read_file(self, filepath: str):
        try:
            with self.data_folder.open(filepath, "rb") as f, open_parquet(f) as pqf:
                li = 0
                columns = [self.text_key, self.id_key] if not self.read_metadata else None
                for batch in parquet_batches(pqf, self.batch_size, columns):
                    documents = []
                    with self.track_time("batch"):
                        for line in batch.to_pylist():
                            document = self.get_document_from_dict(line, filepath, li)
                            if document:
                                documents.append(document)
                                li += 1
                    yield from documents
        except Exception as e:  # noqa: BLE001 - counted and named; the other files go on
            path = self.data_folder.resolve_paths(filepath)
            count_skipped_file(self, "unreadable_file", path, f"{type(e).__name__}: {e}")


class _CountEmpty:
    """datatrove's readers drop records without text with one warning; we count them."""

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file):
        doc = super().get_document_from_dict(data, source_file, id_in_file)
        if doc is None:
            self.stat_update("skipped/empty_text")
        return doc


class CountingParquetReader(_CountEmpty, SafeParquetReader):
    pass


class CountingJsonlReader(_CountEmpty, SafeJsonlReader):
    pass


def served_over_http(path: str) -> bool:
    """A URL that `shikomi.core.remote` reads (with retries), not fsspec."""
    return str(path).startswith(("http://", "https://", "s3://commoncrawl/"))


class UrlReader(PipelineStep):
    """Parquet or JSONL(.gz/.zst/.bz2) files given as http(s) URLs, read through
    `shikomi.core.remote` (retries, resumed downloads; a file that still fails fails
    the task naming its URL). Each file is parsed by the same reader as a local one
    (datatrove's, with the skips counted here); URLs are sharded over tasks."""

    name = "url reader"
    type = "📖 - READER"

    def __init__(self, urls: list[str], limit: int = -1, policy=None):
        super().__init__()
        self.urls = list(urls)
        self.limit = limit
        self.policy = policy

    def list_files(self) -> list[str]:
        return self.urls

    def _parser(self, kind: str):
        r = datatrove_reader(kind, ".", None)
        r.stats = self.stats
        return r

    def read_files_shard(self, shard: list[str]):
        import io

        import orjson

        from shikomi.core.remote import open_input

        for url in shard:
            self.stat_update("input_files")
            name = url.split("?")[0]
            if name.endswith(".parquet"):
                with open_input(url, self.policy) as f:
                    pf = open_parquet(io.BytesIO(f.read()))  # Parquet needs seeks: read whole
                parser, i = self._parser("parquet"), 0
                for batch in parquet_batches(pf, 65_536):
                    for row in batch.to_pylist():
                        doc = parser.get_document_from_dict(row, url, i)
                        i += 1
                        if doc is not None:
                            yield doc
                continue
            parser = self._parser("jsonl")
            with open_input(url, self.policy) as raw:  # JSONL: streamed line by line
                if name.endswith(".gz"):
                    import gzip

                    stream = gzip.GzipFile(fileobj=raw)
                elif name.endswith(".zst"):
                    import zstandard

                    stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
                elif name.endswith(".bz2"):
                    import bz2

                    stream = bz2.BZ2File(raw)
                else:
                    stream = raw
                for li, line in enumerate(stream):
                    try:
                        text = line.decode(getattr(parser, "encoding", "utf-8"))
                    except UnicodeDecodeError:
                        count_skipped_file(self, "undecodable_line", url, f"line {li + 1}")
                        continue
                    if not text.strip():
                        continue
                    try:
                        data = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        data = None
                    if not isinstance(data, dict):
                        count_skipped_file(self, "invalid_json_line", url, f"line {li + 1}: not a JSON object")
                        continue
                    doc = parser.get_document_from_dict(data, url, li)
                    if doc is not None:
                        yield doc

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        shard = [u for i, u in enumerate(self.urls) if i % world_size == rank]
        for n, doc in enumerate(self.read_files_shard(shard)):
            if self.limit != -1 and n >= self.limit:
                return
            self.update_doc_stats(doc)
            yield doc


class MultiReader(PipelineStep):
    """Several inputs read as one: the files of all of them, in input order, are
    sharded over the tasks together (file i goes to task i % tasks), each read by its
    own input's reader. The readers count into this step's stats."""

    name = "multi-input reader"
    type = "📖 - READER"

    def __init__(self, readers: list, limit: int = -1):
        super().__init__()
        self.readers = readers
        self.limit = limit
        for r in readers:
            r.stats = self.stats

    def _files(self) -> list[tuple[int, str]]:
        out = []
        for i, r in enumerate(self.readers):
            if isinstance(r, EmptyReader):
                continue
            if isinstance(r, UrlReader):
                out.extend((i, u) for u in r.list_files())
                continue
            names = r.data_folder.list_files(recursive=r.recursive, glob_pattern=r.glob_pattern)
            out.extend((i, n) for n in sorted(names))
        return out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        n = 0
        for j, (i, name) in enumerate(self._files()):
            if j % world_size != rank:
                continue
            r = self.readers[i]
            r.stats = self.stats
            for doc in r.read_files_shard([name]):
                if self.limit != -1 and n >= self.limit:
                    return
                r.update_doc_stats(doc)
                n += 1
                yield doc


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
    try:
        pf = open_parquet(path)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's to fix
        raise UserError(f"{path}: not a readable Parquet file ({e})") from None
    names = set(pf.schema_arrow.names)
    if "text" not in names:
        raise UserError(f"{path}: Parquet file without a 'text' column (columns: {', '.join(sorted(names))})")
    for batch in parquet_batches(pf, batch_size):
        yield from batch.to_pylist()


# Column readers. The tokenize and train-tokenizer stages only need a few fields of
# every document; reading Parquet by column with pyarrow skips building a Document per
# row, which is most of the cost of reading. JSONL has no columns and goes through
# read_documents.


def column_batches(files: list[str], batch_docs: int, arrow_text: bool = False):
    """(ids, texts, sources, epochs) batches of stage-input files: Parquet read by
    column with pyarrow (no per-document objects), JSONL through datatrove's reader.
    A missing id is `<file name>/<row in batch>`; source is `metadata.source` (None
    when absent), epoch `metadata.epoch` (0 when absent). With `arrow_text`, texts is
    the pyarrow string array itself (no Python string per document)."""
    for f in files:
        if f.endswith(".parquet"):
            # pages streamed through a 1 MiB buffer: a large row group is not held whole
            pf = open_parquet(f, buffer_size=1 << 20)
            names = pf.schema_arrow.names
            cols = [c for c in ("id", "text", "metadata") if c in names]
            for b in parquet_batches(pf, batch_docs, cols):
                n = b.num_rows
                texts = b.column("text") if arrow_text else b.column("text").to_pylist()
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
                    yield _doc_batch(batch, arrow_text)
                    batch = []
            if batch:
                yield _doc_batch(batch, arrow_text)


def _doc_batch(batch: list, arrow_text: bool = False) -> tuple[list, list, list, list]:
    texts = [d.text for d in batch]
    if arrow_text:
        import pyarrow as pa

        texts = pa.array(texts, type=pa.string())
    return (
        [d.id for d in batch],
        texts,
        [d.metadata.get("source") for d in batch],
        [int(d.metadata.get("epoch", 0) or 0) for d in batch],
    )


def text_bytes(path: str | Path) -> int:
    """UTF-8 bytes of text in a stage input (Parquet: the text column only)."""
    parts = expand_inputs(path)
    if len(parts) > 1:
        return sum(text_bytes(x) for x in parts)
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
