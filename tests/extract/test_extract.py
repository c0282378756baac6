"""extract: WARC/WET -> documents, on the project's own WARC quirks and on real crawls."""

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from shikomi.config import load_config
from shikomi.core.documents import read_documents
from shikomi.executor.run import run_stage
from shikomi.extract.demo_data import Rec, ja_page, ja_paragraphs, write_sample, write_warc
from shikomi.extract.stage import build

ROOT = Path(__file__).resolve().parents[2]


def run_extract(run_dir, inp, **extract):
    cfg = load_config(None, {"run_dir": str(run_dir), "extract": extract, "executor": {"tasks": 1}})
    stats = run_stage(build(cfg, str(inp)), cfg)
    docs = {d.id: d for d in read_documents(Path(run_dir) / "extract")}
    return stats, docs


def page(i=0):
    return ja_page(f"記事{i}", ja_paragraphs()[i : i + 3]).encode("utf-8")


def test_warc_quirks_are_handled_and_counted(tmp_path):
    big = ("<html><body>" + "<p>" + "あ" * 1000 + "</p>" * 1 + "</body></html>") * 2000  # ~6 MB
    recs = [
        Rec(url="https://a.example.jp/ok", body=page(0)),
        Rec(url="https://a.example.jp/v018", body=page(3), version="0.18"),
        Rec(url="https://a.example.jp/baddate", body=page(6), date="yesterday-ish"),
        Rec(url="https://a.example.jp/brackets", body=page(9), uri_brackets=True),
        Rec(url="https://a.example.jp/img", body=b"\x89PNG\r\n\x1a\n" + bytes(300), content_type="image/png"),
        Rec(url="https://a.example.jp/bin", body=b"\x00\x01" * 400, content_type="text/html"),
        Rec(url="https://a.example.jp/big", body=big.encode("utf-8")),
        Rec(url="https://a.example.jp/redirect", body=b"", status=302),
        Rec(
            url="https://a.example.jp/gz",
            body=gzip.compress(page(12), mtime=0),
            extra_http={"Content-Encoding": "gzip"},
        ),
        Rec(
            url="https://a.example.jp/deflate-broken",
            body=b"\x78\x9c\x00garbage",
            extra_http={"Content-Encoding": "deflate"},
        ),
        Rec(url="https://a.example.jp/last", body=page(15)),
    ]
    # no warcinfo record, and the last gzip member cut short
    write_warc(tmp_path / "in" / "quirks.warc.gz", recs, warcinfo=None, truncate_last=True)
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in", max_body_bytes=1_000_000)
    urls = {d.metadata["url"]: d for d in docs.values()}
    for u in ["ok", "v018", "baddate", "brackets", "gz"]:
        assert f"https://a.example.jp/{u}" in urls, u
    assert urls["https://a.example.jp/baddate"].metadata["warc_date"] == ""
    assert urls["https://a.example.jp/baddate"].metadata["warc_date_raw"] == "yesterday-ish"
    assert urls["https://a.example.jp/ok"].metadata["warc_date"] == "2024-05-20T10:00:00Z"
    assert "漁師" in urls["https://a.example.jp/ok"].text
    sk = stats["skipped"]
    assert sk["non_html_content_type"] == 1
    assert sk["binary_body"] == 1
    assert sk["body_too_large"] == 1
    assert sk["http_redirect"] == 1
    assert sk["content_encoding_error"] == 1
    assert sk["truncated_record"] == 1  # the file ends inside the last record
    # every record that reached the extractor is a document or a counted skip
    assert stats["documents_in"] == stats["documents_out"] + sum(sk.values())
    for d in docs.values():
        assert d.metadata["source"] == "quirks"
        assert d.metadata["charset"] == "utf-8"
        assert d.id.startswith("urn:uuid:")


def test_extractor_timeout_is_counted(tmp_path):
    html = ("<html><body>" + "<div><p>本文です。</p></div>" * 40000 + "</body></html>").encode()
    write_warc(tmp_path / "in" / "t.warc.gz", [Rec(url="https://t.example.jp/", body=html)])
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in", extractor="trafilatura", extractor_timeout_s=0.001)
    assert stats["skipped"] == {"extractor_timeout": 1}
    assert docs == {}


def test_wet_conversion_records(tmp_path):
    text = "\n".join(ja_paragraphs()[:2])
    write_warc(
        tmp_path / "in" / "x.warc.wet.gz", [Rec(url="https://w.example.jp/", body=text.encode(), rtype="conversion")]
    )
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in")
    (d,) = docs.values()
    assert d.text == text and d.metadata["content_type"] == "text/plain"
    assert d.metadata["source"] == "CC-MAIN-2024-22"  # from the warcinfo record


