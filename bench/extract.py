"""extract + langid throughput and extraction quality, next to datatrove's
WarcReader -> Trafilatura -> LanguageFilter on the same WARC files in the same run.

Input: the real CommonCrawl/wget WARCs of ../shared/data/warc, the 90 real news and
blog pages of the scrapinghub extraction gold and real Japanese HTML (Debian manuals)
wrapped into WARC records in five encodings. Each variant runs in its own process
on one core; peak RSS is that process's.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def build_bench_warcs(data: Path, out: Path, quick: bool) -> Path:
    from shikomi.extract.demo_data import Rec, write_warc

    out.mkdir(parents=True, exist_ok=True)
    for f in sorted((data / "warc").glob("*.warc.gz")):
        if ".wat." in f.name:
            continue
        shutil.copy(f, out / f.name)
    gt = json.loads((data / "gold" / "extraction" / "scrapinghub" / "ground-truth.json").read_text())
    recs = []
    for pid in sorted(gt):
        p = data / "gold" / "extraction" / "scrapinghub" / "html" / f"{pid}.html.gz"
        if p.is_file():
            recs.append(
                Rec(
                    url=gt[pid].get("url") or f"https://gold.example/{pid}",
                    body=gzip.decompress(p.read_bytes()),
                    content_type="text/html",
                    payload_type="text/html",
                )
            )
    write_warc(out / "scrapinghub.warc.gz", recs)
    pages = sorted((data / "ja" / "debian").rglob("*.html"))[: 6 if quick else 20]
    recs = []
    for i, p in enumerate(pages):
        html = re.sub(r"<meta[^>]*charset[^>]*>", "", p.read_text(encoding="utf-8"), flags=re.I)
        for enc, label in (
            ("utf-8", "UTF-8"),
            ("cp932", "Shift_JIS"),
            ("euc_jp", None),
            ("iso2022_jp", "ISO-2022-JP"),
            ("cp932", "ISO-8859-1"),
        ):
            body = html.encode(enc, errors="xmlcharrefreplace")
            recs.append(
                Rec(
                    url=f"https://debian.example.jp/{i}/{enc}/{label}",
                    body=body,
                    content_type=f"text/html; charset={label}" if label else "text/html",
                    payload_type="text/html",
                )
            )
    write_warc(out / "debian-ja.warc.gz", recs)
    return out


RUNNER = r"""
import json, resource, sys, time
from pathlib import Path
variant, warcs = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
docs = chars = mojibake = 0
nbytes = sum(p.stat().st_size for p in Path(warcs).glob("*"))
if variant.startswith("shikomi"):
    from shikomi.extract.stage import WarcExtractor
    from shikomi.langid.stage import LanguageRule
    ex = WarcExtractor([warcs], extractor=variant.split("-")[1], timeout_s=1.0)
    lid = LanguageRule(["ja", "en"], 0.5, {}, None)
    steps = [ex, lid]
else:
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.utils.lid import FT176LID
    from shikomi.text.lid import default_model_path
    class LocalFT176(FT176LID):
        MODEL_URL = "file://" + default_model_path()
    lf = LanguageFilter(languages=["ja", "en"], language_threshold=0.5)
    lf.model = LocalFT176(["ja", "en"])
    steps = [WarcReader(warcs, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True, timeout=1.0), lf]
data = None
for s in steps:
    data = s(data, 0, 1)
for d in data:
    if "reject_reason" in d.metadata:
        continue
    docs += 1
    chars += len(d.text)
    mojibake += d.text.count("\ufffd")
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"variant": variant, "wall_s": wall, "docs": docs, "chars": chars, "mb": nbytes / 1e6,
                  "mojibake_per_1000": 1000 * mojibake / max(1, chars), "rss_mb": rss}))
