"""The Japanese gate, the extractor for Japanese pages and the language-ID thresholds,
measured on real data (`make bench ARGS=gate`).

- Gate: recall on the real Japanese pages of shared/data/realweb (with their original
  heads, and again stripped of head, lang and charset and entity-escaped), the share of
  non-Japanese records skipped (realweb's Chinese/Korean pages and the non-Japanese
  records of the real CommonCrawl WARCs), and its speed in records/s/core (CPU time of
  charset decoding + the gate, and of the whole extract step with the gate on and off).
- Extractors: character-bigram F1 against the reference article text of the real
  Japanese news/IT pages (shikomi.extract.evaluation), token F1 on the 90 English
  scrapinghub gold pages, and pages/s/core of extraction alone.
- Language ID: lingua's gold sentences (ja, en, zh, ko) kept under the default
  thresholds and under `thresholds: auto` (FineWeb-2's rule on the sentences' own scores).
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
import time
from pathlib import Path


def _cpu(fn, *args):
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def _extract_all(fn, pages):
    return [fn(h) for h, _ in pages]


def gate_rows(data: Path) -> tuple[list[list], dict]:
    from shikomi.extract.evaluation import realweb_pages
    from shikomi.extract.gate import JapaneseGate
    from shikomi.text.charset import decode_html

    gate = JapaneseGate()
    pages = realweb_pages(data / "realweb")

    def judge(items):
        res = []
        for _, role, raw in items:
            dec = decode_html(raw)
            res.append((role, gate.decide_html(dec.text, dec.charset, dec.method)))
        return res

    judged, cpu = _cpu(judge, pages)
    ja = [r for role, r in judged if role == "ja"]
    neg = [r for role, r in judged if role != "ja"]

    def strip(raw: bytes) -> bytes:
        html = decode_html(raw).text
        html = re.sub(r"(?is)<head\b.*?</head\s*>", "", html)
        html = re.sub(r"(?i)\s(xml:)?lang\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", "", html)
        html = re.sub(r"(?i)<meta[^>]*>", "", html)
        return html.encode("ascii", errors="xmlcharrefreplace")

    headless = [(f, role, strip(raw)) for f, role, raw in pages if role == "ja"]
    hl = [r for _, r in judge(headless)]
    stats = {
        "recall": sum(r.passed for r in ja) / len(ja),
        "n_ja": len(ja),
        "skipped": sum(not r.passed for r in neg) / len(neg),
        "n_neg": len(neg),
        "headless_recall": sum(r.passed for r in hl) / len(hl),
        "pages_per_cpu_s": len(pages) / cpu,
        "mb": sum(len(raw) for _, _, raw in pages) / 1e6,
    }
    rows = [
        [
            "realweb (original heads)",
            f"{stats['recall']:.4f} ({len(ja)})",
            f"{stats['skipped']:.4f} ({len(neg)})",
            f"{stats['pages_per_cpu_s']:,.0f} pages/s/core (decode + gate)",
        ],
        ["realweb Japanese, head/lang/charset stripped, entity-escaped", f"{stats['headless_recall']:.4f}", "", ""],
    ]
    return rows, stats


EXTRACT_RUNNER = r"""
import json, sys, time
from pathlib import Path
from shikomi.extract.stage import WarcExtractor
gate = sys.argv[1] == "on"
ex = WarcExtractor([sys.argv[2]], extractor="resiliparse", timeout_s=5.0, japanese_gate=gate)
t0 = time.process_time()
docs = sum(1 for _ in ex.run(None, 0, 1))
cpu = time.process_time() - t0
st = {k: v.total for k, v in ex.stats.stats.items()}
print(json.dumps({"cpu_s": cpu, "docs": docs, "stats": st}))
"""


def stage_rows(data: Path, tmp: Path) -> tuple[list[list], dict]:
    """The extract step over realweb pages wrapped as WARC (no charset in HTTP) plus the
    real CommonCrawl WARCs, gate on and off, one process each."""
    import os
    import subprocess
    import sys

    from shikomi.extract.demo_data import Rec, write_warc
    from shikomi.extract.evaluation import realweb_pages

    warcs = tmp / "warc"
    recs = [
        Rec(url=f"https://realweb.example/{f}", body=raw, content_type="text/html")
        for f, _, raw in realweb_pages(data / "realweb")
    ]
    write_warc(warcs / "realweb.warc.gz", recs)
    for f in sorted((data / "warc").glob("*.warc.gz")):
        if ".wat." not in f.name:
            (warcs / f.name).write_bytes(f.read_bytes())
    out = {}
    for mode in ("off", "on"):
        r = subprocess.run(
            [sys.executable, "-c", EXTRACT_RUNNER, mode, str(warcs)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if r.returncode != 0:
            raise RuntimeError(f"gate bench ({mode}) failed: {r.stderr[-2000:]}")
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    n = out["off"]["stats"].get("docs_in", 0)
    skipped_cc = sum(v for k, v in out["on"]["stats"].items() if k.startswith("skipped/japanese_gate:"))
    rows = []
    for mode in ("off", "on"):
        o = out[mode]
        rows.append([f"extract step, gate {mode}", n, o["docs"], f"{n / o['cpu_s']:,.0f}"])
    return rows, {"records": n, "gate_skipped": skipped_cc, **{m: out[m]["cpu_s"] for m in out}}


def cc_skip_share(data: Path) -> tuple[int, int]:
    """(non-Japanese CommonCrawl/wget records judged, skipped) of shared/data/warc."""
    from shikomi.extract.stage import WarcExtractor

    ex = WarcExtractor([str(data / "warc")], japanese_gate=True)
    list(ex.run(None, 0, 1))
    st = {k: v.total for k, v in ex.stats.stats.items()}
    skipped = sum(v for k, v in st.items() if k.startswith("skipped/japanese_gate:"))
    passed = sum(v for k, v in st.items() if k.startswith("gate_pass/"))
    return skipped + passed, skipped


def extractor_rows(data: Path, quick: bool) -> tuple[list[list], dict]:
    from bench.extract import f1 as token_f1
    from shikomi.extract.evaluation import char_bigram_f1, japanese_references
    from shikomi.extract.stage import EXTRACTORS
    from shikomi.text.charset import decode_html

    refs = [(decode_html(raw).text, ref) for _, raw, ref in japanese_references(data / "realweb")]
    gt = json.loads((data / "gold" / "extraction" / "scrapinghub" / "ground-truth.json").read_text())
    en = []
    for pid in sorted(gt)[: 30 if quick else None]:
        p = data / "gold" / "extraction" / "scrapinghub" / "html" / f"{pid}.html.gz"
        if p.is_file():
            en.append((decode_html(gzip.decompress(p.read_bytes())).text, gt[pid].get("articleBody") or ""))
    rows, res = [], {}
    for name, fn in EXTRACTORS.items():
        ja_out, ja_cpu = _cpu(_extract_all, fn, refs)
        en_out, en_cpu = _cpu(_extract_all, fn, en)
        ja_f1 = sum(char_bigram_f1(o, r) for o, (_, r) in zip(ja_out, refs)) / len(refs)
        en_f1 = sum(token_f1(o, g) for o, (_, g) in zip(en_out, en)) / len(en)
        pps = (len(refs) + len(en)) / (ja_cpu + en_cpu)
        res[name] = {"ja_f1": ja_f1, "en_f1": en_f1, "pages_per_cpu_s": pps, "ja_pages_per_cpu_s": len(refs) / ja_cpu}
        rows.append([name, f"{ja_f1:.3f}", f"{en_f1:.3f}", f"{len(refs) / ja_cpu:,.0f}", f"{pps:,.0f}"])
    res["n_ja"], res["n_en"] = len(refs), len(en)
    return rows, res


def langid_rows(data: Path) -> tuple[list[list], dict]:
    from shikomi.config import load_config
    from shikomi.langid.evaluation import gold_sentences
    from shikomi.langid.thresholds import derive_thresholds
    from shikomi.text.lid import FastTextLID

    lc = load_config(None, {}).langid
    rows_by = gold_sentences(data)
    out, res = [], {}
    for label, guard in (("kana rule on (default)", True), ("kana rule off", False)):
        lid = FastTextLID(kana_guard=guard, kana_min_share=lc.kana_min_share, kana_min=lc.kana_min)
        pred = {g: [lid.classify(t) for t in ts] for g, ts in rows_by.items()}
        scores: dict[str, list[float]] = {}
        for ps in pred.values():
            for lang, score, how in ps:
                if how == "fasttext":
                    scores.setdefault(lang, []).append(score)
        auto = {k: v["threshold"] for k, v in derive_thresholds(scores, ["ja", "en"], lc.threshold, {}).items()}
        for tname, thr in (("default " + json.dumps(lc.thresholds), lc.thresholds), ("auto " + json.dumps(auto), auto)):

            def kept(g, thr=thr, pred=pred):
                ok = 0
                for lang, score, how in pred[g]:
                    ok += lang == g and (how == "kana" or score >= thr.get(lang, lc.threshold))
                return ok / len(pred[g])

            fj = {g: sum(lang == "ja" for lang, _, _ in pred[g]) / len(pred[g]) for g in ("zh", "ko")}
            out.append([label, tname, f"{kept('ja'):.4f}", f"{kept('en'):.4f}", f"{fj['zh']:.4f}", f"{fj['ko']:.4f}"])
            res[f"{label}/{tname}"] = {"ja": kept("ja"), "en": kept("en"), **{f"{g}->ja": v for g, v in fj.items()}}
    res["n"] = {g: len(v) for g, v in rows_by.items()}
    return out, res


def bench(data: Path, quick: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="shikomi-bench-gate-"))
    g_rows, g = gate_rows(data)
    cc_n, cc_skipped = cc_skip_share(data)
    s_rows, s = stage_rows(data, tmp)
    e_rows, e = extractor_rows(data, quick)
    l_rows, lres = langid_rows(data)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    rows = [[*r, ""] for r in g_rows]
    rows.append(["CommonCrawl/wget WARC records (shared/data/warc)", "", f"{cc_skipped / cc_n:.4f} ({cc_n})", "", ""])
    total_neg = g["n_neg"] + cc_n
    total_skipped = g["skipped"] * g["n_neg"] + cc_skipped
    rows.append(["all non-Japanese records", "", f"{total_skipped / total_neg:.4f} ({total_neg})", "", ""])
    for r in s_rows:
        rows.append([r[0], "", "", f"{r[3]} records/s/core", f"{r[2]} documents of {r[1]} records"])
    notes = [
        "Gate: pages/s/core is CPU time of charset decoding + the gate per page "
        f"({g['mb']:.1f} MB of realweb pages); the extract step rows run WarcExtractor (resiliparse) over the realweb "
        "pages wrapped as WARC without an HTTP charset plus the real WARCs of shared/data/warc.",
        "\n".join(
            [
                "| extractor | char-bigram F1, Japanese | token F1, English | Japanese pages/s/core | pages/s/core |",
                "|---|---|---|---|---|",
                *["| " + " | ".join(r) + " |" for r in e_rows],
            ]
        ),
        f"Extractors: {e['n_ja']} real Japanese news/IT pages (postlight/parser's fixtures; reference: the article "
        f"body its site-specific extractor selects) and {e['n_en']} scrapinghub English gold pages; CPU time of "
        "extraction alone on decoded HTML.",
        "\n".join(
            [
                "| language ID | thresholds | ja kept | en kept | zh labelled ja | ko labelled ja |",
                "|---|---|---|---|---|---|",
                *["| " + " | ".join(r) + " |" for r in l_rows],
            ]
        ),
        f"Language ID: lingua's gold sentences (n = {lres['n']}); kept = labelled with its language and at or above "
        "its threshold (or Japanese by its kana). Command: `make bench ARGS=gate`.",
    ]
    return {
        "title": "Japanese gate, extractors and language-ID thresholds (one core)",
        "columns": ["input", "Japanese recall (n)", "non-Japanese skipped (n)", "speed", "documents"],
        "rows": rows,
        "notes": notes,
        "gate": g,
        "cc": {"records": cc_n, "skipped": cc_skipped},
        "stage": s,
        "extractors": e,
        "langid": lres,
    }
