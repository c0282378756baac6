"""`shikomi inspect`, `find` and `batch` on a synthetic run folder (unit tests) and
on a run built from real Japanese, English and code text (real-data suite)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers.run_folder import SENTINEL, make_run

from shikomi.cli import main as cli


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    return make_run(tmp_path_factory.mktemp("inspect"))


def call(capsys, *argv) -> tuple[int, str, str]:
    rc = cli([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- inspect


def test_reason_shows_only_that_rule(run, capsys):
    clean = run["run"] / "clean"
    rc, out, _ = call(capsys, "inspect", clean, "--reason", "hiragana_ratio", "-n", "50", "--json")
    assert rc == 0
    recs = jsonl(out)
    head, docs = recs[0], recs[1:]
    assert head["matched"] == 5 == run["clean_stats"]["dropped"]["hiragana_ratio"]["documents"]
    assert len(docs) == 5
    assert {d["rule"] for d in docs} == {"hiragana_ratio"}
    assert {d["value"] for d in docs} == {"0.0123"}
    assert {d["status"] for d in docs} == {"rejected"}
    assert sorted(d["id"] for d in docs) == [f"hira-{i}" for i in range(5)]

    rc, out, _ = call(capsys, "inspect", clean / "rejected", "--reason", "too_short", "-n", "3")
    assert rc == 0
    assert "matched 9 of 17 documents" in out
    assert out.count("dropped by too_short = 2") == 3
    assert "hiragana_ratio = " not in out and "ng_words" not in out.split("matched")[1]


def test_unknown_reason_is_one_clear_line(run, capsys):
    rc, out, err = call(capsys, "inspect", run["run"] / "clean", "--reason", "no_such_rule")
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no_such_rule" in err and "hiragana_ratio, ng_words, too_short" in err


def test_stage_folder_counts_kept_and_rejected(run, capsys):
    rc, out, _ = call(capsys, "inspect", run["run"] / "clean", "-n", "0", "--json")
    head = jsonl(out)[0]
    assert rc == 0 and head["kind"] == "stage"
    assert head["by_status"] == {"kept": len(run["kept"]), "rejected": len(run["rejected"])}
    assert head["by_rule"] == {"too_short": 9, "hiragana_ratio": 5, "ng_words": 3}
    assert head["stats"]["documents_out"] == len(run["kept"])


def test_grep_id_source_and_lang(run, capsys):
    mix = run["run"] / "mix"
    rc, out, _ = call(capsys, "inspect", mix, "--grep", "猫が窓辺", "--json")
    docs = jsonl(out)[1:]
    assert rc == 0 and [d["id"] for d in docs] == ["ja-007"]
    assert SENTINEL in docs[0]["text"] or docs[0]["chars"] > 400

    rc, out, _ = call(capsys, "inspect", mix, "--source", "code", "-n", "100", "--json")
    head, docs = jsonl(out)[0], jsonl(out)[1:]
    assert head["matched"] == 6 and {d["metadata"]["source"] for d in docs} == {"code"}

    rc, out, _ = call(capsys, "inspect", mix, "--lang", "ja", "-n", "0", "--json")
    assert jsonl(out)[0]["matched"] == len(run["kept"])

    rc, out, _ = call(capsys, "inspect", mix, "--id", "en-003", "--chars", "0", "--json")
    docs = jsonl(out)[1:]
    want = next(d.text for d in run["mix_docs"] if d.id == "en-003")
    assert [d["text"] for d in docs] == [want]

    rc, _, err = call(capsys, "inspect", mix, "--grep", "(unclosed")
    assert rc == 2 and "not a valid regular expression" in err


def test_sample_is_seeded(run, capsys):
    mix = run["run"] / "mix"
    ids = []
    for seed in (1, 1, 2):
        _, out, _ = call(capsys, "inspect", mix, "-n", "5", "--seed", seed, "--json")
        ids.append([d["id"] for d in jsonl(out)[1:]])
    assert ids[0] == ids[1] and len(ids[0]) == 5
    assert ids[0] != ids[2]


def test_token_folder_decodes_mix_text(run, capsys):
    tok = run["run"] / "tokenize"
    mix_text = {d.id: d.text for d in run["mix_docs"]}
    rc, out, _ = call(capsys, "inspect", tok, "-n", "100", "--chars", "0", "--json")
    head, docs = jsonl(out)[0], jsonl(out)[1:]
    assert rc == 0 and head["kind"] == "tokens" and head["documents"] == len(mix_text)
    assert len(docs) == len(mix_text)
    for d in docs:
        assert d["text"] == mix_text[d["id"]], d["id"]
        assert d["tokens"] >= 2

    rc, out, _ = call(capsys, "inspect", tok, "--id", "ja-007", "--chars", "0")
    assert rc == 0 and "ja/train_00000" in out and SENTINEL in out

    rc, out, _ = call(capsys, "inspect", tok, "--source", "code", "-n", "0", "--json")
    assert jsonl(out)[0]["matched"] == 6
    rc, _, err = call(capsys, "inspect", tok, "--reason", "too_short")
    assert rc == 2 and "token folder" in err


def test_run_folder_overview(run, capsys):
    rc, out, _ = call(capsys, "inspect", run["run"])
    assert rc == 0 and "run folder" in out
    for stage in ("extract", "langid", "dedup", "clean", "mix", "tokenize", "train"):
        assert f"\n  {stage} " in out
    rc, _, err = call(capsys, "inspect", run["run"], "--reason", "too_short")
    assert rc == 2 and "filters apply to a stage folder" in err


def test_bad_paths_fail_with_one_line(run, tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    cases = [
        ("inspect", tmp_path / "missing"),
        ("inspect", junk),
        ("inspect", junk / "notes.txt"),
        ("report", junk),
        ("report", tmp_path / "missing"),
        ("find", "text", junk),
        ("batch", "0", junk),
        ("find", "text", run["run"] / "clean"),
    ]
    for case in cases:
        rc, out, err = call(capsys, *case)
        assert rc == 2, case
        assert err.startswith("shikomi: error: ") and err.count("\n") == 1, (case, err)
        assert "Traceback" not in err


def test_pipe_to_head_is_quiet(run):
    import subprocess
    import sys

    cmd = f"{sys.executable} -m shikomi.cli inspect {run['run'] / 'mix'} -n 40 --chars 0 | head -n 2"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr
    assert len(res.stdout.splitlines()) == 2


# --------------------------------------------------------------------------- find and batch


def brute_force_steps(token_dir: Path, run_dir: Path) -> dict:
    """(shard, sequence) -> {step: {samples}} from step_documents over every trained step."""
    from shikomi.config import load_config
    from shikomi.train.data import step_documents

    cfg = load_config(run_dir / "train" / "config.yaml")
    out: dict = {}
    for s in range(cfg.train.max_steps):
        for d in step_documents(token_dir, cfg.train, s):
            out.setdefault((d["shard"], d["sequence"]), {}).setdefault(s, set()).add(d["sample"])
    return out


def test_step_index_matches_step_documents(run):
    from shikomi.config import load_config
    from shikomi.tools.find import StepIndex

    tok = run["run"] / "tokenize"
    cfg = load_config(run["run"] / "train" / "config.yaml")
    brute = brute_force_steps(tok, run["run"])
    idx = StepIndex(tok, cfg.train, cfg.train.max_steps)
    assert len(brute) == sum(s["documents"] for s in run["manifest"]["shards"] if s["split"] == "train")
    for (shard, seq), steps in brute.items():
        got = {e["step"]: set(e["samples"]) for e in idx.steps_of(shard, seq)}
        assert got == steps, (shard, seq)


def test_find_sentence_then_batch(run, capsys):
    rc, out, _ = call(capsys, "find", SENTINEL[:14], run["run"], "--json")
    head, hits = jsonl(out)[0], jsonl(out)[1:]
    assert rc == 0 and head["exact"] == 1 and head["steps_searched"] == 20
    hit = hits[0]
    assert (hit["id"], hit["shard"], hit["sequence"], hit["source"]) == ("ja-007", "ja/train_00000", 5, "ja")
    brute = brute_force_steps(run["run"] / "tokenize", run["run"])
    assert {e["step"]: set(e["samples"]) for e in hit["steps"]} == brute[("ja/train_00000", 5)]
    assert hit["text_steps"], "the sentence is short enough to sit inside one window"
    step = hit["text_steps"][0]["step"]
    sample = hit["text_steps"][0]["samples"][0]

    rc, out, _ = call(capsys, "batch", step, run["run"], "--json")
    head, docs = jsonl(out)[0], jsonl(out)[1:]
    assert rc == 0 and head["step"] == step
    mine = [d for d in docs if d["id"] == "ja-007" and d["sample"] == sample]
    assert mine and any(SENTINEL[:14] in d["text"] for d in mine)

    rc, out, _ = call(capsys, "find", SENTINEL[:14], run["run"])
    assert rc == 0 and "ja-007" in out and f"text in steps:     {step} (sample" in out
    rc, out, _ = call(capsys, "batch", step, run["run"])
    assert rc == 0 and "ja-007" in out and f"step {step}:" in out


def test_find_val_document_and_not_found(run, capsys):
    val = next(s for s in run["manifest"]["shards"] if s["split"] == "val" and s["source"] == "en")
    ids = (run["run"] / "tokenize" / val["ids_path"]).read_text().split()
    text = next(d.text for d in run["mix_docs"] if d.id == json.loads(ids[0]))
    rc, out, _ = call(capsys, "find", text[:30], run["run"])
    assert rc == 0 and "validation shard, never trained on" in out
    rc, out, _ = call(capsys, "find", "この文は存在しない", run["run"])
    assert rc == 1 and "not found" in out


def test_find_ngram_similar(run, capsys, tmp_path):
    edited = SENTINEL.replace("静かに", "ぐっすり")
    rc, out, _ = call(capsys, "find", edited, run["run"], "--json")
    assert rc == 1
    conf = tmp_path / "find.yaml"
    conf.write_text("report:\n  find:\n    ngram_n: 3\n    ngram_min_similarity: 0.5\n")
    rc, out, _ = call(capsys, "find", edited, run["run"], "--ngram", "--json", "--config", conf)
    hits = jsonl(out)[1:]
    assert rc == 0 and hits[0]["match"] == "ngram" and hits[0]["id"] == "ja-007"
    assert 0.5 <= hits[0]["similarity"] < 1


def test_batch_is_deterministic_and_checks_step(run, capsys):
    _, a, _ = call(capsys, "batch", "7", run["run"], "--json")
    _, b, _ = call(capsys, "batch", "7", run["run"], "--json")
    assert a == b
    docs = jsonl(a)[1:]
    from shikomi.config import load_config

    tc = load_config(run["run"] / "train" / "config.yaml").train
    assert sum(d["tokens"] for d in docs) == tc.global_batch_size * (tc.seq_len + 1)
    rc, _, err = call(capsys, "batch", "-3", run["run"])
    assert rc == 2 and "step must be 0 or more" in err


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory) -> dict:
    ja = [
        json.loads(line)["text"]
        for line in (shared_data / "ja" / "jawiki_annotated_corpus_leads.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()[:300]
    ]
    en = [
        json.loads(line)["text"]
        for line in (shared_data / "en" / "us_inaugural_addresses_1789-2021.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()[:20]
    ]
    with gzip.open(shared_data / "code" / "python3.11.7_stdlib_toplevel.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(line)["text"][:6000] for _, line in zip(range(15), f)]
    train = {"seq_len": 64, "global_batch_size": 16, "micro_batch_size": 4, "max_steps": 30, "seed": 11}
    info = make_run(tmp_path_factory.mktemp("inspect_real"), seed=3, ja=ja, en=en, code=code, train=train)
    info["ja_texts"] = ja
    return info


@pytest.mark.realdata
def test_real_token_folder_decodes_to_mix_text(real_run, capsys):
    mix_text = {d.id: d.text for d in real_run["mix_docs"]}
    rc, out, _ = call(capsys, "inspect", real_run["run"] / "tokenize", "-n", "1000", "--chars", "0", "--json")
    docs = jsonl(out)[1:]
    assert rc == 0 and len(docs) == len(mix_text)
    assert all(d["text"] == mix_text[d["id"]] for d in docs)
    sources = {d["source"] for d in docs}
    assert sources == {"ja", "en", "code"}


@pytest.mark.realdata
def test_real_find_wikipedia_sentence(real_run, capsys):
    """A sentence from a real Wikipedia lead is found in the right shard, document
    and steps, and `batch` lists the document at that step."""
    from shikomi.tools.inspect import TokenFolder

    tf = TokenFolder(real_run["run"] / "tokenize")
    train_ids = {
        tf.doc_id(s, i): (s["path"], i) for s in tf.shards if s["split"] == "train" for i in range(int(s["documents"]))
    }
    # a sentence in the middle of a lead that the 30 steps trained on (brute force over every window)
    brute = brute_force_steps(real_run["run"] / "tokenize", real_run["run"])
    doc = next(
        d for d in real_run["kept"] if d.id in train_ids and d.text.count("。") >= 3 and brute.get(train_ids[d.id])
    )
    sentence = doc.text.split("。")[1] + "。"
    assert len(sentence) >= 8
    rc, out, _ = call(capsys, "find", sentence, real_run["run"], "--json")
    hits = jsonl(out)[1:]
    assert rc == 0
    hit = next(h for h in hits if h["id"] == doc.id)
    assert (hit["shard"], hit["sequence"]) == train_ids[doc.id]
    assert {e["step"]: set(e["samples"]) for e in hit["steps"]} == brute[train_ids[doc.id]]
    step = hit["steps"][0]["step"]
    rc, out, _ = call(capsys, "batch", step, real_run["run"], "--json")
    assert rc == 0 and any(d["id"] == doc.id for d in jsonl(out)[1:])


@pytest.mark.realdata
def test_real_clean_stage_rejected_by_reason(shared_data, tmp_path, capsys):
    """The clean stage on real mC4-ja lines (groups of 3 same-label lines as one
    document): `inspect rejected/ --reason RULE` shows exactly that rule's drops."""
    try:
        import shikomi.filters.stage  # noqa: F401
    except ModuleNotFoundError:
        if __import__("os").environ.get("CI", "").lower() == "true":
            raise
        pytest.skip("the clean stage is not in this checkout")
    rows = [
        json.loads(x)
        for x in (shared_data / "gold" / "quality" / "mc4ja_good_bad.jsonl").read_text("utf-8").splitlines()
    ]
    docs = []
    for label in ("good", "bad"):
        lines = [r["text"] for r in rows if r["label"] == label]
        for i in range(0, len(lines) - 2, 3):
            docs.append(
                {
                    "id": f"mc4-{label}-{i}",
                    "text": "\n".join(lines[i : i + 3]),
                    "metadata": {"source": "mc4ja", "label": label},
                }
            )
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    conf = tmp_path / "c.yaml"
    conf.write_text("executor: {tasks: 1, workers: 1}\nclean: {tasks: 1}\n")
    rc = cli(["clean", "--config", str(conf), "--input", str(src), "--output", str(tmp_path / "run")])
    capsys.readouterr()
    assert rc == 0
    stats = json.loads((tmp_path / "run" / "clean" / "stats.json").read_text())
    assert stats["dropped"], "real mC4 spam and debris is dropped by some rule"
    for rule, d in stats["dropped"].items():
        rc, out, _ = call(
            capsys, "inspect", tmp_path / "run" / "clean" / "rejected", "--reason", rule, "-n", "1000", "--json"
        )
        head, got = jsonl(out)[0], jsonl(out)[1:]
        assert rc == 0 and head["matched"] == d["documents"] == len(got), rule
        assert {g["rule"] for g in got} == {rule}
        assert all(g["metadata"]["label"] in ("good", "bad") and g["text"] for g in got)
    # the kept and dropped documents add up to the input
    rc, out, _ = call(capsys, "inspect", tmp_path / "run" / "clean", "-n", "0", "--json")
    head = jsonl(out)[0]
    assert head["by_status"].get("kept", 0) + head["by_status"].get("rejected", 0) == len(docs)


def test_step_index_with_sequence_length_warmup(run):
    """Steps of every document stay exact when the sequence length warms up and
    the run goes past one epoch."""
    from shikomi.config import load_config
    from shikomi.tools.find import StepIndex
    from shikomi.train.data import step_documents

    tok = run["run"] / "tokenize"
    tc = load_config(
        None,
        {
            "train": {
                "seq_len": 24,
                "global_batch_size": 6,
                "max_steps": 40,
                "seed": 5,
                "seq_warmup_steps": 10,
                "seq_warmup_start": 8,
            }
        },
    ).train
    brute: dict = {}
    for s in range(tc.max_steps):
        for d in step_documents(tok, tc, s):
            brute.setdefault((d["shard"], d["sequence"]), {}).setdefault(s, set()).add(d["sample"])
    assert max(d["epoch"] for d in step_documents(tok, tc, tc.max_steps - 1)) >= 1
    idx = StepIndex(tok, tc, tc.max_steps)
    for (shard, seq), steps in brute.items():
        assert {e["step"]: set(e["samples"]) for e in idx.steps_of(shard, seq)} == steps, (shard, seq)
