"""The routing writer streams: row groups are flushed by size, the rows and the union
schema are those of a whole-file write, and a file of one row group has its bytes."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document

from shikomi.core.writers import DocWriter


def _docs(shared_data: Path) -> list[Document]:
    docs = []
    with open(shared_data / "ja" / "jawiki_annotated_corpus_leads.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == 1500:
                break
            md = {"source": "wiki"}
            if len(json.loads(line)["text"]) < 60:
                md["reject_reason"] = "length:too_short"  # a key only some rows carry
            if i == 1400:
                md["late"] = {"n": i}  # a struct field first seen after many row groups
            docs.append(Document(text=json.loads(line)["text"], id=f"ja/{i}", metadata=md))
    return docs


def _write(folder: Path, docs: list[Document], row_group_bytes: int) -> tuple[Path, int]:
    w = DocWriter(str(folder), row_group_bytes=row_group_bytes)
    peak = 0
    for d in docs:
        w.write(d, 0)
        peak = max(peak, sum(w._sizes.values()))
    w.close()
    return folder / "00000.parquet", peak


def _reference(docs: list[Document]) -> pa.Table:
    return pa.Table.from_pylist([{"text": d.text, "id": d.id, "metadata": d.metadata} for d in docs])


def test_row_groups_flushed_by_size_same_rows_and_union_schema(shared_data, tmp_path):
    docs = _docs(shared_data)
    assert any("reject_reason" in d.metadata for d in docs)
    limit = 20_000
    path, peak = _write(tmp_path / "small", docs, limit)
    pf = pq.ParquetFile(path)
    longest = max(len(d.text) for d in docs) + 256
    assert peak < limit + longest  # never more than one row group buffered
    assert pf.num_row_groups >= sum(len(d.text) for d in docs) // (limit + longest)
    assert pf.num_row_groups > 10
    table, ref = pf.read(), _reference(docs)
    assert table.schema == ref.schema  # `late` found in a late row group is in the file's schema
    assert table.to_pylist() == ref.to_pylist()
    assert not list(tmp_path.glob("**/*.arrow"))


def test_one_row_group_is_a_whole_file_write(shared_data, tmp_path):
    docs = _docs(shared_data)
    path, _ = _write(tmp_path / "big", docs, 1 << 40)
    assert pq.ParquetFile(path).num_row_groups == 1
    buf = io.BytesIO()
    pq.write_table(_reference(docs), buf, compression="zstd", use_content_defined_chunking=False)
    assert path.read_bytes() == buf.getvalue()
    again, _ = _write(tmp_path / "again", docs, 20_000)
    assert again.read_bytes() == _write(tmp_path / "again2", docs, 20_000)[0].read_bytes()  # deterministic


def test_rows_held_as_arrow_tables_same_bytes_as_a_whole_file_write(shared_data, tmp_path):
    """More rows than one Arrow table holds, with metadata that changes between tables
    (a key first seen in the third, an int that is a float later, a null-only key): the
    writer holds fewer than ARROW_BATCH_ROWS rows as Python objects, and the file (one
    row group, or several) is what a writer of all the rows as one table gives."""
    from shikomi.core.datatrove_adapter import ARROW_BATCH_ROWS

    docs = []
    with open(shared_data / "ja" / "jawiki_annotated_corpus_leads.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == 3 * ARROW_BATCH_ROWS + 100:
                break
            md = {"score": i if i < ARROW_BATCH_ROWS else i + 0.5, "none": None}
            if i >= 2 * ARROW_BATCH_ROWS + 7:
                md["late"] = {"n": i, "tags": ["a"] * (i % 3)}
            docs.append(Document(text=json.loads(line)["text"], id=f"ja/{i}", metadata=md))
    w = DocWriter(str(tmp_path / "one"), row_group_bytes=1 << 40)
    held = 0
    for d in docs:
        w.write(d, 0)
        held = max(held, max((len(r) for r in w._rows.values()), default=0))
    w.close()
    assert held < ARROW_BATCH_ROWS
    buf = io.BytesIO()
    pq.write_table(_reference(docs), buf, compression="zstd", use_content_defined_chunking=False)
    assert (tmp_path / "one" / "00000.parquet").read_bytes() == buf.getvalue()
    path, _ = _write(tmp_path / "groups", docs, 500_000)  # a row group spans two Arrow tables or more
    pf = pq.ParquetFile(path)
    assert pf.num_row_groups > 1
    assert max(pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)) > ARROW_BATCH_ROWS
    assert pf.read().to_pylist() == _reference(docs).to_pylist()


def test_arrow_buffers_come_from_the_system_allocator_unless_the_user_chose_one():
    """pyarrow's mimalloc pool keeps freed pages (a task's peak grew with its input);
    importing shikomi selects the system pool before pyarrow allocates."""
    import subprocess
    import sys

    code = "import shikomi, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "system"
    env["ARROW_DEFAULT_MEMORY_POOL"] = "mimalloc"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "mimalloc"


def test_document_row_is_datatroves_row_without_the_deep_copy(tmp_path):
    """The writer's Document -> row is datatrove's `_default_adapter` (asdict, empty
    fields left out), value for value and key order for key order, and a copy: the
    metadata changed after the write does not change the row. Values asdict would
    deep-copy some other way (numpy scalars, datetimes) and media take datatrove's path."""
    import datetime

    import numpy as np

    from shikomi.core.datatrove_adapter import document_row

    w = DocWriter(str(tmp_path))
    docs = [
        Document(text="本文", id="a", metadata={"source": "ja", "n": 3, "f": 0.5, "ok": True, "none": None}),
        Document(text="x", id="b", metadata={"nested": {"l": [1, {"d": "e"}, (2, 3)], "t": ("a", ["b"])}}),
        Document(text="", id="c", metadata={}),
        Document(text="t", id="", metadata={"empty": {}, "zero": 0, "blank": ""}),
        Document(text="t", id="d", metadata={"np": np.int64(3), "when": datetime.date(2024, 5, 1)}),
        Document(text="t", id="e", metadata={1: "int key", "k": "v"}),
        Document(text="t", id="f", media=[], metadata={"m": 1}),
    ]
    for d in docs:
        got, want = document_row(w, d), w._default_adapter(d)
        assert got == want and list(got) == list(want), d.id
        assert json.dumps(got, default=str) == json.dumps(want, default=str)
        if "metadata" in got:
            assert got["metadata"] is not d.metadata
    d = docs[1]
    row = document_row(w, d)
    d.metadata["nested"]["l"][1]["d"] = "changed"
    assert row["metadata"]["nested"]["l"][1]["d"] == "e"
    assert w.adapter.__func__ is document_row  # the writer uses it
