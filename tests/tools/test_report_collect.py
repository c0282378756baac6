"""The report's numbers come from declared fields: every section of `collect` is
filled from the schemas (a field renamed in a schema breaks these tests: the
collector reads attributes, it does not probe keys), and a run folder whose file
does not match its schema stops the report with the file and the field named."""

from __future__ import annotations

import json

import pytest
from helpers.run_folder import make_run

from shikomi.core.schemas import MetricsLog, MixPlan, SchemaError, StageStats, TokenManifest
from shikomi.tools.report import collect
from shikomi.tools.report.collect import FUNNEL_STAGES


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    return make_run(tmp_path_factory.mktemp("collect"))


def test_every_section_is_read_from_its_schema(run):
    rd = run["run"]
    data = collect(rd)
    langid = StageStats.read(rd / "langid")
    dedup = StageStats.read(rd / "dedup")
    plan = MixPlan.read(rd / "mix")
    manifest = TokenManifest.read(rd / "tokenize")
    rows = MetricsLog(rd / "train").read()

    assert data["languages"] == langid.languages
    hist = langid.score_histogram
    assert set(data["score_histogram"]) == set(hist.counts)
    for lang, counts in hist.counts.items():
        assert [c for _, c in data["score_histogram"][lang]] == counts
    assert {k: v for k, v in data["dedup_clusters"][""]} == dedup.dedup.cluster_sizes
    assert data["mix"]["target"] == plan.ratios and data["mix"]["target_from"] == "mix/plan.json"
    assert data["mix"]["plan"] == plan.dump()
    for src, r in data["mix"]["realised"].items():
        assert r["tokens"] == sum(s.tokens for s in manifest.shards if s.source == src)
    assert data["metrics"] == [r.model_dump(exclude_unset=True) for r in rows]
    by_stage = {r["stage"]: r for r in data["funnel"]}
    for stage in ("extract", "langid", "dedup", "clean", "mix", "tokenize"):
        st = StageStats.read(rd / stage)
        assert by_stage[stage]["documents_out"] == st.documents_out
        assert by_stage[stage]["dropped"] == {k: v.model_dump() for k, v in st.dropped.items()}
    assert by_stage["train"]["tokens_out"] == rows[-1].tokens and by_stage["train"]["steps"] == rows[-1].step
    assert [r["stage"] for r in data["funnel"]] == [s for s in FUNNEL_STAGES if s in by_stage]


def _rename(path, old: str, new: str, under: str | None = None) -> None:
    d = json.loads(path.read_text())
    node = d[under] if under else d
    node[new] = node.pop(old)
    path.write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n")


@pytest.mark.parametrize(
    "rel,old,new,under",
    [
        ("dedup/stats.json", "cluster_sizes", "cluster_size", "dedup"),
        ("langid/stats.json", "score_histogram", "score_hist", None),
        ("mix/plan.json", "ratios", "target_ratio", None),
        ("tokenize/manifest.json", "shards", "files", None),
        ("clean/stats.json", "dropped", "rejected", None),
    ],
)
def test_a_renamed_field_in_the_run_stops_the_report(tmp_path, rel, old, new, under):
    info = make_run(tmp_path)
    _rename(info["run"] / rel, old, new, under)
    with pytest.raises(SchemaError) as e:
        collect(info["run"])
    assert rel in str(e.value) and new in str(e.value)


def test_a_renamed_metrics_field_stops_the_report(tmp_path):
    info = make_run(tmp_path)
    p = info["run"] / "train" / "metrics.jsonl"
    lines = p.read_text().splitlines()
    row = json.loads(lines[0])
    row["training_loss"] = row.pop("loss")
    p.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(SchemaError, match=r"metrics.jsonl:1: .*missing field 'loss'"):
        collect(info["run"])
