"""The report's charts: matplotlib figures as base64 PNGs (no timestamp metadata, so
the same run gives the same bytes). Each chart reads the plain data of `collect`
and returns None when there is nothing to draw."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from shikomi.tools.report.collect import DEFAULT_TARGET, lower_bound


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
    labels.sort(key=lambda x: (lower_bound(x), x))
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
