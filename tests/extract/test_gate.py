"""The Japanese gate (on by default) on real pages: Japanese pages with their original
heads (and without them), Chinese and Korean pages on the same templates, real
legacy-encoded bytes and the non-Japanese records of real CommonCrawl WARCs."""

import re
from pathlib import Path

import pytest
import yaml

from shikomi import cli
from shikomi.config import load_config
from shikomi.core.documents import read_documents
from shikomi.errors import UserError
from shikomi.executor.run import run_stage
from shikomi.extract.demo_data import Rec, ja_page, ja_paragraphs, write_warc
from shikomi.extract.evaluation import char_bigram_f1, japanese_references, realweb_pages
from shikomi.extract.gate import JapaneseGate
from shikomi.extract.stage import EXTRACTORS, build
from shikomi.text.charset import decode_html


def gate_of(raw: bytes, gate: JapaneseGate | None = None):
    dec = decode_html(raw)
    return (gate or JapaneseGate()).decide_html(dec.text, dec.charset, dec.method)


def run_extract(run_dir, inp, **extract):
    cfg = load_config(None, {"run_dir": str(run_dir), "extract": extract, "executor": {"tasks": 1}})
    stats = run_stage(build(cfg, str(inp)), cfg)
    return stats, {d.metadata["url"]: d for d in read_documents(Path(run_dir) / "extract")}


def headless(html: str) -> str:
    """The page as a head-only gate cannot judge it: no <head>, no lang, no charset
    meta, every non-ASCII character a numeric character reference."""
    html = re.sub(r"(?is)<head\b.*?</head\s*>", "", html)
    html = re.sub(r"(?i)\s(xml:)?lang\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", "", html)
    html = re.sub(r"(?i)<meta[^>]*>", "", html)
    return html


@pytest.mark.realdata
def test_recall_and_skip_share_on_real_pages(shared_data):
    pages = realweb_pages(shared_data / "realweb")
    ja = [(f, gate_of(raw)) for f, role, raw in pages if role == "ja"]
    neg = [(f, gate_of(raw)) for f, role, raw in pages if role != "ja"]
    assert len(ja) >= 200 and len(neg) >= 200
    recall = sum(r.passed for _, r in ja) / len(ja)
    skipped = sum(not r.passed for _, r in neg) / len(neg)
    print(f"gate on realweb: recall {recall:.4f} (n={len(ja)}), non-Japanese skipped {skipped:.4f} (n={len(neg)})")
    assert recall >= 0.99, [f for f, r in ja if not r.passed]
    assert skipped >= 0.9
    # the hard positives (no charset meta, no lang, ASCII titles) pass on their kana
    w3m = {f: r for f, r in ja if "debian_w3m" in f}
    assert len(w3m) == 3 and all(r.passed and r.reason == "kana" for r in w3m.values())
    # a negative is skipped for what it declares or for having text and no kana
    assert {r.reason for _, r in neg if not r.passed} <= {"lang_ko", "lang_zh", "no_kana"}
    # what passes among them is undecided (a few kana, or bytes that do not decode), never "Japanese"
    assert all(r.reason.startswith("undecided_") for _, r in neg if r.passed)


@pytest.mark.realdata
def test_pages_without_head_charset_or_lang_still_pass(shared_data):
    """Every real Japanese HTML page stripped of its head, lang and meta, and then
    entity-escaped to pure ASCII, still passes; the Korean and Chinese pages stripped the
    same way are still skipped."""
    pages = [(f, role, raw) for f, role, raw in realweb_pages(shared_data / "realweb") if f.endswith(".html")]
    ja = neg = 0
    for f, role, raw in pages:
        html = headless(decode_html(raw).text)
        for body in (html.encode("utf-8"), html.encode("ascii", errors="xmlcharrefreplace")):
            r = gate_of(body)
            if role == "ja":
                ja += 1
                assert r.passed and r.reason != "lang", (f, r)
            elif not r.reason.startswith("undecided_"):  # next to no text left, or a few kana
                neg += 1
                assert not r.passed and r.reason == "no_kana", (f, r)
    print(f"headless pages: {ja} Japanese passed, {neg} others skipped")
    assert ja >= 2 * 150 and neg >= 2 * 100


