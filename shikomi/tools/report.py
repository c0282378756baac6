"""`shikomi report RUN_DIR`: one self-contained HTML page about a run.

Writes RUN_DIR/report/index.html (charts are matplotlib PNGs embedded as base64; no
network, no external files) and RUN_DIR/report/report.json (the numbers behind it).
Sections: the funnel from WARC records to training tokens (documents, characters and
tokens per stage and per rule), languages and language scores, dedup cluster sizes,
the realised mix by tokens against its target, characters per token per source,
training and per-source validation loss, and sampled dropped documents per rule.
A partial run shows what exists; every section says what it is missing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from shikomi.errors import UserError
from shikomi.tools.inspect import Sampler, doc_files, is_run_dir, iter_file, load_stats, stage_dirs

FUNNEL_STAGES = ["extract", "langid", "dedup", "clean", "mix", "tokenize", "train"]
FUNNEL_KEYS = ["documents_in", "documents_out", "documents_dropped", "skipped", "chars_in", "chars_out", "tokens_out"]
DEFAULT_TARGET = {"ja": 5.0, "en": 4.0, "code": 1.0}


# --------------------------------------------------------------------------- collecting


def _read_json(p: Path) -> Any | None:
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_metrics(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return rows


def funnel(run_dir: Path) -> list[dict]:
    """One row per stage that ran, numbers straight from its stats.json (token
    folder and training metrics fill in tokens)."""
    rows = []
    for name in FUNNEL_STAGES:
        sd = run_dir / name
        if not sd.is_dir():
            continue
        st = load_stats(sd) or {}
        row: dict[str, Any] = {"stage": name}
        for k in ("documents_in", "documents_out", "documents_dropped", "chars_in", "chars_out", "tokens_out"):
            if k in st and st[k] is not None:
                row[k] = int(st[k])
        if st.get("skipped"):
            row["skipped"] = int(sum(int(v) for v in st["skipped"].values()))
        row["dropped"] = {
            r: {"documents": int(d.get("documents", 0)), "chars": int(d.get("chars", 0))}
            for r, d in (st.get("dropped") or {}).items()
        }
        row["skipped_reasons"] = {k: int(v) for k, v in (st.get("skipped") or {}).items()}
        kbl = st.get("kept_by_language")
        if isinstance(kbl, dict):
            row["kept_by_language"] = {
                str(k): {"documents": int(v.get("documents", 0)), "chars": int(v.get("chars", 0))}
                for k, v in kbl.items()
                if isinstance(v, dict)
            }
        if name == "tokenize":
            m = _read_json(sd / "manifest.json")
            if m:
                shards = m.get("shards") or []
                row.setdefault("documents_out", sum(int(s.get("documents") or 0) for s in shards))
                row.setdefault("tokens_out", sum(int(s.get("tokens") or 0) for s in shards))
        if name == "train":
            metrics = read_metrics(sd / "metrics.jsonl")
            if metrics:
                last = metrics[-1]
                if last.get("tokens") is not None:
                    row["tokens_out"] = int(last["tokens"])
                row["steps"] = last.get("step")
        if len(row) > 3 or st:
            rows.append(row)
    return rows


def _lower_bound(label: str) -> float:
    """Sort key of a bucket label: "0.5", "4-5", "1001+", "[0.5, 0.6)" -> its lower bound."""
    import re

    m = re.search(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", str(label))
    return float(m.group(0)) if m else float("inf")


def _edge_label(a, b=None) -> str:
    fa = f"{float(a):g}"
    return fa if b is None else f"{fa}-{float(b):g}"


def hist_series(obj) -> dict[str, list[tuple[str, float]]]:
    """Normalise the histogram shapes stages write into {series: [(bucket label, count)]}:
    {"bins"/"edges": [...], "counts": [...] or {series: [...]}}, {"label": count},
    [counts], [[x, count]], or a dict of those per series (e.g. per language)."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        counts = obj.get("counts")
        edges = obj.get("edges", obj.get("bins", obj.get("bin_edges")))
        if isinstance(counts, dict):
            out = {}
            for name, c in counts.items():
                s = hist_series({"edges": edges, "counts": c} if isinstance(c, list) else c)
                if s:
                    out[str(name)] = next(iter(s.values()))
            return out
        if isinstance(counts, list):
            if isinstance(edges, list) and len(edges) >= len(counts):
                return {
                    "": [
                        (_edge_label(edges[i], edges[i + 1] if i + 1 < len(edges) else None), float(counts[i]))
                        for i in range(len(counts))
                    ]
                }
            return {"": [(str(i), float(c)) for i, c in enumerate(counts)]}
        if obj and all(isinstance(v, (dict, list)) for v in obj.values()):
            out = {}
            for k, v in obj.items():
                s = hist_series(v)
                if s:
                    out[str(k)] = next(iter(s.values()))
            return out
        pts = [(str(k), float(v)) for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return {"": sorted(pts, key=lambda p: (_lower_bound(p[0]), p[0]))} if pts else {}
    if isinstance(obj, list) and obj:
        if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in obj):
            return {"": [(_edge_label(a), float(b)) for a, b in obj]}
        if all(isinstance(v, (int, float)) for v in obj):
            n = len(obj)
            return {"": [(_edge_label(i / n, (i + 1) / n), float(v)) for i, v in enumerate(obj)]}
    return {}


