"""The numbers of a report, read from the run folder through the declared schemas.

Every number comes from a declared field: `StageStats` (stats.json of each stage),
`MixPlan` (mix/plan.json), `TokenManifest` (tokenize/manifest.json) and `MetricsRow`
(train/metrics.jsonl). A file that does not match its schema stops the report with
an error naming the file and the field. `collect` returns plain data (written as
report.json); the page and the charts read only that.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shikomi.core.schemas import MetricsLog, MixPlan, ScoreHistogram, StageStats, TokenManifest
from shikomi.pipeline.registry import CHAIN_ENTRIES, REGISTRY
from shikomi.tools.inspect import Sampler, doc_files, iter_file, load_stats, stage_dirs

# the run folder's own output; every other stage of the chain is a funnel row
REPORT_FOLDER = REGISTRY["report"].folder
FUNNEL_STAGES = [e.folder for e in CHAIN_ENTRIES if e.folder != REPORT_FOLDER]
FUNNEL_KEYS = ["documents_in", "documents_out", "documents_dropped", "skipped", "chars_in", "chars_out", "tokens_out"]
COUNT_KEYS = ["documents_in", "documents_out", "documents_dropped", "chars_in", "chars_out", "tokens_out"]
DEFAULT_TARGET = {"ja": 5.0, "en": 4.0, "code": 1.0}


def _folder(command: str) -> str:
    return REGISTRY[command].folder


def funnel(run_dir: Path) -> list[dict]:
    """One row per stage that ran, numbers straight from its stats.json; a token
    folder (manifest.json) and training metrics (metrics.jsonl) fill in tokens."""
    rows = []
    for name in FUNNEL_STAGES:
        sd = run_dir / name
        if not sd.is_dir():
            continue
        st = load_stats(sd)
        row: dict[str, Any] = {"stage": name}
        if st is not None:
            for k in COUNT_KEYS:
                if getattr(st, k) is not None:
                    row[k] = getattr(st, k)
            if st.skipped:
                row["skipped"] = sum(st.skipped.values())
        row["dropped"] = {r: d.model_dump() for r, d in st.dropped.items()} if st is not None else {}
        row["skipped_reasons"] = dict(st.skipped) if st is not None else {}
        if st is not None and st.kept_by_language is not None:
            row["kept_by_language"] = {k: v.model_dump() for k, v in st.kept_by_language.items()}
        manifest = TokenManifest.read(sd, missing_ok=True)
        if manifest is not None:
            row.setdefault("documents_out", sum(s.documents for s in manifest.shards))
            row.setdefault("tokens_out", sum(s.tokens for s in manifest.shards))
        last = MetricsLog(sd).last()
        if last is not None:
            row["tokens_out"] = last.tokens
            row["steps"] = last.step
        if len(row) > 3 or st is not None:
            rows.append(row)
    return rows


def lower_bound(label: str) -> float:
    """Sort key of a bucket label: "0.5", "4-5", "1001+", "0.9-1" -> its lower bound."""
    m = re.search(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", str(label))
    return float(m.group(0)) if m else float("inf")


def _edge_label(a, b=None) -> str:
    fa = f"{float(a):g}"
    return fa if b is None else f"{fa}-{float(b):g}"


def score_series(hist: ScoreHistogram | None) -> dict[str, list[tuple[str, float]]]:
    """langid's score histogram as {language: [(bucket "lo-hi", count)]}."""
    if hist is None:
        return {}
    e = hist.bins
    return {
        lang: [(_edge_label(e[i], e[i + 1] if i + 1 < len(e) else None), float(c)) for i, c in enumerate(counts)]
        for lang, counts in hist.counts.items()
    }


def cluster_series(sizes: dict[str, int] | None) -> dict[str, list[tuple[str, float]]]:
    """dedup's cluster-size histogram ({"2": n, "4-5": n, "1001+": n}) as one series,
    buckets in size order."""
    if not sizes:
        return {}
    return {"": sorted(((k, float(v)) for k, v in sizes.items()), key=lambda p: (lower_bound(p[0]), p[0]))}


def languages_of(stats: StageStats | None) -> dict[str, int]:
    """Documents per language (langid), most first."""
    if stats is None or stats.languages is None:
        return {}
    return dict(sorted(stats.languages.items(), key=lambda kv: -kv[1]))


def target_mix(plan: MixPlan | None, cfg) -> tuple[dict[str, float], str]:
    """The target mix by source: mix/plan.json's ratios, else the config's, else 5:4:1."""
    if plan is not None and plan.ratios:
        return {k: float(v) for k, v in plan.ratios.items()}, "mix/plan.json"
    if cfg is not None and cfg.mix.ratios:
        return {k: float(v) for k, v in cfg.mix.ratios.items()}, "config mix section"
    return dict(DEFAULT_TARGET), "default 5:4:1"


def realised_mix(manifest: TokenManifest | None) -> dict[str, dict]:
    """Tokens and documents per source in the final token folder (EOS included)."""
    out: dict[str, dict] = {}
    if manifest is None:
        return out
    for s in manifest.shards:
        d = out.setdefault(s.source, {"documents": 0, "tokens": 0, "train_tokens": 0, "val_tokens": 0})
        d["documents"] += s.documents
        d["tokens"] += s.tokens
        d[("val" if s.split == "val" else "train") + "_tokens"] += s.tokens
    return dict(sorted(out.items()))