def test_demo_sample_encodings_and_skips(tmp_path):
    write_sample(tmp_path / "s")
    stats, docs = run_extract(tmp_path / "run", tmp_path / "s" / "warc")
    ja = [d for d in docs.values() if ".jp/" in d.metadata["url"]]
    charsets = {d.metadata["charset"] for d in ja}
    assert {"utf-8", "cp932", "euc_jp", "iso2022_jp"} <= charsets
    assert all("\ufffd" not in d.text for d in docs.values())
    wrong = [d for d in ja if d.metadata.get("charset_declared")]
    assert wrong, "pages with wrong labels must be decoded with the right charset"
    # the Japanese gate (on by default) skips the English pages, each counted
    assert stats["skipped"] == {
        "binary_body": 1,
        "http_error_status": 1,
        "http_redirect": 1,
        "non_html_content_type": 2,
        "japanese_gate:lang_en": 40,
    }
    assert not [d for d in docs.values() if ".jp/" not in d.metadata["url"]]
    assert stats["japanese_gate"]["skipped"] == {"lang_en": 40}
    # navigation and footers are not main content
    assert not any("プライバシーポリシー" in d.text for d in ja)


def test_rerun_is_byte_identical(tmp_path):
    write_sample(tmp_path / "s")
    run_extract(tmp_path / "r1", tmp_path / "s" / "warc")
    run_extract(tmp_path / "r2", tmp_path / "s" / "warc")
    f1 = sorted((tmp_path / "r1" / "extract" / "data").glob("*.parquet"))
    f2 = sorted((tmp_path / "r2" / "extract" / "data").glob("*.parquet"))
    assert [f.name for f in f1] == [f.name for f in f2] and f1
    for a, b in zip(f1, f2):
        assert a.read_bytes() == b.read_bytes()