def find_nested(d, needle: str, depth: int = 3):
    """The first dict/list value under a key containing `needle` (breadth first, a few levels)."""
    level = [d]
    for _ in range(depth):
        nxt = []
        for node in level:
            if not isinstance(node, dict):
                continue
            for k, v in node.items():
                if needle in str(k).lower() and isinstance(v, (dict, list)):
                    return v
                if isinstance(v, dict):
                    nxt.append(v)
        level = nxt
    return None


def languages_of(stats: dict | None) -> dict[str, int]:
    if not stats:
        return {}
    langs = stats.get("languages")
    if isinstance(langs, dict):
        out = {}
        for k, v in langs.items():
            if isinstance(v, dict):
                v = v.get("documents", v.get("docs", 0))
            out[str(k)] = int(v or 0)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
    return {}


def target_mix(run_dir: Path, plan: dict | None, cfg) -> tuple[dict[str, float], str]:
    """The configured mix ratio by source: mix/plan.json, else the config, else 5:4:1."""

    def pick(d) -> dict | None:
        if not isinstance(d, dict):
            return None
        for key in ("target_ratio", "target", "ratios", "ratio", "weights", "target_share", "shares"):
            v = d.get(key)
            if isinstance(v, dict) and v and all(isinstance(x, (int, float)) for x in v.values()):
                return {str(k): float(x) for k, x in v.items()}
        srcs = d.get("sources")
        if isinstance(srcs, dict):
            out = {}
            for name, s in srcs.items():
                if isinstance(s, dict):
                    for key in ("ratio", "weight", "target_ratio", "target_share", "share"):
                        if isinstance(s.get(key), (int, float)):
                            out[str(name)] = float(s[key])
                            break
            if out:
                return out
        if isinstance(srcs, list):
            out = {}
            for s in srcs:
                if isinstance(s, dict) and s.get("name") is not None:
                    for key in ("ratio", "weight", "target_ratio", "target_share", "share"):
                        if isinstance(s.get(key), (int, float)):
                            out[str(s["name"])] = float(s[key])
                            break
            if out:
                return out
        return None

    t = pick(plan)
    if t:
        return t, "mix/plan.json"
    try:
        mix_cfg = cfg.mix.model_dump() if cfg is not None else None
    except Exception:  # noqa: BLE001
        mix_cfg = None
    t = pick(mix_cfg)
    if t:
        return t, "config mix section"
    return dict(DEFAULT_TARGET), "default 5:4:1"


