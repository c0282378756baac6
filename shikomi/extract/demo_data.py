"""The embedded demo sample, generated here from text the project ships
(`shikomi/extract/data/ja_paragraphs.txt`) and what every Python install has (pydoc's
topic help as English prose, standard-library modules as code). Nothing is fetched.

    python -m shikomi.extract.demo_data OUT_DIR

writes
    OUT_DIR/warc/*.warc.gz, *.warc, *.warc.wet.gz   Japanese and English pages in
        UTF-8, Shift_JIS, EUC-JP and ISO-2022-JP with correct, missing and wrong
        charset labels; navigation boilerplate; SEO spam and ad listings; exact and
        near duplicates; non-HTML, redirect, error and gzip-encoded responses
    OUT_DIR/en/pydoc_topics.jsonl                   English text source
    OUT_DIR/code/stdlib.parquet                     code (starcoderdata layout: content, lang)

The same Python version gives byte-identical files. `write_warc` is also used by
the tests to build WARC quirks (WARC/0.18, bad dates, truncated members...).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).with_name("data")


def ja_paragraphs() -> list[str]:
    lines = (DATA / "ja_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def record_uuid(*parts: str) -> str:
    return f"<urn:uuid:{uuid.UUID(hashlib.md5('|'.join(parts).encode()).hexdigest())}>"


@dataclass
class Rec:
    """One WARC record to write. For responses, `body` is the HTTP payload."""

    url: str
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"  # HTTP Content-Type (None: omit)
    status: int = 200
    date: str = "2024-05-20T10:00:00Z"
    rtype: str = "response"
    extra_http: dict = field(default_factory=dict)
    version: str = "1.0"
    uri_brackets: bool = False
    payload_type: str | None = None  # WARC-Identified-Payload-Type, as CommonCrawl writes it


def _record_bytes(r: Rec) -> bytes:
    if r.rtype == "response":
        http = [f"HTTP/1.1 {r.status} {'OK' if r.status == 200 else 'X'}"]
        if r.content_type is not None:
            http.append(f"Content-Type: {r.content_type}")
        for k, v in r.extra_http.items():
            http.append(f"{k}: {v}")
        http.append(f"Content-Length: {len(r.body)}")
        block = ("\r\n".join(http) + "\r\n\r\n").encode("latin-1") + r.body
        ctype = "application/http; msgtype=response"
    elif r.rtype == "conversion":
        block, ctype = r.body, "text/plain"
    else:  # warcinfo / resource
        block, ctype = r.body, r.content_type or "application/warc-fields"
    uri = f"<{r.url}>" if r.uri_brackets else r.url
    head = [f"WARC/{r.version}", f"WARC-Type: {r.rtype}", f"WARC-Record-ID: {record_uuid(r.rtype, r.url, r.date)}"]
    if r.date:
        head.append(f"WARC-Date: {r.date}")
    if r.rtype != "warcinfo":
        head.append(f"WARC-Target-URI: {uri}")
    if r.payload_type:
        head.append(f"WARC-Identified-Payload-Type: {r.payload_type}")
    head += [f"Content-Type: {ctype}", f"Content-Length: {len(block)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"


def write_warc(
    path: str | Path,
    records: list[Rec],
    compress: bool = True,
    warcinfo: str | None = "CC-MAIN-2024-22",
    truncate_last: bool = False,
) -> Path:
    """Write records as a WARC (one gzip member per record when compressed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recs = list(records)
    if warcinfo:
        info = f"software: shikomi-demo\r\nisPartOf: {warcinfo}\r\n".encode()
        recs.insert(0, Rec(url="", body=info, rtype="warcinfo", content_type="application/warc-fields"))
    out = io.BytesIO()
    for r in recs:
        raw = _record_bytes(r)
        if compress:
            raw = gzip.compress(raw, mtime=0)
        out.write(raw)
    data = out.getvalue()
    if truncate_last:
        data = data[: len(data) - 40]
    path.write_bytes(data)
    return path


NAV = ["ホーム", "ニュース", "コラム", "会社概要", "お問い合わせ", "プライバシーポリシー"]
FOOTER = "Copyright (C) 2024 みんなの暮らし帖 All Rights Reserved. 当サイトの文章・画像の無断転載を禁じます。"


def ja_page(
    title: str,
    paragraphs: list[str],
    site: str = "みんなの暮らし帖",
    date_line: str = "2024年5月20日",
    charset_meta: str | None = "utf-8",
    lang: bool = True,
) -> str:
    nav = "".join(f"<li><a href='/{i}'>{n}</a></li>" for i, n in enumerate(NAV))
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    html_lang = ' lang="ja"' if lang else ""
    return (
        f"<!DOCTYPE html><html{html_lang}><head>{meta}<title>{title} | {site}</title></head><body>"
        f"<header><div class='logo'>{site}</div><nav><ul>{nav}</ul></nav></header>"
        f"<main><article><h1>{title}</h1><p class='date'>{date_line}</p>{body}</article></main>"
        f"<aside><h3>人気の記事</h3><ul><li><a href='/a'>今週のランキング</a></li><li><a href='/b'>編集部のおすすめ</a></li></ul></aside>"
        f"<footer><p>{FOOTER}</p></footer></body></html>"
    )


SPAM_PLACES = [
    "千葉県船橋市",
    "千葉県千葉市中央区",
    "千葉市花見川区",
    "千葉県市川市",
    "千葉県松戸市",
    "千葉県柏市",
    "千葉県浦安市",
    "千葉県習志野市",
    "千葉県八千代市",
    "千葉県流山市",
    "千葉県市原市",
    "千葉県佐倉市",
]


def spam_text() -> str:
    return " ".join(f"{p}の一戸建てを売る" for p in SPAM_PLACES * 3)


def ad_listing() -> list[str]:
    items = [
        "【送料無料】高級羽毛布団 シングル 今だけ50%OFF 詳細はこちら>>",
        "【期間限定】人気の美容液 お試しセット 980円 今すぐ購入>>",
        "★ポイント10倍★ 家電まとめ買いセール 会員登録で500円クーポン>>",
        "【在庫限り】ワイヤレスイヤホン 最新モデル 激安 送料無料>>",
        "【公式】ダイエットサプリ 初回限定 無料 今すぐ申し込む>>",
    ]
    return items * 3


def en_page(title: str, text: str) -> str:
    paras = "".join(f"<p>{p}</p>" for p in text.split("\n\n") if p.strip())
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/docs'>Docs</a> | <a href='/about'>About</a></nav>"
        f"<main><h1>{title}</h1>{paras}</main><footer>Site footer. All rights reserved.</footer></body></html>"
    )


