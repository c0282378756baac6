"""The cost model's arithmetic and the crawl mix it is measured on."""

from __future__ import annotations

import gzip

import pytest

from bench.ccmix import build_mix
from bench.cost import DUMP, core_hours, model, slope


def _run(cpu: float, **stats) -> dict:
    return {"cpu_s": cpu, "rss_mb": 100.0, "wall_s": cpu, "stats": stats}


def _results() -> dict:
    mix1 = {"pages": 1000, "warc_gz_bytes": 20e6, "records": 3002, "wet_records": 900}
    mix10 = {"pages": 10000, "warc_gz_bytes": 200e6, "records": 30002, "wet_records": 9000}
    chain1 = {n: _run(2.0, chars_in=1e6, chars_out=1e6) for n in ("langid", "dedup", "clean", "mix", "tokenize")}
    chain10 = {n: _run(2.0 + 9 * r, chars_in=10e6, chars_out=10e6) for n, r in zip(chain1, (1, 2, 3, 0.5, 1.5))}
    return {
        1: {"mix": mix1, "stages": {"extract": _run(3.0), "extract_wet": _run(2.0), **chain1}},
        10: {
            "mix": mix10,
            "stages": {
                # 0.9 s per compressed GB... and 1 ms per page over the 9,000 extra pages
                "extract": _run(3.0 + 9.0, documents_out=500, chars_out=2e6),
                "extract_wet": _run(2.0 + 0.9, documents_out=450, chars_out=1e6),
                **chain10,
                "mix_chain": {
                    "langid": _run(1, chars_in=2e6, chars_out=1e6),  # half the text is Japanese
                    "dedup": _run(1, chars_in=1e6, chars_out=0.8e6),
                    "clean": _run(1, chars_in=0.8e6, chars_out=0.6e6),
                },
            },
        },
    }


def test_slope_leaves_start_up_out():
    assert slope({"cpu_s": 5.0}, {"cpu_s": 14.0}, 1, 10) == pytest.approx(1.0)
    assert core_hours(1.0, 3600) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        slope({"cpu_s": 1}, {"cpu_s": 2}, 10, 10)


def test_model_scales_measured_rates_to_the_dump():
    m = model(_results())
    pages = DUMP["pages"]
    ex = m["rows"][0]
    # per page 9 s / 9,000 pages = 1 ms; per GB 9 s / 0.18 GB = 50 s; the larger of the two
    by_page, by_gb = 1e-3 * pages / 3600, 50.0 * DUMP["warc_files"] * DUMP["warc_file_gb"] / 3600
    assert ex["warc"] == pytest.approx(max(by_page, by_gb))
    assert ex["wet"] == pytest.approx(0.9 / 9000 * pages / 3600)
    assert m["survival"] == pytest.approx({"langid": 0.5, "dedup": 0.8, "clean": 0.75})
    text_mb = 2e6 / 1e6 / 10000 * pages  # MB of text reaching langid from WARC
    rows = {r["stage"]: r for r in m["rows"]}
    assert rows["langid"]["warc"] == pytest.approx(1.0 * text_mb / 3600)
    assert rows["dedup"]["warc"] == pytest.approx(2.0 * text_mb * 0.5 / 3600)
    assert rows["clean"]["warc"] == pytest.approx(3.0 * text_mb * 0.5 * 0.8 / 3600)
    assert rows["tokenize"]["wet"] == pytest.approx(1.5 * text_mb / 2 * 0.5 * 0.8 * 0.75 / 3600)
    assert m["total"]["warc"] == pytest.approx(sum(r["warc"] for r in m["rows"]))


def test_crawl_mix_has_every_record_kind(shared_data, tmp_path):
    mix = build_mix(shared_data, tmp_path, pages=200, seed=3, files=1)
    types = {}
    for f in mix["warc"].iterdir():
        for line in gzip.open(f, "rt", encoding="latin-1"):
            if line.startswith("WARC-Type:"):
                t = line.split(":", 1)[1].strip()
                types[t] = types.get(t, 0) + 1
    assert types["warcinfo"] == 1
    assert types["request"] == types["response"] == types["metadata"] == 200
    kinds = mix["kinds"]
    assert kinds["redirect"] and kinds["non_html"] and kinds["html_en"] and kinds["html_other"]
    assert 0.02 <= kinds["html_ja"] / 200 <= 0.09  # about 5 % Japanese
    wet_types = set()
    for f in mix["wet"].iterdir():
        wet_types |= {x.split(":", 1)[1].strip() for x in gzip.open(f, "rt") if x.startswith("WARC-Type:")}
    assert wet_types == {"warcinfo", "conversion"}
    assert mix["wet_records"] - 1 <= 200 - kinds["redirect"] - kinds["non_html"]