def _ids(folder):
    return sorted(d.id for d in read_documents(folder))


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    """kill -9 the stage after its first task completed, rerun, compare."""
    sample = tmp_path / "s"
    write_sample(sample)
    # many small files so the run has several tasks
    recs = [Rec(url=f"https://k.example.jp/{i}", body=page(i % 25)) for i in range(60)]
    for j in range(6):
        write_warc(sample / "warc" / f"extra-{j}.warc.gz", recs[j * 10 : (j + 1) * 10])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "shikomi.cli",
        "extract",
        "--input",
        str(sample / "warc"),
        "--tasks",
        "10",
        "--workers",
        "1",
        "--set",
        "extract.extractor=trafilatura",
    ]
    p = subprocess.Popen(
        cmd + ["--output", str(tmp_path / "killed")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    comp = tmp_path / "killed" / "extract" / "logs" / "extract" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and not (comp.is_dir() and len(list(comp.iterdir())) >= 2):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = len(list(comp.iterdir())) if comp.is_dir() else 0
    assert 0 < done < 10, f"kill landed at {done} completed tasks"
    r = subprocess.run(cmd + ["--output", str(tmp_path / "killed")], env=env, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cmd + ["--output", str(tmp_path / "clean")], env=env, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    killed, clean = _ids(tmp_path / "killed" / "extract"), _ids(tmp_path / "clean" / "extract")
    assert killed == clean and len(clean) == len(set(clean))
    for a in sorted((tmp_path / "clean" / "extract" / "data").glob("*.parquet")):
        assert a.read_bytes() == (tmp_path / "killed" / "extract" / "data" / a.name).read_bytes()


def test_bad_config_is_one_clear_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("extract:\n  extractor: beautifulsoup\n")
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", "extract", "--config", str(cfg)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "extract.extractor" in r.stderr and "beautifulsoup" in r.stderr and "resiliparse" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    cfg.write_text("extract:\n  extracter: resiliparse\n")
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", "extract", "--config", str(cfg)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 2 and "unknown key 'extract.extracter'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", "extract", "--input", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_warcs_every_response_accounted_for(shared_data, tmp_path):
    warc_dir = shared_data / "warc"
    expected = 0
    for f in sorted(warc_dir.glob("*.gz")):
        with open(f, "rb") as fh:
            for _r in ArchiveIterator(
                fh, record_types=WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion
            ):
                expected += 1
    # the gate off: every response is extracted (the gate on these files: test_gate.py)
    stats, docs = run_extract(tmp_path / "run", warc_dir, japanese_gate={"enabled": False})
    assert stats["documents_in"] == expected
    assert stats["documents_in"] == stats["documents_out"] + sum(stats["skipped"].values())
    assert stats["documents_out"] > 30
    by_url = {d.metadata["url"]: d for d in docs.values()}
    # angle-bracketed WARC-Target-URI (the wget crawl) is cleaned
    assert all(not u.startswith("<") for u in by_url)
    # the CC dump name comes from warcinfo; the warcinfo-less file falls back to its name
    sources = {d.metadata["source"] for d in docs.values()}
    assert "CC-MAIN-2020-34" in sources and "CC-MAIN-2024-22" in sources
    # Chinese gb2312/gbk and Russian windows-1251 pages decode without replacement characters
    lossy = [d for d in docs.values() if d.text.count("\ufffd") > 0]
    assert len(lossy) <= 1, [(d.metadata["url"], d.metadata["charset"]) for d in lossy]


def _wrap_debian_pages(shared_data, out: Path) -> dict:
    """Real Japanese HTML (Debian manuals) in WARC records, in five encodings with
    correct, missing and wrong labels."""
    pages = sorted((shared_data / "ja" / "debian").rglob("*.html"))[:6]
    assert pages
    encs = [
        ("utf-8", "UTF-8"),
        ("cp932", "Shift_JIS"),
        ("euc_jp", "EUC-JP"),
        ("iso2022_jp", "ISO-2022-JP"),
        ("shift_jis", "Shift_JIS"),
    ]
    wrong = {
        "utf-8": "Shift_JIS",
        "cp932": "EUC-JP",
        "euc_jp": "Shift_JIS",
        "iso2022_jp": "UTF-8",
        "shift_jis": "ISO-8859-1",
    }
    recs, expect = [], {}
    import re as _re

    for i, p in enumerate(pages):
        html = p.read_text(encoding="utf-8")
        html = _re.sub(r"<meta[^>]*charset[^>]*>", "", html, flags=_re.I)
        for enc, label in encs:
            try:
                body = html.encode(enc)
            except UnicodeEncodeError:
                body = html.encode(enc, errors="xmlcharrefreplace")
            for kind, ct in (
                ("correct", f"text/html; charset={label}"),
                ("missing", "text/html"),
                ("wrong", f"text/html; charset={wrong[enc]}"),
            ):
                url = f"https://debian.example.jp/{i}/{enc}/{kind}"
                recs.append(Rec(url=url, body=body, content_type=ct))
                expect[url] = enc
    write_warc(out / "debian.warc.gz", recs)
    return expect


@pytest.mark.realdata
def test_real_japanese_html_in_five_encodings(shared_data, tmp_path):
    expect = _wrap_debian_pages(shared_data, tmp_path / "in")
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in")
    by_url = {d.metadata["url"]: d for d in docs.values()}
    assert len(by_url) >= 0.95 * len(expect)
    total_chars = sum(len(d.text) for d in by_url.values())
    fffd = sum(d.text.count("\ufffd") for d in by_url.values())
    print(f"mojibake: {1000 * fffd / total_chars:.4f} U+FFFD per 1,000 chars over {len(by_url)} pages")
    assert fffd == 0
    # the same page gives the same text in every encoding and labelling, up to the
    # well-known JIS <-> Unicode mapping differences (the "wave dash problem")
    import unicodedata

    jis = str.maketrans(
        {
            0x301C: 0xFF5E,
            0x2016: 0x2225,
            0x2212: 0xFF0D,
            0x00A2: 0xFFE0,
            0x00A3: 0xFFE1,
            0x00AC: 0xFFE2,
            0x2014: 0x2015,
            0x2015: 0x2015,
        }
    )
    groups = {}
    for url, d in by_url.items():
        groups.setdefault(url.split("/")[3], set()).add(unicodedata.normalize("NFKC", d.text.translate(jis)))
    assert all(len(v) == 1 for v in groups.values())
    assert any("パッケージ" in d.text for d in by_url.values())


def test_warc_dates_are_normalised_or_rejected():
    from shikomi.extract.stage import parse_warc_date

    assert parse_warc_date(" 2024-05-18T02:41:07Z ") == "2024-05-18T02:41:07Z"
    assert parse_warc_date("2024-05-18T02:41:07.123Z") == "2024-05-18T02:41:07Z"
    assert parse_warc_date("20240518024107") == "2024-05-18T02:41:07Z"
    assert parse_warc_date("2024-05-18T04:41:07+02:00") == "2024-05-18T04:41:07Z"
    assert parse_warc_date("2024-5-8T02:41:07Z") == "2024-05-08T02:41:07Z"
    for bad in ("2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-05-18T24:00:00Z", "yesterday", "", None):
        assert parse_warc_date(bad) is None, bad