def realised_mix(run_dir: Path) -> dict[str, dict]:
    """Tokens and documents per source in the final token folder (EOS included)."""
    m = _read_json(run_dir / "tokenize" / "manifest.json")
    out: dict[str, dict] = {}
    if not m:
        return out
    for s in m.get("shards") or []:
        src = str(s.get("source"))
        d = out.setdefault(src, {"documents": 0, "tokens": 0, "train_tokens": 0, "val_tokens": 0})
        d["documents"] += int(s.get("documents") or 0)
        d["tokens"] += int(s.get("tokens") or 0)
        d[("val" if s.get("split") == "val" else "train") + "_tokens"] += int(s.get("tokens") or 0)
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


def chars_per_token(run_dir: Path, cfg) -> tuple[dict[str, dict], str]:
    """Characters per token per source. With a token folder and the mix output:
    all mix characters of a source over its tokens (EOS excluded). Otherwise,
    encode a sample of mix documents with the tokenizer."""
    realised = realised_mix(run_dir)
    chars = mix_chars_by_source(run_dir / "mix") if (run_dir / "mix").is_dir() else {}
    out: dict[str, dict] = {}
    if realised and chars:
        for src, r in realised.items():
            c = chars.get(src)
            tok = r["tokens"] - r["documents"]  # one EOS per document
            if c and tok > 0 and c["documents"] == r["documents"]:
                out[src] = {"chars": c["chars"], "tokens": tok, "chars_per_token": c["chars"] / tok}
        if out:
            return out, "all mix documents over their tokens in the token folder (EOS excluded)"
    model = run_dir / "tokenizer" / "tokenizer.model"
    if not model.is_file() or not (run_dir / "mix" / "data").is_dir():
        return {}, ""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    k = cfg.report.chars_per_token_docs if cfg is not None else 2000
    samplers: dict[str, Sampler] = {}
    for f in doc_files(run_dir / "mix" / "data"):
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


def collect(run_dir: Path, cfg=None) -> dict:
    """Everything the report shows, as plain data (also written as report.json)."""
    stats = {name: load_stats(sd) for name, sd in stage_dirs(run_dir).items()}
    langid = stats.get("langid")
    dedup = stats.get("dedup") or {}
    plan = _read_json(run_dir / "mix" / "plan.json")
    target, target_from = target_mix(run_dir, plan, cfg)
    cpt, cpt_how = chars_per_token(run_dir, cfg)
    tok_meta = _read_json(run_dir / "tokenizer" / "tokenizer.json")
    clusters = find_nested(dedup, "cluster_size") or find_nested(dedup, "cluster")
    score_hist = (langid or {}).get("score_histogram")
    return {
        "run_dir": str(run_dir),
        "stages": [n for n in stage_dirs(run_dir) if n != "report"],
        "funnel": funnel(run_dir),
        "languages": languages_of(langid),
        "score_histogram": hist_series(score_hist),
        "dedup_clusters": hist_series(clusters),
        "mix": {"realised": realised_mix(run_dir), "target": target, "target_from": target_from, "plan": plan},
        "tokenizer": {"meta": tok_meta, "chars_per_token": cpt, "how": cpt_how},
        "metrics": read_metrics(run_dir / "train" / "metrics.jsonl"),
        "samples": rule_samples(run_dir, cfg),
    }


# --------------------------------------------------------------------------- charts


def _plt():
    os.environ.setdefault("MPLCONFIGDIR", str(Path.home() / ".cache" / "shikomi-matplotlib"))
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.autolayout": True, "font.size": 9, "svg.hashsalt": "shikomi"})
    return plt


