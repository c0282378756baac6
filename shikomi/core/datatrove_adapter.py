"""The one module that uses datatrove's private members and replaces its module
functions (tests/test_dependency_privates.py checks that no other module does).

    WholeFileParquetWriter   ParquetWriter that writes each file once, at close
    explicit_sbatch_args     the #SBATCH arguments a Slurm executor was given
    replace_task_logger      datatrove's per-task logger set-up and tear-down
    sbatch_launcher          datatrove's sbatch call, for the duration of a block

A datatrove upgrade that renames one of these breaks this module only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import IO

from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.parquet import ParquetWriter


class WholeFileParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter, buffering every row of a file and handing them to
    `write_rows(rows, handle)` once, when the file is closed.

    (`ParquetWriter(schema=...)` is not enough: the schema that fits every row is
    known only once all rows are in, and datatrove writes batches as they come, so
    the row groups, and the bytes, would differ.)
    """

    def __init__(self, output_folder, output_filename: str, **kwargs):
        super().__init__(output_folder, output_filename=output_filename, **kwargs)
        self._rows: dict[str, list[dict]] = {}
        self._handles: dict[str, IO] = {}

    def write_rows(self, rows: list[dict], handle: IO) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _write(self, document: dict, file_handler: IO, filename: str):
        self._rows.setdefault(filename, []).append(document)
        self._handles[filename] = file_handler

    def close_file(self, filename):
        rows = self._rows.pop(filename, None)
        handle = self._handles.pop(filename, None)
        if rows and handle is not None:
            self.write_rows(rows, handle)
        DiskWriter.close_file(self, filename)

    def close(self):
        for filename in list(self._rows):
            self.close_file(filename)
        self._writers.clear()
        self._batches.clear()
        self.output_mg.close()


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