def mix_chars_by_source(mix_dir: Path) -> dict[str, dict]:
    """Characters and documents per metadata.source in mix/data (Arrow, no Python loop)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[str, dict] = {}
    data = mix_dir / "data"
    if not data.is_dir():
        return out
    for f in doc_files(data):
        if not f.name.endswith(".parquet"):
            for it in iter_file(f, "kept"):
                d = out.setdefault(str(it.metadata.get("source")), {"documents": 0, "chars": 0})
                d["documents"] += 1
                d["chars"] += len(it.text)
            continue
        names = pq.read_schema(f).names
        t = pq.read_table(f, columns=[c for c in ("text", "metadata") if c in names])
        src = None
        if "metadata" in names and "source" in [x.name for x in t.schema.field("metadata").type]:
            src = pc.struct_field(t.column("metadata"), "source")
        lens = pc.utf8_length(t.column("text"))
        srcs = src.to_pylist() if src is not None else [None] * t.num_rows
        for s, n in zip(srcs, lens.to_pylist()):
            d = out.setdefault(str(s), {"documents": 0, "chars": 0})
            d["documents"] += 1
            d["chars"] += int(n or 0)
    return out


def chars_per_token(run_dir: Path, realised: dict[str, dict], cfg) -> tuple[dict[str, dict], str]:
    """Characters per token per source. With a token folder and the mix output:
    all mix characters of a source over its tokens (EOS excluded). Otherwise,
    encode a sample of mix documents with the tokenizer."""
    mix_dir = run_dir / _folder("mix")
    chars = mix_chars_by_source(mix_dir) if mix_dir.is_dir() else {}
    out: dict[str, dict] = {}
    if realised and chars:
        for src, r in realised.items():
            c = chars.get(src)
            tok = r["tokens"] - r["documents"]  # one EOS per document
            if c and tok > 0 and c["documents"] == r["documents"]:
                out[src] = {"chars": c["chars"], "tokens": tok, "chars_per_token": c["chars"] / tok}
        if out:
            return out, "all mix documents over their tokens in the token folder (EOS excluded)"
    model = run_dir / _folder("train-tokenizer") / "tokenizer.model"
    if not model.is_file() or not (mix_dir / "data").is_dir():
        return {}, ""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    k = cfg.report.chars_per_token_docs if cfg is not None else 2000
    samplers: dict[str, Sampler] = {}
    for f in doc_files(mix_dir / "data"):
        for it in iter_file(f, "kept"):
            src = str(it.metadata.get("source"))
            samplers.setdefault(src, Sampler(k, 0)).add(it)
    for src, s in sorted(samplers.items()):
        texts = [it.text for it in s.items()]
        n_tok = sum(len(x) for x in sp.encode(texts))
        n_chr = sum(len(t) for t in texts)
        if n_tok:
            out[src] = {"chars": n_chr, "tokens": n_tok, "chars_per_token": n_chr / n_tok}
    return out, f"a sample of up to {k} mix documents per source encoded with tokenizer/tokenizer.model"


def rule_samples(run_dir: Path, cfg) -> dict[str, dict[str, list[dict]]]:
    """A few dropped documents per rule for each stage with a rejected/ folder."""
    k = cfg.report.samples_per_rule if cfg is not None else 3
    chars = cfg.report.sample_chars if cfg is not None else 300
    seed = cfg.seed if cfg is not None else 0
    out: dict[str, dict[str, list[dict]]] = {}
    if k <= 0:
        return out
    for name, sd in stage_dirs(run_dir).items():
        rej = sd / "rejected"
        if not rej.is_dir():
            continue
        per_rule: dict[str, Sampler] = {}
        for f in doc_files(rej):
            for it in iter_file(f, "rejected"):
                per_rule.setdefault(it.rule or "(no reason)", Sampler(k, seed)).add(it)
        out[name] = {}
        for rule, s in sorted(per_rule.items(), key=lambda kv: -kv[1].n):
            docs = []
            for it in s.items():
                _, _, value = (it.reason or "").partition(":")
                docs.append(
                    {
                        "id": it.id,
                        "value": value or None,
                        "url": it.metadata.get("url"),
                        "language": it.metadata.get("language"),
                        "chars": len(it.text),
                        "text": it.text[:chars],
                    }
                )
            out[name][rule] = docs
    return out


def _tokenizer_meta(run_dir: Path) -> Any | None:
    """tokenizer/tokenizer.json as it is (shown verbatim on the page)."""
    p = run_dir / _folder("train-tokenizer") / "tokenizer.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def collect(run_dir: Path, cfg=None) -> dict:
    """Everything the report shows, as plain data (also written as report.json)."""
    langid = load_stats(run_dir / _folder("langid")) if (run_dir / _folder("langid")).is_dir() else None
    dedup = load_stats(run_dir / _folder("dedup")) if (run_dir / _folder("dedup")).is_dir() else None
    plan = MixPlan.read(run_dir / _folder("mix"), missing_ok=True)
    manifest = TokenManifest.read(run_dir / _folder("tokenize"), missing_ok=True)
    target, target_from = target_mix(plan, cfg)
    realised = realised_mix(manifest)
    cpt, cpt_how = chars_per_token(run_dir, realised, cfg)
    return {
        "run_dir": str(run_dir),
        "stages": [n for n in stage_dirs(run_dir) if n != REPORT_FOLDER],
        "funnel": funnel(run_dir),
        "languages": languages_of(langid),
        "score_histogram": score_series(langid.score_histogram if langid is not None else None),
        "dedup_clusters": cluster_series(dedup.dedup.cluster_sizes if dedup is not None and dedup.dedup else None),
        "mix": {
            "realised": realised,
            "target": target,
            "target_from": target_from,
            "plan": plan.dump() if plan is not None else None,
        },
        "tokenizer": {"meta": _tokenizer_meta(run_dir), "chars_per_token": cpt, "how": cpt_how},
        "metrics": [r.model_dump(exclude_unset=True) for r in MetricsLog(run_dir / _folder("train")).read()],
        "samples": rule_samples(run_dir, cfg),
    }
