"""Writing documents in the stage-folder contract: Parquet (zstd), one row per
document with `id`, `text` and `metadata`; kept documents to `data/`, dropped ones
to `rejected/`."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

from shikomi.core.rules import count_route


class DocWriter(ParquetWriter):
    """datatrove's ParquetWriter with a schema that is the union of all rows.

    datatrove infers the schema from the first document, which breaks when later
    documents carry other metadata keys (a rejected document of another rule, say).
    We buffer the task's rows and write each file once with ``pa.Table.from_pylist``,
    which unifies struct fields; output is deterministic for the same input.
    """

    name = "📒 shikomi Parquet"

    def __init__(self, output_folder, output_filename: str | None = None):
        super().__init__(
            output_folder,
            output_filename=output_filename or "${rank}.parquet",
            compression="zstd",
            use_content_defined_chunking=False,
            max_file_size=-1,
        )
        self._rows: dict[str, list[dict]] = {}
        self._handles: dict[str, IO] = {}

    def _write(self, document: dict, file_handler: IO, filename: str):
        self._rows.setdefault(filename, []).append(document)
        self._handles[filename] = file_handler

    def close_file(self, filename):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._rows.pop(filename, None)
        handle = self._handles.pop(filename, None)
        if rows and handle is not None:
            table = pa.Table.from_pylist(rows)
            pq.write_table(table, handle, compression="zstd", use_content_defined_chunking=False)
        DiskWriter.close_file(self, filename)

    def close(self):
        for filename in list(self._rows):
            self.close_file(filename)
        self._writers.clear()
        self._batches.clear()
        self.output_mg.close()


class StageWriter(PipelineStep):
    """Writes kept documents to `data/` and rejected ones to `rejected/`, counting both."""

    name = "write"
    type = "💽 - WRITER"

    def __init__(self, out_dir: str, data_subdir: str = "data", write_rejected: bool = True):
        super().__init__()
        self.out_dir = out_dir
        self.data_subdir = data_subdir
        self.write_rejected = write_rejected

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        (Path(self.out_dir) / self.data_subdir).mkdir(parents=True, exist_ok=True)
        kept = DocWriter(str(Path(self.out_dir) / self.data_subdir))
        rejected = DocWriter(str(Path(self.out_dir) / "rejected")) if self.write_rejected else None
        with kept:
            try:
                for doc in data or []:
                    if count_route(self, doc) is None:
                        kept.write(doc, rank)
                    elif rejected is not None:
                        rejected.write(doc, rank)
            finally:
                if rejected is not None:
                    rejected.close()
        return
        yield  # a generator that yields nothing
