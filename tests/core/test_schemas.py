"""The schemas of what stages write: each artifact written through its model reads
back the same, with the same text (key order, number types); a renamed, missing or
undeclared field is refused with an error naming the file and the field; and no
module but the schemas opens these files."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
from helpers.artifacts import MANIFEST, METRICS_ROWS, PLAN, STATS

from shikomi.core.schemas import MetricsLog, MetricsRow, MixPlan, SchemaError, StageStats, TokenManifest

ROOT = Path(__file__).resolve().parents[2]


def as_written(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def renamed(d: dict, path: str, new: str) -> dict:
    """A deep copy of `d` with the key at dotted `path` renamed to `new` (same place)."""
    d = copy.deepcopy(d)
    *parents, key = path.split(".")
    node = d
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    items = list(node.items())
    node.clear()
    node.update((new if k == key else k, v) for k, v in items)
    return d


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("stage", sorted(STATS))
def test_stats_roundtrip_keeps_the_text(tmp_path, stage):
    d = STATS[stage]
    path = StageStats.parse(d).write(tmp_path)
    assert path == tmp_path / "stats.json"
    assert path.read_text(encoding="utf-8") == as_written(d)
    back = StageStats.read(tmp_path)
    assert back.dump() == d
    assert back.stage == stage and back.documents_out == d["documents_out"]


def test_stage_extras_are_typed():
    langid = StageStats.parse(STATS["langid"])
    assert langid.languages == {"en": 40, "ja": 20}
    assert langid.kept_by_language["ja"].documents == 20
    assert len(langid.score_histogram.bins) == len(langid.score_histogram.counts["ja"]) + 1
    dedup = StageStats.parse(STATS["dedup"]).dedup
    assert dedup.cluster_sizes["2"] == 2 and dedup.lsh.bands == 14 and dedup.lines.lines_removed == 18
    assert StageStats.parse(STATS["clean"]).clean_profile.rules[1].rule == "header_footer_lines"
    mix = StageStats.parse(STATS["mix"])
    assert mix.tokens_counted_with == "estimate" and set(mix.mix) == {"ja", "en", "code"}
    assert StageStats.parse(STATS["tokenizer"]).sample.by_source["ja"].documents == 69
    tok = StageStats.parse(STATS["tokenize"])
    assert tok.dtype == "uint16" and tok.sources["ja"].planned_share == 0.5


def test_plan_roundtrip_keeps_the_text(tmp_path):
    MixPlan.parse(PLAN).write(tmp_path)
    assert (tmp_path / "plan.json").read_text(encoding="utf-8") == as_written(PLAN)
    plan = MixPlan.read(tmp_path)
    assert plan.ratios == {"ja": 0.5, "en": 0.4, "code": 0.1}
    assert plan.sources["ja"].inputs[0].label == "auto:clean"
    assert plan.counted_with.method == "estimate" and plan.counted_with.path is None


def test_plan_keeps_int_and_float(tmp_path):
    """20000.0 stays 20000.0 and 4 stays 4: a float field would print 4.0."""
    d = copy.deepcopy(PLAN)
    d["sources"]["ja"]["epochs"] = 4
    d["sources"]["ja"]["target_tokens"] = 20000.0
    MixPlan.parse(d).write(tmp_path)
    text = (tmp_path / "plan.json").read_text(encoding="utf-8")
    assert text == as_written(d)
    assert '"epochs": 4,' in text and '"target_tokens": 20000.0,' in text


def test_manifest_roundtrip_keeps_the_text(tmp_path):
    TokenManifest.parse(MANIFEST).write(tmp_path)
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == as_written(MANIFEST)
    m = TokenManifest.read(tmp_path)
    assert m.tokenizer.vocab_size == 2000 and m.shards[0].path == "code/train_00000"
    assert m.balance.plan is not None and m.sources["code"].train_tokens == 1085


def test_manifest_of_a_condition_folder(tmp_path):
    """The experiment runner's token folders add `condition` (with a `from` key)."""
    d = {k: v for k, v in MANIFEST.items() if k not in ("sources", "balance")}
    d["condition"] = {"name": "ja_only", "train_languages": ["ja"], "from": "/runs/x/tokenize"}
    TokenManifest.parse(d).write(tmp_path)
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == as_written(d)
    assert TokenManifest.read(tmp_path).condition.from_ == "/runs/x/tokenize"


def test_metrics_rows_roundtrip(tmp_path):
    log = MetricsLog(tmp_path)
    for row in METRICS_ROWS:
        log.append(row)
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps(r, ensure_ascii=False) for r in METRICS_ROWS]
    rows = log.read()
    assert [r.step for r in rows] == [0, 59]
    assert rows[0].val_losses() == {}
    assert set(rows[1].val_losses()) == {"code", "en", "ja"}
    assert rows[1].value("val_ppl/ja") == METRICS_ROWS[1]["val_ppl/ja"]
    assert log.last().step == 59


