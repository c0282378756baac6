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
            "Without the quality classifier (it needs labels); documents: mC4-ja gold lines grouped by 3 and JSQuAD "
            "Wikipedia paragraphs, NFKC-normalised once before timing.",
        ],
        "docs": n,
        "compose_s": t_compose,
        "ours_hojichar_s": t_ours_hoji,
        "nopos_s": t_nopos,
        "pos_s": t_pos,
        "shares": {name: s / total for name, s in shares},
    }
