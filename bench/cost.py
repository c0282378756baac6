"""Core-hours per CommonCrawl dump, per stage, from rates measured in this run.

The rates come from the runs of bench/memory.py (every stage as one task in its own
process at 1x and 10x input; the CPU seconds of the 10x run minus the 1x run, over the
extra input, so start-up is left out): extract on the CommonCrawl-like WARC and WET of
bench/ccmix.py with the current default extract config, and langid..tokenize on
Japanese documents. Survival rates (how much of the crawl reaches each stage) are
measured on the same mix. `python -m bench cost` reruns everything, so later changes
to any stage or to the default config show up in the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The dump the table is for (CommonCrawl's published numbers for CC-MAIN-2024-22).
DUMP = {
    "name": "CC-MAIN-2024-22",
    "pages": 2.7e9,
    "warc_files": 90_000,
    "warc_file_gb": 1.0,  # compressed; WARC bytes per dump = files x size
    "ja_share": 0.05,  # of pages (the mix has the same share)
}
GOAL_CORE_HOURS = 1500
CHAIN = ["langid", "dedup", "clean", "mix", "tokenize"]


def slope(a: dict, b: dict, ua: float, ub: float) -> float:
    """CPU seconds per unit of input from two runs of sizes ua < ub (start-up cancels)."""
    if ub <= ua:
        raise ValueError("slope: the second run must be larger")
    return max(b["cpu_s"] - a["cpu_s"], 0.0) / (ub - ua)


def core_hours(rate_s_per_unit: float, units: float) -> float:
    return rate_s_per_unit * units / 3600.0


def _mb_in(stage_result: dict) -> float:
    return float(stage_result["stats"].get("chars_in", 0)) / 1e6


def model(results: dict, dump: dict = DUMP) -> dict:
    """The table's numbers from the measured runs: per stage, the rate, the input per
    dump and core-hours for the WARC and the WET route."""
    one, big = results[1], results[max(results)]
    s1, s2 = one["stages"], big["stages"]
    m1, m2 = one["mix"], big["mix"]
    warc_gb = dump["warc_files"] * dump["warc_file_gb"]
    # extract: per compressed GB of WARC and per page, whichever gives more
    r_warc_gb = slope(s1["extract"], s2["extract"], m1["warc_gz_bytes"] / 1e9, m2["warc_gz_bytes"] / 1e9)
    r_warc_page = slope(s1["extract"], s2["extract"], m1["pages"], m2["pages"])
    r_wet_page = slope(s1["extract_wet"], s2["extract_wet"], m1["pages"], m2["pages"])
    ex_warc = max(core_hours(r_warc_gb, warc_gb), core_hours(r_warc_page, dump["pages"]))
    ex_wet = core_hours(r_wet_page, dump["pages"])
    # what reaches langid: extracted documents (and their text) per page, per route
    docs_per_page = {
        "warc": s2["extract"]["stats"]["documents_out"] / m2["pages"],
        "wet": s2["extract_wet"]["stats"]["documents_out"] / m2["pages"],
    }
    mb_per_page = {
        "warc": s2["extract"]["stats"].get("chars_out", 0) / 1e6 / m2["pages"],
        "wet": s2["extract_wet"]["stats"].get("chars_out", 0) / 1e6 / m2["pages"],
    }
    # survival through langid, dedup, clean on the crawl mix (text share kept)
    mc = big["stages"]["mix_chain"]
    surv = {}
    for name in ("langid", "dedup", "clean"):
        st = mc[name]["stats"]
        surv[name] = (st.get("chars_out", 0) / st["chars_in"]) if st.get("chars_in") else 0.0
    # per-MB rates of the Japanese chain (10x minus 1x)
    rates = {name: slope(s1[name], s2[name], _mb_in(s1[name]), _mb_in(s2[name])) for name in CHAIN}
    rows = [
        {
            "stage": "extract + gate",
            "rate": f"{r_warc_gb:,.0f} s/GB WARC, {1000 * r_warc_page:.1f} ms/page; WET {1000 * r_wet_page:.2f} ms/page",
            "input_warc": f"{warc_gb / 1000:,.0f} TB WARC, {dump['pages'] / 1e9:.1f} G pages",
            "input_wet": f"{dump['pages'] / 1e9:.1f} G pages",
            "warc": ex_warc,
            "wet": ex_wet,
        }
    ]
    for name in CHAIN:
        mb = {}
        for route in ("warc", "wet"):
            x = mb_per_page[route] * dump["pages"]  # MB of text into langid
            if name != "langid":
                x *= surv["langid"]
            if name in ("clean", "mix", "tokenize"):
                x *= surv["dedup"]
            if name in ("mix", "tokenize"):
                x *= surv["clean"]
            mb[route] = x
        rows.append(
            {
                "stage": name,
                "rate": f"{rates[name]:.2f} s/MB",
                "input_warc": f"{mb['warc'] / 1e6:,.2f} TB text",
                "input_wet": f"{mb['wet'] / 1e6:,.2f} TB text",
                "warc": core_hours(rates[name], mb["warc"]),
                "wet": core_hours(rates[name], mb["wet"]),
            }
        )
    total = {k: sum(r[k] for r in rows) for k in ("warc", "wet")}
    return {
        "rows": rows,
        "total": total,
        "survival": surv,
        "docs_per_page": docs_per_page,
        "mb_per_page": mb_per_page,
        "rates_s_per_mb": rates,
        "extract_rates": {"s_per_warc_gb": r_warc_gb, "s_per_page_warc": r_warc_page, "s_per_page_wet": r_wet_page},
    }


def bench(data: Path, quick: bool) -> dict:
    from bench.memory import SCALE, measure
    from shikomi.config import load_config

    results = measure(data, quick)
    m = model(results)
    gate = load_config(None, {}).extract.japanese_gate.enabled
    rows = [
        [r["stage"], r["rate"], r["input_warc"], f"{r['warc']:,.0f}", r["input_wet"], f"{r['wet']:,.0f}"]
        for r in m["rows"]
    ]
    rows.append(
        [
            "**total**",
            "",
            "",
            f"**{m['total']['warc']:,.0f}**",
            "",
            f"**{m['total']['wet']:,.0f}**",
        ]
    )
    mix = results[SCALE]["mix"]
    s = m["survival"]
    notes = [
        f"Dump assumed: {DUMP['name']}, {DUMP['pages'] / 1e9:.1f} billion pages in {DUMP['warc_files']:,} WARC files "
        f"of ~{DUMP['warc_file_gb']:.0f} GB (compressed), {100 * DUMP['ja_share']:.0f} % Japanese pages. "
        f"Goal: <= {GOAL_CORE_HOURS:,} core-hours from WARC to token shards "
        f"({'met' if m['total']['warc'] <= GOAL_CORE_HOURS else 'NOT met'} from WARC, "
        f"{'met' if m['total']['wet'] <= GOAL_CORE_HOURS else 'NOT met'} from WET).",
        f"Measured on the crawl mix ({mix['pages']:,} captures = {mix['records']:,} WARC records: warcinfo, "
        f"request, response, metadata; kinds {mix['kinds']}; {mix['response_bytes'] / mix['pages'] / 1e3:.0f} KB "
        f"per response, {mix['warc_gz_bytes'] / mix['pages'] / 1e3:.1f} KB gzipped per capture): extract "
        f"(Japanese gate {'on' if gate else 'off'}: the default config) keeps "
        f"{m['docs_per_page']['warc']:.3f} documents per page from WARC, {m['docs_per_page']['wet']:.3f} from WET; "
        f"text kept by langid (ja) {100 * s['langid']:.0f} %, dedup {100 * s['dedup']:.0f} %, "
        f"clean {100 * s['clean']:.0f} %.",
        "Rates: CPU seconds (user + system) per unit of input, from one task of each stage at 1x and "
        f"{SCALE}x input (the difference, so start-up is left out). Extract is charged by WARC bytes or by pages, "
        "whichever is more; the later stages by the MB of text reaching them. train-tokenizer (once per "
        "tokenizer, not per dump) and train are not in the table.",
    ]
    return {
        "title": f"core-hours per CommonCrawl dump ({DUMP['name']}), WARC and WET",
        "columns": ["stage", "measured rate", "WARC route: input", "core-hours", "WET route: input", "core-hours"],
        "rows": rows,
        "notes": notes,
        "raw": m,
    }


if __name__ == "__main__":
    import json

    res = bench(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data",
        quick="--quick" in sys.argv,
    )
    print(json.dumps(res, indent=2, ensure_ascii=False, default=str))