"""


def extraction_f1(data: Path) -> dict:
    from shikomi.extract.evaluation import char_bigram_f1, japanese_references, token_f1
    from shikomi.extract.stage import extract_resiliparse, extract_trafilatura
    from shikomi.text.charset import decode_html

    gt = json.loads((data / "gold" / "extraction" / "scrapinghub" / "ground-truth.json").read_text())
    scores = {"resiliparse": [], "trafilatura": [], "datatrove": []}
    from datatrove.pipeline.extractors import Trafilatura

    dt = Trafilatura(favour_precision=True, timeout=5.0)
    for pid in sorted(gt):
        p = data / "gold" / "extraction" / "scrapinghub" / "html" / f"{pid}.html.gz"
        if not p.is_file():
            continue
        raw = gzip.decompress(p.read_bytes())
        html = decode_html(raw).text
        gold = gt[pid].get("articleBody") or ""
        scores["resiliparse"].append(token_f1(extract_resiliparse(html), gold))
        scores["trafilatura"].append(token_f1(extract_trafilatura(html), gold))
        # datatrove decodes with utf-8 then a chardet guess; here the same str goes in
        scores["datatrove"].append(token_f1(dt.extract(html) or "", gold))
    out = {k: sum(v) / len(v) for k, v in scores.items() if v}
    # Japanese: character-bigram F1 against the reference article text of real pages
    refs = [(decode_html(raw).text, ref) for _, raw, ref in japanese_references(data / "realweb")]
    if refs:
        for name, fn in (
            ("resiliparse", extract_resiliparse),
            ("trafilatura", extract_trafilatura),
            ("datatrove", lambda h: dt.extract(h) or ""),
        ):
            out[f"ja_{name}"] = sum(char_bigram_f1(fn(h), ref) for h, ref in refs) / len(refs)
        out["ja_pages"] = len(refs)
    return out


def count_records(warcs: Path) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    for f in sorted(warcs.glob("*")):
        with open(f, "rb") as fh:
            for _ in ArchiveIterator(
                fh, record_types=WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion
            ):
                n += 1
    return n


def bench(data: Path, quick: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="shikomi-bench-extract-"))
    warcs = build_bench_warcs(data, tmp / "warc", quick)
    n_records = count_records(warcs)
    results = {}
    for variant in ("datatrove", "shikomi-trafilatura", "shikomi-resiliparse"):
        r = subprocess.run(
            [sys.executable, "-c", RUNNER, variant, str(warcs)],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
        )
        if r.returncode != 0:
            raise RuntimeError(f"bench variant {variant} failed: {r.stderr[-2000:]}")
        results[variant] = json.loads(r.stdout.strip().splitlines()[-1])
    f1s = extraction_f1(data)
    base = results["datatrove"]
    rows = []
    names = {
        "datatrove": ("datatrove WarcReader → Trafilatura → LanguageFilter", "datatrove"),
        "shikomi-trafilatura": ("shikomi extract (trafilatura) + langid", "trafilatura"),
        "shikomi-resiliparse": ("shikomi extract (resiliparse, default) + langid", "resiliparse"),
    }
    for v, r in results.items():
        label, fkey = names[v]
        dps = n_records / r["wall_s"]
        rows.append(
            [
                label,
                r["docs"],
                f"{dps:,.1f}",
                f"{r['mb'] / r['wall_s']:.2f}",
                f"{(base['wall_s'] / r['wall_s']):.2f}×",
                f"{f1s.get(fkey, float('nan')):.3f}",
                f"{f1s.get('ja_' + fkey, float('nan')):.3f}",
                f"{r['mojibake_per_1000']:.3f}",
                f"{r['rss_mb']:.0f}",
            ]
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "title": "extract + langid (one core)",
        "columns": [
            "pipeline",
            "docs kept",
            "records/s/core",
            "input MB/s",
            "speed vs datatrove",
            "F1 (scrapinghub gold)",
            "F1 ja (char bigrams)",
            "U+FFFD /1k chars",
            "peak RSS MB",
        ],
        "rows": rows,
        "notes": [
            f"Input: real WARCs of shared/data/warc, the 90 scrapinghub gold pages and "
            f"{'6' if quick else '20'} Debian Japanese manual pages × 5 encodings, as WARC "
            f"({results['datatrove']['mb']:.1f} MB gzip, {n_records} records). records/s counts every response "
            f"record of the input (the same for all rows); docs kept: documents that came out in ja or en. F1: bag-of-words token F1 of the extracted text "
            f"against the gold articleBody, mean over pages; F1 ja: character-bigram F1 against the reference article text "
            f"of {f1s.get('ja_pages', 0)} real Japanese pages (shared/data/realweb, shikomi.extract.evaluation). "
            f"Command: `make bench ARGS=extract`."
        ],
        "raw": results,
        "f1": f1s,
    }