@pytest.mark.realdata
def test_fast_checks_decide_as_the_plain_definitions_on_real_pages(shared_data):
    """The byte-level shortcuts (kana lead bytes, letters counted a chunk at a time)
    give the same answers as the plain definitions, and the same decisions."""
    from shikomi.extract.gate import _KANA, _LETTERS, _TEXT_RUN, _has_kana_bytes, _has_letters, _maybe_kana

    g = JapaneseGate()
    pages = [raw for _, _, raw in realweb_pages(shared_data / "realweb")]
    # a page whose first text run is a long inline style sheet, with kana only far behind it
    style = "".join(f".c{i}{{margin:{i % 7}px}}" for i in range(3000))
    pages.append(f"<html><head><style>{style}</style></head><body><p>ok 今日は晴れ</p></body></html>".encode())
    pages.append(b"<html><body><p>" + b"&#12354;" * 3 + b" no raw kana</p></body></html>")
    assert len(pages) >= 400
    for raw in pages:
        dec = decode_html(raw)
        plain = b"\xe3\x81" in raw or b"\xe3\x82" in raw or b"\xe3\x83" in raw or b"&#" in raw
        assert _maybe_kana(raw, 0) == plain
        assert _maybe_kana(raw[:300], 100) == (
            b"&#" in raw[:300] or any(b"\xe3" + bytes([c]) in raw[:300] for c in (0x81, 0x82, 0x83))
        )
        assert _has_kana_bytes(dec.text) == bool(_KANA.search(dec.text))
        letters = sum(len(x) for m in _TEXT_RUN.finditer(dec.text) for x in _LETTERS.findall(m.group(1)))
        for n in (1, 30, 5000):
            assert _has_letters(dec.text, n) == (letters >= n)
        assert g.decide_html(dec.text, dec.charset, dec.method, None, raw) == g.decide_html(
            dec.text, dec.charset, dec.method
        )


def test_undecidable_pages_go_on_to_extraction():
    g = JapaneseGate()
    # no head, no text to judge by: passes
    assert gate_of(b"<html><body><img src=a.png></body></html>", g).reason == "undecided_little_text"
    assert gate_of(b"<html><head><title>Top</title></head><body></body></html>", g).passed
    # bytes that decode as nothing known: passes
    assert gate_of(bytes(range(0x80, 0x100)) * 20, g).reason == "undecided_lossy"
    # a Chinese page with a single kana: not Japanese, not surely foreign either
    zh = "<html><body><p>" + "中华人民共和国是世界上人口最多的国家之一的" * 5 + "の</p></body></html>"
    assert gate_of(zh.encode(), g).reason == "undecided_few_kana"
    # text, no kana: skipped, with the language the page declares
    en = "<html lang='en-US'><body><p>" + "The quick brown fox jumps over the lazy dog. " * 3 + "</p></body></html>"
    assert gate_of(en.encode(), g) == type(gate_of(en.encode(), g))(False, "lang_en", 0, 0)
    # a Japanese blog mislabelled lang="en" with an ASCII title passes on its kana
    blog = "<html lang='en'><head><title>My blog</title></head><body><p>今日は晴れでした。散歩に行きました。</p></body></html>"
    assert gate_of(blog.encode(), g).reason == "kana"


@pytest.mark.realdata
def test_gate_in_the_extract_stage_counts_every_skip(shared_data, tmp_path):
    """Real Japanese pages (original heads, in their own bytes, without a charset in
    the HTTP header), Korean/Chinese negatives and the real CommonCrawl WARCs through
    the extract stage with the default config."""
    recs, roles = [], {}
    for f, role, raw in realweb_pages(shared_data / "realweb"):
        url = f"https://realweb.example/{f}"
        recs.append(Rec(url=url, body=raw, content_type="text/html"))
        roles[url] = role
    write_warc(tmp_path / "in" / "realweb.warc.gz", recs)
    for f in sorted((shared_data / "warc").glob("*.warc.gz")):
        if ".wat." not in f.name:
            (tmp_path / "in" / f.name).write_bytes(f.read_bytes())
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in")
    g = stats["japanese_gate"]
    # every record is a document or a counted skip; every gate skip has its reason
    assert stats["documents_in"] == stats["documents_out"] + sum(stats["skipped"].values())
    gate_skips = {k.split(":", 1)[1]: v for k, v in stats["skipped"].items() if k.startswith("japanese_gate:")}
    assert gate_skips == g["skipped"] and g["records"] == sum(g["passed"].values()) + sum(g["skipped"].values())
    ja = [u for u, r in roles.items() if r == "ja"]
    lost = [u for u in ja if u not in docs]
    # a Japanese page not among the documents is there for a reason other than the gate
    assert len(lost) <= 0.01 * len(ja), lost
    non_ja = stats["documents_in"] - len(ja)  # Korean/Chinese pages and the CommonCrawl records
    skipped = sum(g["skipped"].values())
    print(f"extract stage: {len(ja) - len(lost)}/{len(ja)} Japanese pages kept, {skipped}/{non_ja} others skipped")
    assert skipped / non_ja >= 0.9
    neg_docs = [u for u in docs if roles.get(u, "").startswith("neg")]
    assert len(neg_docs) <= 0.05 * sum(r.startswith("neg") for r in roles.values())


