"""A CommonCrawl-like record mix built from ../shared/data, as WARC and as WET.

Every record kind a CommonCrawl WARC holds: one `warcinfo` per file, and per capture a
`request`, a `response` and a `metadata` record. Responses: HTML pages in many
languages (language shares roughly CommonCrawl's, about 5 % Japanese), redirects
(3xx), and non-HTML payloads (PDF, images, JSON, plain text, RSS). Pages are built
from real text and real HTML:

- Japanese: the real pages of `realweb/ja` (original heads, some without `lang` or
  charset) and Wikipedia paragraphs in a news-site template, in UTF-8, Shift_JIS and
  EUC-JP, with and without `lang` and charset; a share are near-duplicates (other
  date line, other navigation), as crawled sites repeat themselves;
- English: the 90 real news pages of the scrapinghub gold, and template pages;
- other languages: sentences of the lingua test set in a template page, with
  `lang` on most pages and inline script/style of a realistic size;
- Chinese and Korean pages of `realweb/neg` and legacy-encoded bytes.

The WET variant holds, per HTML page, a `conversion` record of its text (as
CommonCrawl's WET: text only, no request/metadata records).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

# (language, share of HTML pages): roughly CommonCrawl's 2024 language distribution
LANGS = [
    ("en", 0.44), ("ru", 0.06), ("de", 0.055), ("zh", 0.05), ("ja", 0.05), ("es", 0.045), ("fr", 0.043),
    ("it", 0.025), ("pt", 0.022), ("pl", 0.018), ("nl", 0.016), ("vi", 0.01), ("tr", 0.01), ("id", 0.01),
    ("ko", 0.008), ("cs", 0.008), ("fa", 0.008), ("sv", 0.007), ("uk", 0.007), ("ar", 0.007), ("el", 0.006),
    ("hu", 0.006), ("ro", 0.006), ("da", 0.005), ("fi", 0.004), ("th", 0.004), ("he", 0.003), ("hi", 0.003),
]  # fmt: skip
REDIRECT_SHARE = 0.03
NON_HTML_SHARE = 0.03
JA_DUP_SHARE = 0.2  # Japanese pages that repeat another page with small changes


def _lingua(data: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with gzip.open(data / "gold" / "langid" / "lingua_testdata.tsv.gz", "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            kind, lang, text = line.rstrip("\n").split("\t", 2)
            if kind == "sentences":
                out.setdefault(lang, []).append(text)
    return out


def _filler(rng: random.Random) -> str:
    """Inline script and style of a typical page (20-120 KB)."""
    n = rng.randint(200, 1200)
    css = "".join(
        f".c{i}{{margin:{i % 7}px;padding:{i % 5}px;color:#{i * 2654435761 % 0xFFFFFF:06x}}}" for i in range(n)
    )
    js = "".join(f"window.dl{i}=function(a){{return a*{i}+{rng.randint(0, 999)};}};" for i in range(n // 2))
    return f"<style>{css}</style><script>{js}</script>"


def _template(lang: str | None, charset: str | None, title: str, paras: list[str], filler: str, site: str) -> str:
    la = f' lang="{lang}"' if lang else ""
    meta = f'<meta charset="{charset}">' if charset else ""
    nav = "".join(f"<li><a href='/{i}'>{site} {i}</a></li>" for i in range(12))
    body = "".join(f"<p>{p}</p>" for p in paras)
    return (
        f"<!DOCTYPE html><html{la}><head>{meta}<title>{title}</title>{filler}</head><body>"
        f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>{title}</h1>{body}</article></main>"
        f"<footer><p>(c) {site}</p></footer></body></html>"
    )


def _ja_texts(data: Path) -> list[str]:
    paras = [json.loads(x)["text"] for x in open(data / "ja" / "jsquad_wikipedia_paragraphs.jsonl", encoding="utf-8")]
    paras += [
        json.loads(x)["text"] for x in open(data / "ja" / "jawiki_annotated_corpus_leads.jsonl", encoding="utf-8")
    ]
    return paras


def _wet_text(body: bytes, http_charset: str | None) -> str:
    from shikomi.extract.stage import extract_resiliparse
    from shikomi.text.charset import decode_html

    return extract_resiliparse(decode_html(body, http_charset).text)


def _write_warc(path: Path, records: list, dump: str = "CC-MAIN-bench") -> None:
    """Records as a gzipped WARC, one member per record (zlib level 6, as most
    crawlers write) with a `warcinfo` record first."""
    import zlib

    from shikomi.extract.demo_data import Rec, _record_bytes

    info = f"software: shikomi-bench\r\nisPartOf: {dump}\r\n".encode()
    recs = [Rec(url="", body=info, rtype="warcinfo", content_type="application/warc-fields"), *records]
    with open(path, "wb") as f:
        for r in recs:
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            f.write(c.compress(_record_bytes(r)) + c.flush())


def build_mix(data: Path, out: Path, pages: int, seed: int = 1, files: int = 2, wet: bool = True) -> dict:
    """Write `pages` captures as `files` WARC files under out/warc and the matching WET
    files under out/wet; return paths, record counts by kind and bytes."""
    from shikomi.extract.demo_data import Rec

    rng = random.Random(seed)
    lingua = _lingua(data)
    ja_paras = _ja_texts(data)
    real_ja = sorted(p for p in (data / "realweb" / "ja").rglob("*") if p.is_file() and p.suffix in (".html", ".htm"))
    real_neg = sorted(p for p in (data / "realweb" / "neg").rglob("*") if p.is_file() and p.suffix in (".html", ".htm"))
    gold = data / "gold" / "extraction" / "scrapinghub"
    gt = json.loads((gold / "ground-truth.json").read_text())
    en_real = [
        (pid, gold / "html" / f"{pid}.html.gz") for pid in sorted(gt) if (gold / "html" / f"{pid}.html.gz").is_file()
    ]
    langs, weights = zip(*LANGS)
    fillers = [_filler(rng) for _ in range(64)]
    ja_done: list[tuple[str, bytes, str]] = []
    captures: list[tuple[Rec, str | None]] = []  # (response, http charset for the WET text, None = no WET record)
    kinds: dict[str, int] = {}

    def count(k: str) -> None:
        kinds[k] = kinds.get(k, 0) + 1

    for i in range(pages):
        url = f"https://site{rng.randrange(pages)}.example/{i}"
        r = rng.random()
        if r < REDIRECT_SHARE:
            count("redirect")
            body = b"<html><body>Moved</body></html>"
            captures.append((Rec(url=url, body=body, status=301, extra_http={"Location": url + "/"}), None))
            continue
        if r < REDIRECT_SHARE + NON_HTML_SHARE:
            count("non_html")
            k = rng.randrange(5)
            if k == 0:
                body, ct = b"%PDF-1.4\n" + rng.randbytes(rng.randint(20_000, 200_000)), "application/pdf"
            elif k == 1:
                body, ct = b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randint(5_000, 80_000)), "image/jpeg"
            elif k == 2:
                body, ct = json.dumps({"items": rng.sample(lingua["en"], 20)}).encode(), "application/json"
            elif k == 3:
                body, ct = "\n".join(rng.sample(lingua["en"], 40)).encode(), "text/plain"
            else:
                items = "".join(f"<item><title>{t}</title></item>" for t in rng.sample(lingua["de"], 20))
                body, ct = f"<?xml version='1.0'?><rss><channel>{items}</channel></rss>".encode(), "application/rss+xml"
            captures.append((Rec(url=url, body=body, content_type=ct, payload_type=ct.split(";")[0]), None))
            continue
        lang = rng.choices(langs, weights)[0]
        count(f"html_{lang}" if lang in ("ja", "en", "zh", "ko") else "html_other")
        if lang == "ja":
            if ja_done and rng.random() < JA_DUP_SHARE:
                u, body, cs = rng.choice(ja_done)
                body = body.replace("<body>".encode(cs), f"<body><p>{rng.randint(2020, 2024)}年更新</p>".encode(cs), 1)
                captures.append((Rec(url=url, body=body, content_type=f"text/html; charset={cs}"), cs))
                continue
            if real_ja and rng.random() < 0.3:
                body = rng.choice(real_ja).read_bytes()
                captures.append((Rec(url=url, body=body, content_type="text/html"), ""))
                ja_done.append((url, body, "utf-8")) if b"<body>" in body else None
                continue
            cs = rng.choice(["utf-8", "utf-8", "utf-8", "shift_jis", "euc-jp"])
            start = rng.randrange(len(ja_paras))
            paras = ja_paras[start : start + rng.randint(2, 6)]
            html = _template(
                "ja" if rng.random() < 0.7 else None,
                cs if rng.random() < 0.8 else None,
                paras[0][:30],
                paras,
                rng.choice(fillers),
                "日本語サイト",
            )
            body = html.encode(cs, errors="xmlcharrefreplace")
            captures.append((Rec(url=url, body=body, content_type=f"text/html; charset={cs}"), cs))
            ja_done.append((url, body, cs))
            continue
        if lang in ("zh", "ko") and real_neg and rng.random() < 0.3:
            captures.append((Rec(url=url, body=rng.choice(real_neg).read_bytes(), content_type="text/html"), ""))
            continue
        if lang == "en" and rng.random() < 0.3:
            _, p = rng.choice(en_real)
            captures.append((Rec(url=url, body=gzip.decompress(p.read_bytes()), content_type="text/html"), ""))
            continue
        sents = rng.sample(lingua[lang], rng.randint(4, 25))
        html = _template(lang if rng.random() < 0.8 else None, "utf-8", sents[0][:60], sents, rng.choice(fillers), lang)
        captures.append((Rec(url=url, body=html.encode("utf-8"), content_type="text/html; charset=utf-8"), "utf-8"))

    warc_dir, wet_dir = out / "warc", out / "wet"
    warc_dir.mkdir(parents=True, exist_ok=True)
    wet_dir.mkdir(parents=True, exist_ok=True)
    n_per = -(-len(captures) // files)
    wet_docs = 0
    for k in range(files):
        chunk = captures[k * n_per : (k + 1) * n_per]
        recs, wet_recs = [], []
        for resp, cs in chunk:
            req = (
                f"GET /{resp.url.split('/', 3)[-1]} HTTP/1.1\r\nUser-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)"
                f"\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
                f"Host: {resp.url.split('/')[2]}\r\n\r\n"
            ).encode()
            meta = (
                f"fetchTimeMs: {rng.randint(20, 3000)}\r\ncharset-detected: UTF-8\r\nlanguages-cld2: {{}}\r\n".encode()
            )
            recs += [
                Rec(url=resp.url, body=req, rtype="request", content_type="application/http; msgtype=request"),
                resp,
                Rec(url=resp.url, body=meta, rtype="metadata", content_type="application/warc-fields"),
            ]
            if wet and cs is not None:
                text = _wet_text(resp.body, cs or None)
                if text.strip():
                    wet_recs.append(Rec(url=resp.url, body=text.encode("utf-8"), rtype="conversion"))
        _write_warc(warc_dir / f"CC-MAIN-bench-{k:05d}.warc.gz", recs)
        if wet:
            _write_warc(wet_dir / f"CC-MAIN-bench-{k:05d}.warc.wet.gz", wet_recs)
        wet_docs += len(wet_recs)
    raw = sum(len(r.body) for r, _ in captures)
    return {
        "warc": warc_dir,
        "wet": wet_dir,
        "pages": pages,
        "records": 3 * pages + files,
        "wet_records": wet_docs + files,
        "kinds": kinds,
        "ja_pages": kinds.get("html_ja", 0),
        "response_bytes": raw,
        "warc_gz_bytes": sum(p.stat().st_size for p in warc_dir.iterdir()),
        "wet_gz_bytes": sum(p.stat().st_size for p in wet_dir.iterdir()),
    }
