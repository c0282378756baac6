"""Clean-stage throughput: our rule chain (datatrove steps) against HojiChar's own
`Compose` running the same HojiChar filters on the same documents, in one process
(docs/s per core), plus the full default rule chain with and without the
part-of-speech filters, and per-rule time shares.

Documents: real mC4-ja lines (gold/quality, grouped by 3) and Japanese Wikipedia
paragraphs from ja/, NFKC-normalised once up front.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from datatrove.data import Document

from shikomi.config import load_config
from shikomi.filters.evaluate import group_labelled
from shikomi.filters.hojichar_rules import HojiCharRule
from shikomi.filters.profile import build_rules
from shikomi.filters.registry import make_rule

NO_POS = {"too_many_nouns": False, "word_repetition": False}


def _docs(data: Path, quick: bool) -> list[str]:
    rows = [json.loads(x) for x in (data / "gold/quality/mc4ja_good_bad.jsonl").open(encoding="utf-8")]
    texts = [d["text"] for d in group_labelled(rows, 3)]
    texts += [json.loads(x)["text"] for x in (data / "ja/jsquad_wikipedia_paragraphs.jsonl").open(encoding="utf-8")]
    norm = make_rule("normalize", {})
    texts = [norm.apply_text(t) for t in texts]
    return texts[:600] if quick else texts


def _run_chain(rules, texts, repeat) -> tuple[float, list]:
    """Seconds per pass (best of `repeat`) for the rules as a datatrove generator chain."""
    for r in rules:
        r.ensure_ready()
    best = float("inf")
    for _ in range(repeat):
        for r in rules:
            r.stats = type(r.stats)(str(r))  # fresh timing per pass
        t0 = time.perf_counter()
        data = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
        for r in rules:
            data = r.run(data)
        for _ in data:
            pass
        best = min(best, time.perf_counter() - t0)
    return best, [(r.rule, r.stats.time_stats.total) for r in rules]


def _run_compose(filters, texts, repeat) -> float:
    from hojichar import Compose
    from hojichar import Document as HDocument

    compose = Compose(filters)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in texts:
            compose.apply(HDocument(t))
        best = min(best, time.perf_counter() - t0)
    return best


def bench(data: Path, quick: bool) -> dict:
    texts = _docs(data, quick)
    n = len(texts)
    repeat = 2 if quick else 3
    cfg_pos = load_config(None, {"clean": {"rules": {"normalize": False}}})
    full_pos, _ = build_rules(cfg_pos.clean)
    full_nopos, _ = build_rules(load_config(None, {"clean": {"rules": {"normalize": False, **NO_POS}}}).clean)
    # the HojiChar filters of the default profile (no POS), as our steps and as Compose
    hoji = [r for r in full_nopos if isinstance(r, HojiCharRule) and r.kind == "filter"]
    for r in hoji:
        r.ensure_ready()
    # HojiChar Compose keeps rejected docs flowing but skips later filters, as our chain does
    t_compose = _run_compose([r._h_filter for r in hoji], texts, repeat)
    t_ours_hoji, _ = _run_chain(hoji, texts, repeat)
    t_nopos, _ = _run_chain(full_nopos, texts, repeat)
    t_pos, shares = _run_chain(full_pos, texts, repeat)
    # the shipped quality model's cost: the default profile with and without it
    no_model, _ = build_rules(
        load_config(None, {"clean": {"rules": {"normalize": False, "quality_classifier": False}}}).clean
    )
    # alternate the two chains, best of 2 x `repeat` each, in CPU seconds of this process:
    # a busy shared machine slows both alike
    t_with = t_no_model = float("inf")
    for _ in range(2 * repeat):
        c0 = time.process_time()
        _run_chain(full_pos, texts, 1)
        c1 = time.process_time()
        _run_chain(no_model, texts, 1)
        t_with, t_no_model = min(t_with, c1 - c0), min(t_no_model, time.process_time() - c1)
    has_model = any(r.rule == "quality_classifier" for r in full_pos)

    rows = [
        [f"HojiChar `Compose`, {len(hoji)} HojiChar filters (anchor)", f"{n / t_compose:,.0f}", "1.00"],
        ["same filters as shikomi steps", f"{n / t_ours_hoji:,.0f}", f"{t_ours_hoji / t_compose:.2f}"],
        [
            f"default profile without POS filters ({len(full_nopos)} rules)",
            f"{n / t_nopos:,.0f}",
            f"{t_nopos / t_compose:.2f}",
        ],
        [
            f"default profile with POS filters ({len(full_pos)} rules)",
            f"{n / t_pos:,.0f}",
            f"{t_pos / t_compose:.2f}",
        ],
    ]
    rows.append(
        [
            f"default profile without the quality model ({len(no_model)} rules)",
            f"{n / t_pos * t_with / t_no_model:,.0f}",
            f"{t_pos / t_compose * t_no_model / t_with:.2f}",
        ]
    )
    total = sum(s for _, s in shares) or 1.0
    share_txt = ", ".join(
        f"{name} {s / total:.0%}" for name, s in sorted(shares, key=lambda x: -x[1]) if s / total >= 0.01
    )
    return {
        "title": f"clean: rule chain throughput, one core, {n:,} real Japanese documents",
        "columns": ["chain", "docs/s/core", "time vs Compose"],
        "rows": rows,
        "notes": [
            f"Wrapping overhead: {(t_ours_hoji / t_compose - 1) * 100:+.1f}% over HojiChar's Compose on the same filters "
            f"and documents (best of {repeat} passes).",
            f"Per-rule time shares, default profile with POS: {share_txt}.",
            f"The shipped quality model (on by default: {has_model}) costs {1 - t_no_model / t_with:.0%} of the "
            f"default profile's time: throughput with it is {t_no_model / t_with:.2f}x without it "
            f"(CPU time, the two chains alternated, best of {2 * repeat} each).",
            "Documents: mC4-ja gold lines grouped by 3 and JSQuAD "
            "Wikipedia paragraphs, NFKC-normalised once before timing.",
        ],
        "docs": n,
        "compose_s": t_compose,
        "ours_hojichar_s": t_ours_hoji,
        "nopos_s": t_nopos,
        "pos_s": t_pos,
        "no_model_s": t_no_model,
        "model_throughput_ratio": t_no_model / t_with,
        "shares": {name: s / total for name, s in shares},
    }


def bench_decontam_index(data: Path, quick: bool) -> dict:
    """Time to build the decontamination n-gram index of a 100k-item benchmark set, one
    core: items are real Japanese Wikipedia sentences and paragraphs (JSQuAD
    paragraphs, article leads), cycled with a running number to 100k distinct items."""
    import tempfile

    from shikomi.config.clean import DecontaminateConfig
    from shikomi.filters.decontam import NgramIndex

    texts = [json.loads(x)["text"] for x in (data / "ja/jsquad_wikipedia_paragraphs.jsonl").open(encoding="utf-8")]
    texts += [json.loads(x)["text"] for x in (data / "ja/jawiki_annotated_corpus_leads.jsonl").open(encoding="utf-8")]
    n = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"id": i, "text": f"{i}. " + texts[i % len(texts)]}, ensure_ascii=False) + "\n")
        chars = sum(len(texts[i % len(texts)]) for i in range(n))
        cfg = DecontaminateConfig(benchmarks=[{"name": "b", "path": str(path), "id_field": "id"}])
        t0, c0 = time.perf_counter(), time.process_time()
        idx = NgramIndex.build(cfg)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
    rates = _hygiene_rates(data, texts)
    return {
        "title": f"clean: decontamination index build, {n:,} items, one core",
        "columns": ["items", "characters", "n-grams (20 chars, distinct)", "seconds (wall)", "seconds (CPU)"],
        "rows": [[f"{n:,}", f"{chars:,}", f"{sum(idx.info['char_ngrams'].values()):,}", f"{took:.1f}", f"{cpu:.1f}"]],
        "notes": [
            "Reading the JSONL, NFKC + lower-casing, hashing every 20-character window with numpy, sorting; "
            "CPU seconds of the one process (wall time includes waiting for a busy machine).",
            f"Checking {rates['docs']:,} Wikipedia leads and paragraphs against a JSQuAD (20-grams) + JSTS (13-grams) "
            f"index: {rates['decontam']:,.0f} docs/s; the five PII rules: {rates['pii']:,.0f} docs/s (CPU time).",
        ],
        **rates,
        "items": n,
        "seconds": took,
        "cpu_seconds": cpu,
    }


def _hygiene_rates(data: Path, texts: list[str]) -> dict:
    """Documents per CPU second of the decontamination step and of the five PII rules."""
    from shikomi.config.clean import DecontaminateConfig
    from shikomi.filters.decontam import Decontaminate
    from shikomi.filters.pii import PII_RULES

    cfg = DecontaminateConfig(
        benchmarks=[
            {"name": "jsquad", "path": str(data / "ja/jsquad_wikipedia_paragraphs.jsonl")},
            {
                "name": "jsts",
                "path": str(data / "gold/similarity/jglue_jsts_valid-v1.3.json"),
                "fields": ["sentence1", "sentence2"],
                "char_ngram": 13,
            },
        ]
    )
    step = Decontaminate(cfg)
    _ = step.index
    c0 = time.process_time()
    for t in texts:
        step.apply_text(t)
    decontam = len(texts) / (time.process_time() - c0)
    rules = [r() for r in PII_RULES]
    c0 = time.process_time()
    for t in texts:
        for r in rules:
            r.apply_text(t)
    pii = len(texts) / (time.process_time() - c0)
    return {"docs": len(texts), "decontam": decontam, "pii": pii}