def png(fig, dpi: int) -> str:
    """A figure as a base64 PNG (no timestamp metadata: same run, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def chart_funnel(rows: list[dict], dpi: int) -> str | None:
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, title in zip(
        axes, ("documents_out", "chars_out", "tokens_out"), ("documents out", "characters out", "tokens")
    ):
        pts = [(r["stage"], r[key]) for r in rows if r.get(key) is not None]
        if key == "documents_out" and rows and rows[0].get("documents_in") is not None:
            pts = [(f"{rows[0]['stage']} in", rows[0]["documents_in"])] + pts
        if not pts:
            ax.set_axis_off()
            ax.set_title(title + " (none yet)")
            continue
        labels = [p[0] for p in pts][::-1]
        vals = [p[1] for p in pts][::-1]
        bars = ax.barh(labels, vals, color="#4c78a8")
        ax.bar_label(bars, labels=[f"{v:,}" for v in vals], fontsize=7, padding=2)
        ax.set_title(title)
        ax.margins(x=0.25)
    return png(fig, dpi)


def chart_rules(rows: list[dict], max_rules: int, dpi: int) -> str | None:
    pts = []
    for r in rows:
        for rule, d in r.get("dropped", {}).items():
            pts.append((f"{r['stage']}/{rule}", d["documents"], d["chars"]))
    if not pts:
        return None
    pts = sorted(pts, key=lambda p: -p[2])[:max_rules]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.8 + 0.28 * len(pts)))
    labels = [p[0] for p in pts][::-1]
    for ax, i, title in ((axes[0], 1, "documents dropped"), (axes[1], 2, "characters dropped")):
        vals = [p[i] for p in pts][::-1]
        bars = ax.barh(labels, vals, color="#e45756")
        ax.bar_label(bars, labels=[f"{v:,}" for v in vals], fontsize=7, padding=2)
        ax.set_title(title)
        ax.margins(x=0.25)
    axes[1].set_yticklabels([])
    return png(fig, dpi)


def chart_bars(values: dict[str, float], title: str, dpi: int, color="#54a24b", fmt="{:,.0f}") -> str | None:
    if not values:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.3 * len(values)))
    labels = list(values)[::-1]
    vals = [values[k] for k in labels]
    bars = ax.barh(labels, vals, color=color)
    ax.bar_label(bars, labels=[fmt.format(v) for v in vals], fontsize=7, padding=2)
    ax.set_title(title)
    ax.margins(x=0.25)
    return png(fig, dpi)


def chart_hist(series: dict[str, list], title: str, xlabel: str, dpi: int, logy: bool = False) -> str | None:
    """Bars per bucket (categorical x: bucket labels), one colour per series."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _plt()
    labels: list[str] = []
    for pts in series.values():
        for lab, _ in pts:
            if lab not in labels:
                labels.append(lab)
    labels.sort(key=lambda x: (_lower_bound(x), x))
    pos = {lab: i for i, lab in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels)), 3.2))
    n = len(series)
    w = 0.8 / n
    for i, (name, pts) in enumerate(sorted(series.items())):
        ax.bar([pos[lab] - 0.4 + (i + 0.5) * w for lab, _ in pts], [c for _, c in pts], width=w, label=name or None)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(
        labels, rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center", fontsize=7
    )
    if logy:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    if any(series):
        ax.legend(fontsize=7)
    return png(fig, dpi)


def chart_mix(realised: dict, target: dict, dpi: int) -> str | None:
    if not realised:
        return None
    plt = _plt()
    srcs = sorted(
        set(realised) | set(target), key=lambda s: (list(DEFAULT_TARGET).index(s) if s in DEFAULT_TARGET else 9, s)
    )
    # the plan is over training tokens; validation shards are held out of it
    tot = sum(r.get("train_tokens", r["tokens"]) for r in realised.values()) or 1
    ttot = sum(target.values()) or 1
    real = [realised.get(s, {}).get("train_tokens", realised.get(s, {}).get("tokens", 0)) / tot for s in srcs]
    tgt = [target.get(s, 0) / ttot for s in srcs]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(srcs))
    ax.bar([i - 0.2 for i in x], tgt, width=0.4, label="target", color="#bab0ac")
    bars = ax.bar([i + 0.2 for i in x], real, width=0.4, label="realised (tokens)", color="#4c78a8")
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in real], fontsize=7)
    ax.set_xticks(list(x))
    ax.set_xticklabels(srcs)
    ax.set_ylabel("share of tokens")
    ax.set_title("mix by tokens")
    ax.legend(fontsize=7)
    return png(fig, dpi)


