"""Benchmark decontamination: JSQuAD paragraphs and JSTS sentences as benchmarks,
a corpus of Wikipedia leads with some of their items planted (verbatim and with
characters edited), and the clean stage dropping or cutting them."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shikomi.config.clean import DecontaminateConfig
from shikomi.filters.decontam import Decontaminate, NgramIndex

KANA = "あいうえおかきくけこさしすせそたちつてと"


def _benchmarks(shared_data, **kw):
    return DecontaminateConfig(
        benchmarks=[
            {"name": "jsquad", "path": str(shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl")},
            {
                "name": "jsts",
                "path": str(shared_data / "gold/similarity/jglue_jsts_valid-v1.3.json"),
                "fields": ["sentence1", "sentence2"],
                "id_field": "sentence_pair_id",
                "char_ngram": 13,
            },
        ],
        **kw,
    )


def _lines(path):
    return [json.loads(x) for x in path.open(encoding="utf-8")]


def _edit(rng, text, k):
    t = list(text)
    for _ in range(k):
        t[rng.randrange(len(t))] = rng.choice(KANA)
    return "".join(t)


@pytest.mark.realdata
def test_planted_items_dropped_unrelated_wikipedia_kept(shared_data):
    jsq = _lines(shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl")
    jsts = _lines(shared_data / "gold/similarity/jglue_jsts_valid-v1.3.json")
    leads = [d["text"] for d in _lines(shared_data / "ja/jawiki_annotated_corpus_leads.jsonl")]
    rng = random.Random(0)
    hosts, unrelated = leads[:800], leads[800:]
    planted = []
    for i, p in enumerate(rng.sample(range(len(jsq)), 400)):
        t = jsq[p]["text"] if i % 2 == 0 else _edit(rng, jsq[p]["text"], 3)
        planted.append(("jsquad", p, hosts[i] + "\n" + t if i % 3 else t))
    for i, s in enumerate(rng.sample(range(len(jsts)), 400)):
        planted.append(("jsts", s, hosts[400 + i] + "\n" + jsts[s]["sentence1"] + "\n"))
    step = Decontaminate(_benchmarks(shared_data))
    step._index = NgramIndex.build(step.cfg)
    hit = {"jsquad": 0, "jsts": 0}
    for bench, _, text in planted:
        reason, _ = step.apply_text(text)
        hit[bench] += reason is not None and reason.startswith("decontaminate/")
    false = [r for t in unrelated for r, _ in [step.apply_text(t)] if r]
    print(f"\nplanted dropped: {hit} of 400 each; unrelated leads dropped: {len(false)} of {len(unrelated)} {false}")
    assert hit["jsquad"] / 400 >= 0.99 and hit["jsts"] / 400 >= 0.99
    assert len(false) / len(unrelated) <= 0.001
    # the matched item is named: JSTS by its sentence_pair_id, JSQuAD by its row
    reason, _ = step.apply_text(leads[0] + "\n" + jsts[5]["sentence2"])
    assert reason == f"decontaminate/jsts:{jsts[5]['sentence_pair_id']}"
    reason, _ = step.apply_text(jsq[7]["text"])
    assert reason == "decontaminate/jsquad:7"


@pytest.mark.realdata
def test_cut_removes_only_the_overlap(shared_data):
    jsq = _lines(shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl")
    lead = _lines(shared_data / "ja/jawiki_annotated_corpus_leads.jsonl")[900]["text"]
    step = Decontaminate(_benchmarks(shared_data, action="cut"))
    reason, out = step.apply_text(lead + "\n" + jsq[3]["text"] + "\n" + lead)
    assert reason is None
    assert jsq[3]["text"][5:-5] not in out and out.count(lead) == 2
    reason, out = step.apply_text(jsq[3]["text"])
    assert reason == "decontaminate/jsquad:3"  # nothing left: dropped


def test_english_word_ngrams_and_file_formats(tmp_path):
    q = "The quick brown fox jumps over the lazy dog while the farmer watches from the old barn door."
    pq.write_table(pa.table({"qid": ["q1", "q2"], "question": [q, "Too short to index."]}), tmp_path / "b.parquet")
    (tmp_path / "b.csv").write_text('id,prompt\nc1,"' + q.upper() + '"\n', encoding="utf-8")
    cfg = DecontaminateConfig(
        benchmarks=[
            {"name": "pq", "path": str(tmp_path / "b.parquet"), "fields": ["question"], "id_field": "qid"},
            {"name": "csv", "path": str(tmp_path / "b.csv"), "fields": ["prompt"], "id_field": "id"},
        ]
    )
    step = Decontaminate(cfg, cache_dir=str(tmp_path / "cache"))
    assert step.index.info["too_short"] == {"pq": 1, "csv": 0}
    doc = "Intro. " + q.replace(",", "").replace("fox", "Fox") + " Outro."
    assert step.apply_text(doc)[0] == "decontaminate/pq:q1"
    assert step.apply_text("The quick brown fox jumps over the lazy cat.")[0] is None
    assert list((tmp_path / "cache").glob("index-*.npz"))  # built once, reused
    again = Decontaminate(cfg, cache_dir=str(tmp_path / "cache"))
    assert again.index.info == step.index.info


def test_stage_drops_counts_per_benchmark_and_bad_config_is_one_line(tmp_path, root):
    para = "梅雨は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての沿海部にみられる気象現象である。"
    other = "図書館で本を借りて、週末は公園のベンチでゆっくり読むのが私の楽しみです。天気が良い日は特に気持ちがいい。"
    (tmp_path / "bench.jsonl").write_text(json.dumps({"id": "b7", "context": para}, ensure_ascii=False) + "\n")
    with (tmp_path / "in.jsonl").open("w", encoding="utf-8") as f:
        for i in range(6):
            text = (other + para) if i % 2 else (other * 2 + "電話(03)1234-5678")
            f.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    (tmp_path / "p.yaml").write_text("name: small\nrules:\n  - normalize\n  - pii_phone\n", encoding="utf-8")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"clean:\n  profile: {tmp_path / 'p.yaml'}\n  decontaminate:\n    benchmarks:\n"
        f"      - {{name: mybench, path: {tmp_path / 'bench.jsonl'}, fields: [context], id_field: id}}\n",
        encoding="utf-8",
    )
    run = [sys.executable, "-m", "shikomi.cli", "clean", "--config", str(cfg), "--input", str(tmp_path / "in.jsonl")]
    r = subprocess.run([*run, "--output", str(tmp_path / "out")], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    stats = json.loads((tmp_path / "out/clean/stats.json").read_text())
    assert stats["dropped"]["decontaminate/mybench"]["documents"] == 3
    rej = pq.read_table(tmp_path / "out/clean/rejected").to_pylist()
    assert {d["metadata"]["reject_reason"] for d in rej if d["id"] in ("d1", "d3", "d5")} == {
        "decontaminate/mybench:b7"
    }
    assert {
        d["id"]: d["text"].endswith("電話[PHONE]") for d in pq.read_table(tmp_path / "out/clean/data").to_pylist()
    } == {
        "d0": True,
        "d2": True,
        "d4": True,
    }
    shown = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", "inspect", str(tmp_path / "out/clean"), "-n", "0"],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(r"decontaminate/mybench +3 docs", shown) and re.search(r"pii_phone +3 masked in 3 docs", shown)
    cfg.write_text(cfg.read_text().replace("fields: [context]", "fields: [question]"), encoding="utf-8")
    r = subprocess.run([*run, "--output", str(tmp_path / "out2")], cwd=root, capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "no field(s) ['question']" in r.stderr + r.stdout