def test_wet_records_are_gated_by_their_text(tmp_path):
    recs = [
        Rec(url="https://w.example.jp/", body="\n".join(ja_paragraphs()[:2]).encode(), rtype="conversion"),
        Rec(url="https://w.example.com/", body=b"An English page about the weather. " * 5, rtype="conversion"),
        Rec(url="https://w.example.org/", body=b"", rtype="conversion"),
    ]
    write_warc(tmp_path / "in" / "x.warc.wet.gz", recs)
    stats, docs = run_extract(tmp_path / "run", tmp_path / "in")
    assert set(docs) == {"https://w.example.jp/"}
    assert stats["skipped"] == {"japanese_gate:no_kana": 1, "empty_text": 1}
    assert stats["japanese_gate"]["passed"] == {"kana": 1, "undecided_little_text": 1}


def test_japanese_pages_get_their_own_extractor(tmp_path):
    """extractor_ja for pages that look Japanese, `extractor` for the rest (gate off)."""
    ja = ja_page("記事", ja_paragraphs()[:3])
    en = "<html><body><article><p>" + "A long English paragraph about gardens. " * 20 + "</p></article></body></html>"
    write_warc(
        tmp_path / "in" / "m.warc.gz",
        [Rec(url="https://a.example.jp/", body=ja.encode()), Rec(url="https://b.example.com/", body=en.encode())],
    )
    _, docs = run_extract(
        tmp_path / "run",
        tmp_path / "in",
        extractor="trafilatura",
        extractor_ja="resiliparse",
        japanese_gate={"enabled": False},
    )
    assert docs["https://a.example.jp/"].text == EXTRACTORS["resiliparse"](ja).strip()
    assert docs["https://b.example.com/"].text == EXTRACTORS["trafilatura"](en).strip()
    assert EXTRACTORS["resiliparse"](ja).strip() != EXTRACTORS["trafilatura"](ja).strip()


@pytest.mark.realdata
def test_default_extractor_on_japanese_references(shared_data):
    """Character-bigram F1 of the default extractor against the reference article text
    of real Japanese news/IT pages (bench: `make bench ARGS=gate` compares both)."""
    refs = japanese_references(shared_data / "realweb")
    assert len(refs) >= 40
    extract = EXTRACTORS[load_config(None, {}).extract.extractor]
    f1 = [char_bigram_f1(extract(decode_html(raw).text), ref) for _, raw, ref in refs]
    mean = sum(f1) / len(f1)
    print(f"default extractor, char-bigram F1 on {len(refs)} Japanese pages: {mean:.3f}")
    assert mean >= 0.811


def test_a_mix_taking_english_from_a_gated_crawl_fails_at_load_time(tmp_path, capsys):
    """The gate skips English pages before extraction, so `langid/en` of the same run
    would be (almost) empty: the demo with the gate on stops before its first stage,
    with one line that names the source and both ways out."""
    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    run = tmp_path / "run"
    f = tmp_path / "gated.yaml"
    f.write_text(
        yaml.safe_dump({"base": str(demo), "run_dir": str(run), "extract": {"japanese_gate": {"enabled": True}}})
    )
    rc = cli.main(["run", "--config", str(f)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "mix.sources[1] (en) reads {run_dir}/langid/en" in err
    assert "extract.japanese_gate.enabled: false" in err and "another source" in err
    assert not (run / "extract").exists()

    with pytest.raises(UserError, match=r"mix.sources\[0\] \(en\) reads .*langid/en/data"):  # spelt out in full too
        load_config(None, {"run_dir": str(run), "mix": {"sources": [{"name": "en", "path": f"{run}/langid/en/data"}]}})
    # nothing to say: the gate is off, the source is Japanese or rejected pages, English comes from
    # elsewhere, or langid reads documents the gate never saw
    for over in (
        {"extract": {"japanese_gate": {"enabled": False}}},
        {"mix": {"sources": [{"name": "ja", "path": "{run_dir}/langid/ja"}]}},
        {"mix": {"sources": [{"name": "ja"}, {"name": "en", "path": "corpora/en.jsonl", "format": "jsonl"}]}},
        {"langid": {"input": "corpora/pages.jsonl"}},
    ):
        cfg = load_config(f, over)
        assert cfg.run_dir == str(run)