def pydoc_topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return [(k, topics[k]) for k in sorted(topics) if len(topics[k]) > 400]


ARTICLE_TITLES = [
    "市場と台所",
    "京都と図書館",
    "言語と北海道",
    "縁側と駅",
    "文字と商店街",
    "山と湖",
    "古民家と紫陽花",
    "朝と会議",
    "祭りと鉄道",
    "お茶と町",
    "紙と田んぼ",
    "備えと物語",
    "パンと博物館",
    "データと海",
    "自転車とオンライン",
]


def ja_articles() -> list[tuple[str, list[str]]]:
    """Articles of four paragraphs each; no paragraph appears in two articles (the
    duplicates of the sample are made on purpose in build_records)."""
    ps = ja_paragraphs()
    n = len(ps) // 4
    return [
        (
            ARTICLE_TITLES[i % len(ARTICLE_TITLES)]
            + ("" if i < len(ARTICLE_TITLES) else f" その{i // len(ARTICLE_TITLES) + 1}"),
            ps[4 * i : 4 * i + 4],
        )
        for i in range(n)
    ]


def build_records() -> dict[str, list[Rec]]:
    """The demo WARC files and their records."""
    arts = ja_articles()
    base = "https://kurashi.example.jp"
    ja_recs: list[Rec] = []
    encodings = [
        # (codec, HTTP charset label, meta label)
        ("utf-8", "utf-8", "utf-8"),
        ("cp932", "Shift_JIS", "Shift_JIS"),
        ("euc_jp", None, "EUC-JP"),  # header missing, meta right
        ("iso2022_jp", "ISO-2022-JP", None),  # meta missing
        ("cp932", "ISO-8859-1", None),  # wrong header
        ("euc_jp", "Shift_JIS", "Shift_JIS"),  # wrong label everywhere
        ("utf-8", None, None),  # no label at all
        ("cp932", None, None),
    ]
    for i, (title, paras) in enumerate(arts):
        codec, http_cs, meta_cs = encodings[i % len(encodings)]
        html = ja_page(title, paras, charset_meta=meta_cs)
        ct = f"text/html; charset={http_cs}" if http_cs else "text/html"
        ja_recs.append(
            Rec(
                url=f"{base}/articles/{i:03d}",
                body=html.encode(codec),
                content_type=ct,
                date=f"2024-05-{10 + i % 18:02d}T09:00:00Z",
            )
        )
    # exact duplicate (a mirror with another site's navigation) and a near duplicate (date changed)
    t0, p0 = arts[0]
    ja_recs.append(
        Rec(
            url="https://mirror.example.jp/copy/market",
            body=ja_page(t0, p0, site="まとめミラー").encode("utf-8"),
            date="2024-05-25T09:00:00Z",
        )
    )
    t1, p1 = arts[1]
    p1b = [p1[0].replace("朝早い時間", "朝の早い時間"), *p1[1:]]
    ja_recs.append(
        Rec(
            url=f"{base}/articles/001-amp",
            body=ja_page(t1, p1b, date_line="2024年6月2日").encode("utf-8"),
            date="2024-06-02T09:00:00Z",
        )
    )
    # spam and ads
    ja_recs.append(
        Rec(url="https://fudosan.example.jp/sell", body=ja_page("一戸建てを売る", [spam_text()]).encode("utf-8"))
    )
    ja_recs.append(
        Rec(
            url="https://shop.example.jp/sale",
            body=ja_page("本日のセール", ad_listing()).encode("cp932"),
            content_type="text/html; charset=Shift_JIS",
        )
    )
    # gzip Content-Encoding left in the payload
    t2, p2 = arts[2]
    ja_recs.append(
        Rec(
            url=f"{base}/articles/002-gz",
            body=gzip.compress(ja_page(t2, p2[:2]).encode("utf-8"), mtime=0),
            extra_http={"Content-Encoding": "gzip"},
        )
    )
    # records that are not documents
    other = [
        Rec(url=f"{base}/logo.png", body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, content_type="image/png"),
        Rec(
            url=f"{base}/catalog.pdf",
            body=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
            content_type="application/pdf",
        ),
        Rec(url=f"{base}/old", body=b"", status=301, content_type="text/html", extra_http={"Location": "/new"}),
        Rec(url=f"{base}/missing", body=b"<html><body>Not Found</body></html>", status=404),
        Rec(url=f"{base}/bin", body=b"\x00\x01\x02binary" * 50, content_type="text/html"),
    ]
    en_recs = []
    for i, (k, text) in enumerate(pydoc_topics()[:40]):
        en_recs.append(
            Rec(
                url=f"https://docs.example.org/topics/{k}",
                body=en_page(k, text).encode("utf-8"),
                date=f"2024-05-{1 + i % 28:02d}T12:00:00Z",
            )
        )
    half = len(ja_recs) // 2
    return {
        "CC-MAIN-2024-22-demo-00000.warc.gz": ja_recs[:half] + other[:2],
        "CC-MAIN-2024-22-demo-00001.warc.gz": ja_recs[half:] + other[2:],
        "CC-MAIN-2024-22-demo-00002.warc.gz": en_recs[:20],
        "CC-MAIN-2024-22-demo-00003.warc": en_recs[20:],  # an uncompressed WARC
    }


