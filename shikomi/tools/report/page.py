"""The report page: one self-contained HTML file (CSS inline, charts embedded as
base64 PNGs, nothing fetched). The funnel table's cells carry data-stage/data-key
(and data-rule, data-value) so that the rendered numbers can be checked."""

from __future__ import annotations

import html
import json

from shikomi.tools.report.charts import chart_bars, chart_funnel, chart_hist, chart_loss, chart_mix, chart_rules
from shikomi.tools.report.collect import FUNNEL_KEYS

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
        planned = (mix.get("plan") or {}).get("sources") or {}
        trs = [
            [
                s,
                r["documents"],
                r["train_tokens"],
                r["val_tokens"],
                f"{r['train_tokens'] / tot:.2%}",
                f"{mix['target'].get(s, 0) / ttot:.2%}",
                (planned.get(s) or {}).get("repeat_tokens", ""),
                (planned.get(s) or {}).get("rehydration_tokens", ""),
            ]
            for s, r in real.items()
        ]
        parts.append(
            _simple_table(
                [
                    "source",
                    "documents",
                    "train tokens",
                    "validation tokens",
                    "realised share (train)",
                    "target share",
                    "planned repeat tokens",
                    "of which rehydration",
                ],
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
