"""The one module that uses datatrove's private members and replaces its module
functions (tests/test_dependency_privates.py checks that no other module does).

    StreamingParquetWriter   ParquetWriter with a union schema, one row group in memory
    document_row             datatrove's Document -> row dict, without its deep copy
    explicit_sbatch_args     the #SBATCH arguments a Slurm executor was given
    replace_task_logger      datatrove's per-task logger set-up and tear-down
    sbatch_launcher          datatrove's sbatch call, for the duration of a block

A datatrove upgrade that renames one of these breaks this module only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import IO

from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

# Rows per Arrow table while a row group fills: the Parquet writer's write_batch_size
# (pyarrow's default, 1024), so that pages break where they would for one contiguous table.
ARROW_BATCH_ROWS = 1024


_ATOMS = frozenset({str, int, float, bool, type(None)})


class _NotPlain(Exception):
    pass


def _plain_copy(v):
    """A copy of `v` made of new dicts, lists and tuples around the same atoms (str,
    int, float, bool, None): what `dataclasses.asdict` makes of such a value. Raises
    _NotPlain for anything else (asdict deep-copies those, and the caller lets it)."""
    t = type(v)
    if t in _ATOMS:
        return v
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) not in _ATOMS:
                raise _NotPlain
            out[k] = _plain_copy(x)
        return out
    if t is list:
        return [_plain_copy(x) for x in v]
    if t is tuple:
        return tuple(_plain_copy(x) for x in v)
    raise _NotPlain


def document_row(writer: DiskWriter, document) -> dict:
    """The dict datatrove's DiskWriter makes of a Document (`_default_adapter`: the
    non-empty fields of `dataclasses.asdict(document)`), built directly: asdict walks
    every value with a generic deep copy, a fifth of the CPU time of a stage that
    writes what it reads (langid, profiled). Documents with media, a writer that
    expands metadata, or metadata holding other than dicts, lists, tuples and atoms
    take datatrove's own path. Equal rows, so equal Parquet bytes (tested)."""
    text, doc_id, meta = document.text, document.id, document.metadata
    if document.media or writer.expand_metadata or type(text) not in _ATOMS or type(doc_id) not in _ATOMS:
        return writer._default_adapter(document)
    try:
        meta = _plain_copy(meta)
    except _NotPlain:
        return writer._default_adapter(document)
    row = {}
    if text:
        row["text"] = text
    if doc_id:
        row["id"] = doc_id
    if meta:
        row["metadata"] = meta
    return row


class StreamingParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter whose schema is the union of every row of a file,
    holding at most one row group in memory.

    Rows are held as Python dicts until there are `ARROW_BATCH_ROWS` of them, then
    as an Arrow table (compact: no Python object per value); once a row group holds about
    `row_group_bytes` of text its tables are unified into one (its schema unified into
    the file's) and spilled to a local temporary Arrow IPC file. At close, each
    spilled table is conformed to the file's unified schema and written as one row
    group of the Parquet file through `open_writer(handle, schema)`. A file that never
    filled a row group is written at once with `write_table(table, handle)`: the same
    bytes as a whole-file writer of all its rows (`pa.Table.from_pylist(rows)`).

    (`ParquetWriter(schema=...)` is not enough: the schema that fits every row is
    known only once all rows are in, and datatrove writes batches as they come.)
    """

    def __init__(self, output_folder, output_filename: str, row_group_bytes: int, **kwargs):
        kwargs.setdefault("adapter", document_row)
        super().__init__(output_folder, output_filename=output_filename, **kwargs)
        self.row_group_bytes = row_group_bytes
        self._rows: dict[str, list[dict]] = {}
        self._tables: dict[str, list] = {}  # the current row group's rows as Arrow tables
        self._sizes: dict[str, int] = {}
        self._handles: dict[str, IO] = {}
        self._spills: dict[str, list[str]] = {}
        self._schemas: dict[str, object] = {}
        self._spill_dir: str | None = None

    def write_table(self, table, handle: IO) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def open_writer(self, handle: IO, schema):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def row_bytes(document: dict) -> int:
        text = document.get("text")
        return (len(text) if isinstance(text, str) else 0) + 256

    def _write(self, document: dict, file_handler: IO, filename: str):
        rows = self._rows.setdefault(filename, [])
        rows.append(document)
        self._handles[filename] = file_handler
        if len(rows) >= ARROW_BATCH_ROWS:
            self._to_arrow(filename)
        size = self._sizes[filename] = self._sizes.get(filename, 0) + self.row_bytes(document)
        if size >= self.row_group_bytes:
            self._spill(filename)

    def _to_arrow(self, filename: str) -> None:
        import pyarrow as pa

        rows = self._rows.pop(filename, None)
        if rows:
            self._tables.setdefault(filename, []).append(pa.Table.from_pylist(rows))

    def _row_group(self, filename: str):
        """The current row group's rows as one table (None when it has none): its Arrow
        tables conformed to the union of their schemas, in one table of several chunks.
        Every chunk but the last holds the Parquet writer's write_batch_size rows, so
        the pages written are those of one contiguous table of the same rows."""
        import pyarrow as pa

        self._to_arrow(filename)
        tables = self._tables.pop(filename, [])
        if not tables:
            return None
        schema = tables[0].schema
        for t in tables[1:]:
            if t.schema != schema:
                schema = pa.unify_schemas([schema, t.schema], promote_options="permissive")
        return pa.concat_tables([conform_table(t, schema) for t in tables])

    def _spill(self, filename: str) -> None:
        import tempfile

        import pyarrow as pa

        table = self._row_group(filename)
        self._sizes[filename] = 0
        prev = self._schemas.get(filename)
        self._schemas[filename] = (
            table.schema if prev is None else pa.unify_schemas([prev, table.schema], promote_options="permissive")
        )
        if self._spill_dir is None:
            self._spill_dir = tempfile.mkdtemp(prefix="shikomi-rowgroups-")
        spills = self._spills.setdefault(filename, [])
        path = os.path.join(self._spill_dir, f"{len(self._spills)}-{len(spills)}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        spills.append(path)

    def close_file(self, filename):
        import pyarrow as pa

        if self._spills.get(filename) and (self._rows.get(filename) or self._tables.get(filename)):
            self._spill(filename)  # the last, partial row group
        rows = self._row_group(filename)
        handle = self._handles.pop(filename, None)
        spills = self._spills.pop(filename, [])
        schema = self._schemas.pop(filename, None)
        self._sizes.pop(filename, None)
        if handle is not None and spills:
            writer = self.open_writer(handle, schema)
            for path in spills:
                with pa.memory_map(path) as src:
                    table = pa.ipc.open_file(src).read_all()
                writer.write_table(conform_table(table, schema))
                del table
                os.remove(path)
            writer.close()
        elif rows is not None and handle is not None:
            self.write_table(rows, handle)
        DiskWriter.close_file(self, filename)

    def close(self):
        for filename in list(self._handles):
            self.close_file(filename)
        self._writers.clear()
        self._batches.clear()
        self.output_mg.close()
        if self._spill_dir is not None:
            import shutil

            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None


def _conform_array(arr, typ):
    """`arr` as type `typ`, a supertype from `unify_schemas`: struct fields missing
    from `arr` become nulls, fields are put in `typ`'s order, other types are cast."""
    import pyarrow as pa

    if arr.type == typ:
        return arr
    if pa.types.is_struct(typ) and pa.types.is_struct(arr.type):
        have = {arr.type.field(i).name for i in range(arr.type.num_fields)}
        children = [
            _conform_array(arr.field(f.name), f.type) if f.name in have else pa.nulls(len(arr), f.type) for f in typ
        ]
        return pa.StructArray.from_arrays(children, fields=list(typ), mask=arr.is_null() if arr.null_count else None)
    return arr.cast(typ)


def conform_table(table, schema):
    """`table` with `schema` (a unification of its own schema with others')."""
    import pyarrow as pa

    if table.schema == schema:
        return table
    cols = []
    for field in schema:
        i = table.schema.get_field_index(field.name)
        if i < 0:
            cols.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table.column(i)
        cols.append(pa.chunked_array([_conform_array(c, field.type) for c in col.chunks], type=field.type))
    return pa.Table.from_arrays(cols, schema=schema)


def explicit_sbatch_args(executor) -> dict:
    """The `sbatch_args` a SlurmPipelineExecutor was constructed with (before its
    defaults are added)."""
    return executor._sbatch_args


def replace_task_logger(add: Callable, close: Callable) -> None:
    """Make datatrove's executors set up (`add(logging_dir, rank, local_rank=0,
    node_rank=-1) -> logfile`) and tear down (`close(logfile)`) each task's logger
    with these functions. datatrove has no option for this."""
    import datatrove.executor.base as base

    base.add_task_logger = add
    base.close_task_logger = close


@contextlib.contextmanager
def sbatch_launcher(launch: Callable):
    """Inside the block, datatrove's Slurm executor submits with
    `launch(contents, retriever, *sbatch_args) -> job_id` instead of calling sbatch."""
    import datatrove.executor.slurm as ds

    real = ds.launch_slurm_job
    ds.launch_slurm_job = launch
    try:
        yield
    finally:
        ds.launch_slurm_job = real