def write_sample(out: str | Path) -> dict:
    out = Path(out)
    files = {}
    for name, recs in build_records().items():
        files[name] = str(write_warc(out / "warc" / name, recs, compress=name.endswith(".gz")))
    # English text source (jsonl with text)
    en_dir = out / "en"
    en_dir.mkdir(parents=True, exist_ok=True)
    topics = pydoc_topics()
    with open(en_dir / "pydoc_topics.jsonl", "w", encoding="utf-8") as f:
        for k, text in topics[40:]:
            f.write(json.dumps({"id": f"pydoc/{k}", "text": text, "meta": {"topic": k}}, ensure_ascii=False) + "\n")
    # code source: starcoderdata layout (content, lang, path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    code_dir = out / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    stdlib = Path(json.__file__).parent.parent
    names = [
        "textwrap.py",
        "shlex.py",
        "fnmatch.py",
        "glob.py",
        "bisect.py",
        "heapq.py",
        "colorsys.py",
        "keyword.py",
        "queue.py",
        "sched.py",
        "stat.py",
        "string.py",
        "this.py",
        "tty.py",
        "uu.py",
        "graphlib.py",
        "numbers.py",
        "reprlib.py",
        "abc.py",
        "copy.py",
        "fractions.py",
        "statistics.py",
        "difflib.py",
        "calendar.py",
    ]
    rows = []
    for n in names:
        p = stdlib / n
        if p.is_file():
            rows.append({"id": f"stdlib/{n}", "content": p.read_text(encoding="utf-8"), "lang": "python", "path": n})
    pq.write_table(pa.Table.from_pylist(rows), code_dir / "stdlib.parquet", compression="zstd")
    return {"warc": files, "en": str(en_dir), "code": str(code_dir)}


def ensure_sample(out: str | Path) -> Path:
    """Generate the sample once (idempotent)."""
    out = Path(out)
    marker = out / ".complete"
    if not marker.exists():
        write_sample(out)
        marker.write_text("ok\n")
    return out


if __name__ == "__main__":
    dest = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/_sample"
    info = write_sample(dest)
    Path(dest, ".complete").write_text("ok\n")
    print(json.dumps(info, indent=2, ensure_ascii=False))
