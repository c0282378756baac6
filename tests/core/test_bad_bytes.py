"""Bad input bytes are counted or fatal, never invisible: JSONL lines that are not
UTF-8 (real Shift_JIS/EUC-JP bytes from chardet's test files), damaged gzip, and
files of random bytes named like WARC."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from shikomi import cli
from shikomi.core.documents import datatrove_reader, resolve_input

LEGACY = "realweb/legacy_encoded/chardet"


def japanese_lines(path: Path, encoding: str, n: int) -> list[str]:
    """`n` lines with kana from a real legacy-encoded page, decoded."""
    text = path.read_bytes().decode(encoding)
    lines = [ln.strip() for ln in text.splitlines() if any("\u3040" <= c <= "\u30ff" for c in ln)]
    assert len(lines) >= n, path
    return lines[:n]


def jsonl_line(i: int, text: str) -> str:
    return json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n"


@pytest.fixture
def sjis_lines(shared_data) -> list[str]:
    return japanese_lines(shared_data / LEGACY / "SHIFT_JIS" / "10e.org.xml", "shift_jis", 6)


def read(path: Path, encoding: str | None = None):
    kind, folder, pattern = resolve_input(path)
    reader = datatrove_reader(kind, folder, pattern, encoding=encoding)
    docs = list(reader.run(None, 0, 1))
    stats = {k: v.total for k, v in reader.stats.stats.items()}
    return docs, stats


def test_one_cp932_line_is_skipped_and_counted_the_good_lines_kept(tmp_path, sjis_lines):
    f = tmp_path / "mixed.jsonl"
    with f.open("wb") as out:
        for i, t in enumerate(sjis_lines[:5]):
            out.write(jsonl_line(i, t).encode("utf-8"))
        out.write(jsonl_line(5, sjis_lines[5]).encode("cp932"))  # the real cp932 bytes of that line
    docs, stats = read(f)
    assert [d.text for d in docs] == sjis_lines[:5]
    assert stats["skipped/undecodable_line"] == 1
    assert stats[f"skipped_file/undecodable_line/{f}"] == 1


def test_input_encoding_reads_shift_jis_and_euc_jp_on_purpose(tmp_path, shared_data, sjis_lines):
    euc = japanese_lines(shared_data / LEGACY / "EUC-JP" / "_mozilla_bug426271_text-euc-jp.html", "euc_jp", 3)
    for lines, enc in ((sjis_lines, "shift_jis"), (euc, "euc_jp")):
        f = tmp_path / f"{enc}.jsonl"
        f.write_bytes("".join(jsonl_line(i, t) for i, t in enumerate(lines)).encode(enc))
        docs, stats = read(f)
        assert docs == [] and stats["skipped/undecodable_line"] == len(lines)
        docs, stats = read(f, encoding=enc)
        assert [d.text for d in docs] == lines and "skipped/undecodable_line" not in stats


def test_a_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path, sjis_lines):
    whole = gzip.compress("".join(jsonl_line(i, t) for i, t in enumerate(sjis_lines * 200)).encode())
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(whole[: len(whole) // 2])
    docs, stats = read(f)
    assert 0 < len(docs) < 1200
    assert [d.text for d in docs] == (sjis_lines * 200)[: len(docs)]
    assert stats["skipped/unreadable_file"] == 1


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_shift_jis_jsonl_stage_fails_in_one_line_then_reads_with_input_encoding(tmp_path, sjis_lines, capsys):
    f = tmp_path / "sjis.jsonl"
    f.write_bytes("".join(jsonl_line(i, t) for i, t in enumerate(sjis_lines)).encode("shift_jis"))
    base = ["clean", "--input", str(f), "--output", str(tmp_path / "run"), "--tasks", "1"]
    rc, out, err = run(base, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "read no documents" in err and "undecodable_line=6" in err and str(f) in err
    assert "clean.input_encoding" in err
    assert f"skipped in {f}: undecodable_line=6" in out  # the console summary names the file
    rc, out, err = run([*base, "--set", "clean.input_encoding=shift_jis", "--force"], capsys)
    assert rc == 0, err
    assert "[clean] 6 documents in" in out


def test_random_bytes_named_warc_are_an_unreadable_file(tmp_path, shared_data, capsys):
    good = shared_data / "warc" / "CC-2019_jwarc-cc.warc.gz"
    folder = tmp_path / "warc"
    folder.mkdir()
    shutil.copy(good, folder / good.name)
    noise = folder / "noise.warc.gz"
    noise.write_bytes(random.Random(0).randbytes(20_000))
    rc, out, err = run(["extract", "--input", str(folder), "--output", str(tmp_path / "r"), "--tasks", "1"], capsys)
    assert rc == 0, err
    stats = json.loads((tmp_path / "r" / "extract" / "stats.json").read_text())
    assert stats["documents_in"] > 0 and stats["skipped"]["unreadable_file"] == 1
    assert stats["skipped_files"] == {str(noise): {"unreadable_file": 1}}
    assert f"skipped in {noise}: unreadable_file=1" in out
    # alone, the noise file is a failed stage, not an empty one
    (folder / good.name).unlink()
    rc, out, err = run(["extract", "--input", str(folder), "--output", str(tmp_path / "r2"), "--tasks", "1"], capsys)
    assert rc == 2 and "read no documents" in err and "unreadable_file=1" in err and "noise.warc.gz" in err


def test_a_damaged_parquet_file_is_counted_and_the_others_read(tmp_path, sjis_lines):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "text": sjis_lines[:2]}), tmp_path / "good.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1" + random.Random(1).randbytes(500))
    docs, stats = read(tmp_path)
    assert [d.text for d in docs] == sjis_lines[:2]
    assert stats["skipped/unreadable_file"] == 1
    assert stats[f"skipped_file/unreadable_file/{tmp_path / 'bad.parquet'}"] == 1