def test_metrics_nan_is_null_and_a_cut_line_is_skipped(tmp_path):
    log = MetricsLog(tmp_path)
    log.append({**METRICS_ROWS[0], "loss": math.nan, "grad_norm": math.inf})
    assert json.loads(log.path.read_text())["loss"] is None
    with open(log.path, "a") as f:
        f.write('{"step": 1, "tok')  # killed mid-write
    assert [r.step for r in log.read()] == [0]


def test_metrics_truncate_on_resume(tmp_path):
    log = MetricsLog(tmp_path)
    for s in range(5):
        log.append({**METRICS_ROWS[0], "step": s})
    log.truncate(3)
    assert [r.step for r in log.read()] == [0, 1, 2]
    log.truncate(0)
    assert not log.path.exists() and log.read() == []


# --------------------------------------------------------------------------- contract violations


@pytest.mark.parametrize(
    "stage,path,new",
    [
        ("clean", "documents_out", "docs_out"),
        ("langid", "score_histogram.bins", "edges"),
        ("dedup", "dedup.cluster_sizes", "cluster_histogram"),
        ("mix", "mix.ja.expected_share", "share"),
        ("tokenize", "sources.ja.train_tokens", "tokens"),
    ],
)
def test_renamed_stats_field_fails_loudly(tmp_path, stage, path, new):
    (tmp_path / "stats.json").write_text(as_written(renamed(STATS[stage], path, new)))
    with pytest.raises(SchemaError) as e:
        StageStats.read(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "stats.json") in msg and "StageStats" in msg
    assert new in msg  # the new name is undeclared
    if path.rsplit(".", 1)[-1] != "cluster_sizes":  # an optional field: only the new name is named
        assert f"missing field '{path}'" in msg


def test_renamed_plan_field_fails_loudly(tmp_path):
    (tmp_path / "plan.json").write_text(as_written(renamed(PLAN, "ratios", "target_ratio")))
    with pytest.raises(SchemaError, match=r"missing field 'ratios'.*undeclared field 'target_ratio'"):
        MixPlan.read(tmp_path)


def test_renamed_manifest_field_fails_loudly(tmp_path):
    (tmp_path / "manifest.json").write_text(as_written(renamed(MANIFEST, "shards.0.tokens", "n_tokens")))
    with pytest.raises(SchemaError, match=r"manifest.json: .*missing field 'shards.0.tokens'"):
        TokenManifest.read(tmp_path)


def test_missing_manifest_is_file_not_found_and_bad_json_a_schema_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        TokenManifest.read(tmp_path)
    assert TokenManifest.read(tmp_path, missing_ok=True) is None
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        TokenManifest.read(tmp_path)


def test_renamed_metrics_field_fails_loudly(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(renamed(METRICS_ROWS[0], "tokens", "n_tokens")) + "\n")
    with pytest.raises(SchemaError, match=r"metrics.jsonl:1: .*MetricsRow.*missing field 'tokens'"):
        MetricsLog(tmp_path).read()


def test_metrics_allow_only_validation_extras(tmp_path):
    assert MetricsRow.model_validate({**METRICS_ROWS[0], "val_loss/fr": 3.0, "val_ppl/fr": 20.0})
    with pytest.raises(SchemaError, match="undeclared field 'throughput'"):
        MetricsLog(tmp_path).append({**METRICS_ROWS[0], "throughput": 1.0})
    with pytest.raises(SchemaError, match="val_loss/ja"):
        MetricsLog(tmp_path).append({**METRICS_ROWS[0], "val_loss/ja": "low"})


def test_a_writer_cannot_write_an_undeclared_field(tmp_path):
    with pytest.raises(SchemaError, match="undeclared field 'tokens_per_doc'"):
        StageStats.parse({**STATS["clean"], "tokens_per_doc": 3}, tmp_path / "stats.json")


# --------------------------------------------------------------------------- one writer, one reader

ARTIFACT_NAMES = ("stats.json", "plan.json", "manifest.json", "metrics.jsonl")
FILE_IO = re.compile(r"read_text|write_text|json\.loads?\(|json\.dumps?\(|write_json_atomic|open\(")


def test_only_the_schemas_open_the_artifacts():
    """A line that names an artifact file never reads or writes it: that goes through
    shikomi.core.schemas."""
    offenders = []
    for py in sorted((ROOT / "shikomi").rglob("*.py")):
        if py.name == "schemas.py" and py.parent.name == "core":
            continue
        for i, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            if any(f'"{n}"' in line for n in ARTIFACT_NAMES) and FILE_IO.search(line):
                offenders.append(f"{py.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
