"""Writing documents in the stage-folder contract: Parquet (zstd), one row per
document with `id`, `text` and `metadata`; kept documents to `data/` (or a folder
chosen per document), dropped ones to `rejected/`. `StageWriter` is the one routing
writer of every stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.core.datatrove_adapter import StreamingParquetWriter
from shikomi.core.rules import count_route

# Text per row group (characters, plus a small allowance per row): the most a writer
# holds in memory per open file. Part of the output format (the row-group layout), so
# a constant rather than a setting: the same input gives the same bytes everywhere.
ROW_GROUP_BYTES = 4 << 20


class DocWriter(StreamingParquetWriter):
    """datatrove's ParquetWriter with a schema that is the union of all rows.

    datatrove infers the schema from the first document, which breaks when later
    documents carry other metadata keys (a rejected document of another rule, say).
    Rows are buffered one row group (`ROW_GROUP_BYTES` of text) at a time, as Arrow
    tables of 1,024 rows made with ``pa.Table.from_pylist`` (which unifies struct
    fields; the row group's and the file's schemas are the union of theirs). Memory
    stays flat however many documents a task writes; output is deterministic for the
    same input, and a file of one row group is what ``pq.write_table`` of all its
    rows gives.
    """

    name = "📒 shikomi Parquet"

    def __init__(self, output_folder, output_filename: str | None = None, row_group_bytes: int = ROW_GROUP_BYTES):
        super().__init__(
            output_folder,
            output_filename or "${rank}.parquet",
            row_group_bytes=row_group_bytes,
            compression="zstd",
            use_content_defined_chunking=False,
            max_file_size=-1,
        )

    def write_table(self, table, handle: IO) -> None:
        import pyarrow.parquet as pq

        pq.write_table(table, handle, compression="zstd", use_content_defined_chunking=False)

    def open_writer(self, handle: IO, schema):
        import pyarrow.parquet as pq

        return pq.ParquetWriter(handle, schema, compression="zstd", use_content_defined_chunking=False)


class StageWriter(PipelineStep):
    """The routing writer of every stage: each document leaving the stage is counted
    (`core.rules.count_route`) and written to one Parquet folder under `out_dir`.

    - a rejected document (`metadata.reject_reason`) goes to `rejected/`, unless
      `write_rejected` is False or its rule is in `unwritten_rules` (then it is only
      counted);
    - a kept document goes to `folder` (default `data/`). With `route`, a function of
      the document giving a key (the language, say), `folder` is a template with
      `{route}` in it (`"{route}/data"`) and kept documents are also counted per key
      as `docs_out/<key>` and `chars_out/<key>`.

    Files are named `output_filename` (default `${rank}.parquet`). With `make_folder`,
    the kept folder (without `route`) exists even when the task keeps nothing, so an
    empty stage output is still a stage folder downstream.
    """

    name = "write"
    type = "💽 - WRITER"

    def __init__(
        self,
        out_dir: str,
        folder: str = "data",
        *,
        route: Callable[[Document], str] | None = None,
        write_rejected: bool = True,
        unwritten_rules: tuple[str, ...] = (),
        output_filename: str | None = None,
        make_folder: bool = True,
    ):
        super().__init__()
        self.out_dir = out_dir
        self.folder = folder
        self.route = route
        self.write_rejected = write_rejected
        self.unwritten_rules = tuple(unwritten_rules)
        self.output_filename = output_filename
        self.make_folder = make_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        out = Path(self.out_dir)
        if self.make_folder and self.route is None:
            (out / self.folder).mkdir(parents=True, exist_ok=True)
        writers: dict[str, DocWriter] = {}

        def writer(folder: str) -> DocWriter:
            w = writers.get(folder)
            if w is None:
                w = writers[folder] = DocWriter(str(out / folder), output_filename=self.output_filename)
            return w

        try:
            for doc in data or []:
                rule = count_route(self, doc)
                if rule is not None:
                    if self.write_rejected and rule not in self.unwritten_rules:
                        writer("rejected").write(doc, rank)
                elif self.route is None:
                    writer(self.folder).write(doc, rank)
                else:
                    key = self.route(doc)
                    self.stat_update(f"docs_out/{key}")
                    self.stat_update(f"chars_out/{key}", value=len(doc.text))
                    writer(self.folder.format(route=key)).write(doc, rank)
        finally:
            for w in writers.values():
                w.close()
        return
        yield  # a generator that yields nothing