def chart_loss(metrics: list[dict], dpi: int) -> str | None:
    train = [(m["step"], m["loss"]) for m in metrics if m.get("loss") is not None and m.get("step") is not None]
    val_keys = sorted({k for m in metrics for k in m if k.startswith("val_loss")})
    if not train and not val_keys:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    ax = axes[0]
    if train:
        ax.plot([p[0] for p in train], [p[1] for p in train], label="train loss", color="#4c78a8")
    for k in val_keys:
        pts = [(m["step"], m[k]) for m in metrics if m.get(k) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training and validation loss")
    ax.legend(fontsize=7)
    lr = [(m["step"], m["lr"]) for m in metrics if m.get("lr") is not None]
    tps = [(m["step"], m["tokens_per_s"]) for m in metrics if m.get("tokens_per_s") is not None]
    ax = axes[1]
    if lr:
        ax.plot([p[0] for p in lr], [p[1] for p in lr], color="#f58518", label="lr")
        ax.set_ylabel("learning rate")
    if tps:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in tps], [p[1] for p in tps], color="#54a24b", alpha=0.6, label="tokens/s")
        ax2.set_ylabel("tokens/s")
    ax.set_xlabel("step")
    ax.set_title("learning rate and throughput")
    return png(fig, dpi)


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,"Segoe UI","Hiragino Sans","Noto Sans CJK JP",sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.rule td{color:#555;background:#fafafa}
th{background:#f0f0f0}img{max-width:100%}.missing{color:#888;font-style:italic}
details{margin:4px 0}pre{white-space:pre-wrap;background:#f7f7f7;padding:6px;font-size:12px;margin:4px 0}
nav a{margin-right:12px}.meta{color:#666;font-size:12px}
"""

LOAD_SCRIPT = """
<script>
function shikomiMarkImages(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){var im=imgs[i];var l=im.complete&&im.naturalWidth>0;
im.setAttribute('data-loaded',l?'1':'0');if(l)ok++;}
document.body.setAttribute('data-images',String(imgs.length));
document.body.setAttribute('data-images-loaded',String(ok));}
window.addEventListener('load',shikomiMarkImages);
</script>
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _n(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3f}"
    return f"{v:,}"


def _img(b64: str | None, alt: str, missing: str) -> str:
    if not b64:
        return f'<p class="missing">{_e(missing)}</p>'
    return f'<img class="chart" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _cell(stage: str, key: str, v, rule: str | None = None) -> str:
    attrs = f' data-stage="{_e(stage)}" data-key="{_e(key)}"'
    if rule is not None:
        attrs += f' data-rule="{_e(rule)}"'
    if v is not None:
        attrs += f' data-value="{v}"'
    return f'<td class="n"{attrs}>{_n(v)}</td>'


def funnel_table(rows: list[dict]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "stage / rule",
            "documents in",
            "documents out",
            "dropped",
            "skipped",
            "characters in",
            "characters out",
            "tokens",
        )
    )
    out = [f'<table id="funnel-table"><tr>{head}</tr>']
    for r in rows:
        st = r["stage"]
        label = st + (f" (step {r['steps']})" if r.get("steps") is not None else "")
        out.append(
            f'<tr class="stage" data-stage="{_e(st)}"><td><b>{_e(label)}</b></td>'
            + "".join(_cell(st, k, r.get(k)) for k in FUNNEL_KEYS)
            + "</tr>"
        )
        for rule, d in sorted(r.get("dropped", {}).items(), key=lambda kv: -kv[1]["documents"]):
            out.append(
                f'<tr class="rule"><td>&nbsp;&nbsp;dropped by {_e(rule)}</td><td></td><td></td>'
                + _cell(st, "rule_documents", d["documents"], rule)
                + "<td></td><td></td>"
                + _cell(st, "rule_chars", d["chars"], rule)
                + "<td></td></tr>"
            )
        for lang, d in sorted(r.get("kept_by_language", {}).items(), key=lambda kv: -kv[1]["documents"]):
            out.append(
                f'<tr class="rule"><td>&nbsp;&nbsp;kept as {_e(lang)} ({_e(st)}/{_e(lang)}/data)</td><td></td>'
                + _cell(st, "language_documents", d["documents"], lang)
                + "<td></td><td></td><td></td>"
                + _cell(st, "language_chars", d["chars"], lang)
                + "<td></td></tr>"
            )
        for reason, n in sorted(r.get("skipped_reasons", {}).items(), key=lambda kv: -kv[1]):
            out.append(
                f'<tr class="rule"><td>&nbsp;&nbsp;skipped: {_e(reason)}</td><td></td><td></td><td></td>'
                + _cell(st, "skipped_reason", n, reason)
                + "<td></td><td></td><td></td></tr>"
            )
    out.append("</table>")
    return "\n".join(out)


def _simple_table(headers: list[str], rows: list[list], id_: str = "") -> str:
    idattr = f' id="{id_}"' if id_ else ""
    out = [f"<table{idattr}><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="n">{_n(v)}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render(data: dict, cfg=None) -> str:
    dpi = cfg.report.dpi if cfg is not None else 100
    max_rules = cfg.report.max_rules if cfg is not None else 40
    run_dir = data["run_dir"]
    rows = data["funnel"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ja"><head><meta charset="utf-8">',
        f"<title>shikomi report: {_e(run_dir)}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>shikomi run report</h1><p class="meta">run folder: <code>{_e(run_dir)}</code>; stages present: '
        f"{_e(', '.join(data['stages']) or 'none')}</p>",
        '<nav><a href="#funnel">funnel</a><a href="#rules">rules</a><a href="#languages">languages</a>'
        '<a href="#dedup">dedup</a><a href="#mix">mix</a><a href="#tokenizer">tokenizer</a>'
        '<a href="#training">training</a><a href="#samples">dropped samples</a></nav>',
    ]

    parts.append('<section id="funnel"><h2>Funnel: WARC records to training tokens</h2>')
    if rows:
        parts.append(_img(chart_funnel(rows, dpi), "funnel", ""))
        parts.append(funnel_table(rows))
        parts.append(
            '<p class="meta">Numbers are each stage\'s stats.json (extract counts WARC records in, '
            "skipped ones included). tokenize tokens include one EOS per document; train "
            "tokens are the tokens seen by the last logged step.</p>"
        )
    else:
        parts.append('<p class="missing">no stage has written stats.json yet</p>')
    parts.append("</section>")

    parts.append('<section id="rules"><h2>What each rule costs</h2>')
    parts.append(_img(chart_rules(rows, max_rules, dpi), "rules", "no dropped documents recorded"))
    parts.append("</section>")

    parts.append('<section id="languages"><h2>Languages</h2>')
    langs = data["languages"]
    parts.append(
        _img(
            chart_bars(langs, "documents per language (langid)", dpi),
            "languages",
            "no language counts (langid/stats.json 'languages')",
        )
    )
    parts.append(
        _img(
            chart_hist(data["score_histogram"], "language score", "score", dpi),
            "language score histogram",
            "no language score histogram (langid/stats.json 'score_histogram')",
        )
    )
    parts.append("</section>")

    parts.append('<section id="dedup"><h2>Near-duplicate clusters</h2>')
    parts.append(
        _img(
            chart_hist(data["dedup_clusters"], "dedup cluster sizes", "cluster size", dpi, logy=True),
            "dedup cluster sizes",
            "no cluster-size histogram (dedup/stats.json)",
        )
    )
    parts.append("</section>")

    parts.append('<section id="mix"><h2>Mix by tokens</h2>')
    mix = data["mix"]
    real = mix["realised"]
    parts.append(_img(chart_mix(real, mix["target"], dpi), "mix", "no token folder yet (tokenize/manifest.json)"))
    if real:
        tot = sum(r["train_tokens"] for r in real.values()) or 1
        ttot = sum(mix["target"].values()) or 1
        trs = [
            [
                s,
                r["documents"],
                r["train_tokens"],
                r["val_tokens"],
                f"{r['train_tokens'] / tot:.2%}",
                f"{mix['target'].get(s, 0) / ttot:.2%}",
            ]
            for s, r in real.items()
        ]
        parts.append(
            _simple_table(
                ["source", "documents", "train tokens", "validation tokens", "realised share (train)", "target share"],
                trs,
                "mix-table",
            )
        )
        parts.append(f'<p class="meta">target from {_e(mix["target_from"])}</p>')
    parts.append("</section>")

    parts.append('<section id="tokenizer"><h2>Tokenizer: characters per token</h2>')
    cpt = data["tokenizer"]["chars_per_token"]
    parts.append(
        _img(
            chart_bars(
                {k: v["chars_per_token"] for k, v in cpt.items()},
                "characters per token",
                dpi,
                color="#b279a2",
                fmt="{:.2f}",
            ),
            "characters per token",
            "no tokenizer or mix output yet",
        )
    )
    if cpt:
        parts.append(
            _simple_table(
                ["source", "characters", "tokens", "characters per token"],
                [[k, v["chars"], v["tokens"], round(v["chars_per_token"], 3)] for k, v in cpt.items()],
                "cpt-table",
            )
        )
        parts.append(f'<p class="meta">measured on {_e(data["tokenizer"]["how"])}</p>')
    meta = data["tokenizer"]["meta"]
    if meta:
        parts.append("<pre>" + _e(json.dumps(meta, ensure_ascii=False, indent=1)[:2000]) + "</pre>")
    parts.append("</section>")

    parts.append('<section id="training"><h2>Training</h2>')
    metrics = data["metrics"]
    parts.append(_img(chart_loss(metrics, dpi), "loss curves", "no train/metrics.jsonl yet"))
    if metrics:
        last = metrics[-1]
        parts.append(
            _simple_table(
                ["last step", "tokens", "loss", "lr"],
                [[last.get("step"), last.get("tokens"), last.get("loss"), last.get("lr")]],
            )
        )
    parts.append("</section>")

    parts.append('<section id="samples"><h2>Dropped documents, sampled per rule</h2>')
    samples = data["samples"]
    if not samples:
        parts.append('<p class="missing">no rejected/ folders</p>')
    for stage, rules in samples.items():
        parts.append(f"<h3>{_e(stage)}</h3>")
        for rule, docs in list(rules.items())[:max_rules]:
            parts.append(
                f'<details data-stage="{_e(stage)}" data-rule="{_e(rule)}"><summary>{_e(rule)} '
                f"({len(docs)} shown)</summary>"
            )
            for d in docs:
                head = (
                    f"id {d['id']}"
                    + (f" · value {d['value']}" if d.get("value") else "")
                    + (f" · {d['url']}" if d.get("url") else "")
                    + f" · {d['chars']:,} chars"
                )
                parts.append(f'<p class="meta">{_e(head)}</p><pre>{_e(d["text"])}</pre>')
            parts.append("</details>")
    parts.append("</section>")
    parts.append(LOAD_SCRIPT)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- command


def resolve_run_dir(args, cfg) -> Path:
    rd = getattr(args, "run_dir", None) or getattr(args, "output", None)
    if not rd and cfg is not None:
        rd = cfg.report.input or cfg.run_dir
    if not rd:
        raise UserError("report: give a run folder (shikomi report RUN_DIR)")
    p = Path(rd)
    if not p.is_dir():
        raise UserError(f"{p}: no such run folder")
    if not is_run_dir(p):
        raise UserError(
            f"{p}: not a run folder (expected stage folders such as {p}/extract or {p}/clean with stats.json)"
        )
    return p


def write_report(run_dir: Path, cfg=None) -> Path:
    data = collect(run_dir, cfg)
    page = render(data, cfg)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "index.html")
    slim = {k: v for k, v in data.items() if k != "samples"}
    (out / "report.json").write_text(
        json.dumps(slim, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8"
    )
    return out / "index.html"


def main(args, cfg=None) -> int:
    run_dir = resolve_run_dir(args, cfg)
    path = write_report(run_dir, cfg)
    print(f"[report] {path} ({path.stat().st_size / 1024:,.0f} KiB)")
    return 0


# --------------------------------------------------------------------------- console progress
