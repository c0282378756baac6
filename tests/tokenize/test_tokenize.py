"""train-tokenizer and tokenize: the chain mix -> train-tokenizer -> tokenize on real
text in the SlimPajama / Gutenberg / starcoderdata layouts, read back with a Megatron
reader written here from the format spec (not shikomi.core.shards)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shikomi.config import load_config
from shikomi.errors import UserError
from shikomi.executor.run import run_stage
from shikomi.tokenize.spm import split_long, training_lines
from shikomi.tokenize.stage import closest_fit, first_fit, size_sources

ROOT = Path(__file__).resolve().parents[2]
CODE_IN_MIX = 120  # standard-library modules in the mix; the rest are held out


# --------------------------------------------------------------------------- an independent reader


MEGATRON_DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}


def read_megatron(prefix: Path) -> list[np.ndarray]:
    """Sequences of a Megatron indexed dataset (MMIDIDX v1), from the spec."""
    idx = Path(str(prefix) + ".idx").read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    (version,) = struct.unpack("<Q", idx[9:17])
    assert version == 1
    dtype = np.dtype(MEGATRON_DTYPES[idx[17]])
    n_seq, n_doc = struct.unpack("<QQ", idx[18:34])
    pos = 34
    sizes = np.frombuffer(idx[pos : pos + 4 * n_seq], dtype="<i4")
    pos += 4 * n_seq
    pointers = np.frombuffer(idx[pos : pos + 8 * n_seq], dtype="<i8")
    pos += 8 * n_seq
    doc_idx = np.frombuffer(idx[pos : pos + 8 * n_doc], dtype="<i8")
    pos += 8 * n_doc
    assert pos == len(idx)
    assert n_doc == n_seq + 1 and list(doc_idx) == list(range(n_seq + 1))  # one document per sequence
    data = Path(str(prefix) + ".bin").read_bytes()
    assert sum(int(s) for s in sizes) * dtype.itemsize == len(data)
    out = []
    for size, ptr in zip(sizes, pointers):
        out.append(np.frombuffer(data, dtype=dtype, count=int(size), offset=int(ptr)))
    return out


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- units


def test_split_long_respects_bytes_and_keeps_text():
    line = "これは長い文です。" * 400 + "x" * 5000
    parts = split_long(line, 1000)
    assert "".join(parts) == line
    assert all(len(p.encode()) <= 1000 for p in parts)
    assert parts[0].endswith("。")  # split after a sentence end when there is one
    lines, n_split = training_lines("短い行\n\n  \n" + line, 1000)
    assert lines[0] == "短い行" and n_split == 1
    assert "".join(lines[1:]) == line


def test_first_fit_and_size_sources():
    lengths = np.array([50, 30, 20, 10, 5, 5])
    keep = first_fit(lengths, 64)
    # the prefix under the target (50), then later documents that still fit (10)
    assert keep.tolist() == [True, False, False, True, False, False]
    # closest: a swap (10 out, 20 in) lands on 70 exactly
    assert int(lengths[closest_fit(lengths, 70)].sum()) == 70
    rng = np.random.default_rng(0)
    train = {"ja": rng.integers(10, 200, 3000), "en": rng.integers(100, 2000, 800), "code": rng.integers(1000, 9000, 5)}
    reserve = {"ja": np.zeros(0, np.int64), "en": rng.integers(100, 2000, 100), "code": rng.integers(1000, 9000, 3)}
    sz = size_sources(train, reserve, {"ja": 5, "en": 4, "code": 1}, "ja", 0.002)
    # the anchor keeps every document; en is trimmed, code uses its reserve, then repeats
    assert sz["ja"]["keep"] is None and sz["ja"]["anchor"]
    assert sz["en"]["keep"] is not None and not sz["en"]["reserve"].any()
    assert sz["code"]["reserve"].all() and sz["code"]["passes"] >= 1
    got = {"ja": int(train["ja"].sum()), "en": int(train["en"][sz["en"]["keep"]].sum())}
    pool = np.concatenate([train["code"], reserve["code"]])
    got["code"] = int(pool.sum()) * (1 + sz["code"]["passes"]) + int(pool[sz["code"]["prefix"]].sum())
    total = sum(got.values())
    for s, r in {"ja": 0.5, "en": 0.4, "code": 0.1}.items():
        assert abs(got[s] / total - r) <= 0.005, s
    # without a plan (no ratios) nothing is sized
    assert all(z["keep"] is None and z["passes"] == 0 for z in size_sources(train, reserve, {}, None, 0.002).values())


# --------------------------------------------------------------------------- the chain on real text


def _cfg(run_dir: Path, root: Path, tasks: int = 2, **over) -> object:
    from helpers.mix_inputs import mix_sources

    d = {
        "run_dir": str(run_dir),
        "seed": 7,
        "executor": {"tasks": tasks, "workers": 2},
        "mix": {"sources": mix_sources(root), "total_tokens": 700_000},
        # the test sample supports a small vocabulary only
        "tokenizer": {
            "vocab_size": 2000,
            "character_coverage": 0.995,
            "num_threads": 2,
            "max_sentence_length": 1024,
            "sample_mb": 1.0,
        },
        "tokenize": {"shard_tokens": 60_000, "val_min_docs": 5, "tasks": tasks},
    }
    for k, v in over.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(None, d)


def _run_chain(cfg, stages=("mix", "train-tokenizer", "tokenize")) -> dict:
    from shikomi.pipeline.chain import build_stage

    return {name: run_stage(build_stage(name, cfg), cfg) for name in stages}


@pytest.fixture(scope="module")
def chain(shared_data, tmp_path_factory):
    from helpers.mix_inputs import write_clean_stage, write_gutenberg, write_slimpajama, write_starcoder

    root = tmp_path_factory.mktemp("chain")
    run = root / "run"
    write_clean_stage(shared_data, run)
    write_slimpajama(shared_data, root / "slimpajama")
    write_gutenberg(shared_data, root / "gutenberg")
    write_starcoder(shared_data, root / "starcoder", limit=CODE_IN_MIX)
    cfg = _cfg(run, root)
    stats = _run_chain(cfg)
    return {"root": root, "run": run, "cfg": cfg, "stats": stats}


def _mix_docs(run: Path) -> list[dict]:
    rows = []
    for f in sorted((run / "mix" / "data").rglob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "text", "metadata"]).to_pylist()
    return rows


@pytest.mark.realdata
def test_realised_ratio_matches_plan(chain):
    run = chain["run"]
    plan = json.loads((run / "mix" / "plan.json").read_text())
    man = json.loads((run / "tokenize" / "manifest.json").read_text())
    # uneven sources: ja must be repeated, en and code downsampled
    assert plan["sources"]["ja"]["epochs"] > 1
    assert plan["sources"]["en"]["epochs"] < 1 and plan["sources"]["code"]["epochs"] < 1
    train = Counter()
    for s in man["shards"]:
        if s["split"] == "train":
            train[s["source"]] += s["tokens"]
    total = sum(train.values())
    print(
        "\nrealised shares:",
        {g: round(t / total, 5) for g, t in train.items()},
        "planned:",
        plan["ratios"],
        "trimmed:",
        {g: s["trimmed_tokens"] for g, s in man["sources"].items()},
    )
    for g, r in plan["ratios"].items():
        assert abs(train[g] / total - r) <= 0.005, g  # within half a point, by real tokens
        assert man["sources"][g]["realised_share"] == pytest.approx(train[g] / total, abs=1e-6)
    # no Japanese token is dropped to fix the ratio: ja is the anchor, and every planned copy is trained on
    assert plan["anchor"] == "ja" and man["sources"]["ja"]["anchor"]
    assert man["sources"]["ja"]["trimmed_tokens"] == 0
    # validation takes at most its configured fraction of each source's tokens
    for g, s in man["sources"].items():
        assert s["val_tokens"] <= 0.1 * s["available_tokens"], g


def _train_shares(run: Path) -> tuple[dict, dict, dict]:
    man = json.loads((run / "tokenize" / "manifest.json").read_text())
    train = Counter()
    for sh in man["shards"]:
        if sh["split"] == "train":
            train[sh["source"]] += sh["tokens"]
    total = sum(train.values())
    return {g: t / total for g, t in train.items()}, man, json.loads((run / "mix" / "plan.json").read_text())


def _rerun_mix_and_tokenize(chain, run: Path, capsys, **over) -> str:
    """mix and tokenize again in `run`, with the chain's clean input and tokenizer (so
    the mix counts with the real tokenizer); returns what they printed."""
    from shikomi.core.stats import print_summary
    from shikomi.pipeline.chain import build_stage

    for d in ("clean", "tokenizer"):
        if not (run / d).exists():
            shutil.copytree(chain["run"] / d, run / d)
    cfg = _cfg(run, chain["root"], **over)
    capsys.readouterr()
    for name in ("mix", "tokenize"):
        print_summary(run_stage(build_stage(name, cfg), cfg), run / name)
    return capsys.readouterr().out


@pytest.mark.realdata
def test_total_tokens_above_the_data_repeats_the_abundant_sources(chain, tmp_path, capsys):
    run = tmp_path / "run"
    out = _rerun_mix_and_tokenize(chain, run, capsys, mix={"total_tokens": 6_000_000})
    shares, man, plan = _train_shares(run)
    print(out)
    print("realised shares:", {g: round(v, 5) for g, v in shares.items()})
    assert plan["counted_with"]["method"] == "tokenizer"  # exact counts: plan.json shares are real token shares
    for g in ("ja", "en"):
        assert plan["sources"][g]["epochs"] > 1  # the anchor and the abundant English repeated
        assert plan["sources"][g]["repeat_tokens"] > 0 and man["sources"][g]["repeat_tokens"] > 0
    assert plan["sources"]["code"]["epochs"] < 1  # 120 modules are still more than 10% of the total
    for g, r in plan["ratios"].items():
        assert abs(shares[g] - r) <= 0.005, g
    assert man["sources"]["ja"]["trimmed_tokens"] == 0
    # the console says it: the repeat, the warning above max_epochs, the per-source table
    assert "is more than the data gives once" in out and "ja repeated" in out and "en repeated" in out
    assert "warning: mix source 'ja' is repeated" in out and "(> 4 epochs" in out
    assert "(anchor)" in out and "train tokens" in out


@pytest.mark.realdata
def test_rehydration_keeps_the_shares_and_reports_repeat_tokens(chain, shared_data, tmp_path, capsys):
    from helpers.mix_inputs import write_clean_stage

    run = tmp_path / "run"
    write_clean_stage(shared_data, run, cluster_sizes=True)
    out = _rerun_mix_and_tokenize(chain, run, capsys, mix={"total_tokens": None, "rehydration": {"enabled": True}})
    shares, man, plan = _train_shares(run)
    print(out)
    print("realised shares:", {g: round(v, 5) for g, v in shares.items()})
    ja = plan["sources"]["ja"]
    # 1200-document clusters weigh 1, 150 weigh 8, 30 and 7 weigh 5, 4 weighs 3, 2 and 3 their size
    assert plan["rehydration"]["2"] == "size" and ja["rehydration_tokens"] > 0
    assert ja["repeat_tokens"] == ja["rehydration_tokens"]  # no total: ja is used once, rehydrated
    assert ja["expected_tokens"] == ja["available_tokens"] + ja["rehydration_tokens"]
    assert plan["sources"]["en"]["rehydration_tokens"] == 0  # no cluster sizes there
    copies = Counter(r["id"] for r in _mix_docs(run) if r["metadata"]["source"] == "ja")
    sizes = {r["id"]: r["metadata"]["dup_cluster_size"] for r in _mix_docs(run) if r["metadata"]["source"] == "ja"}
    weight = {1: 1, 2: 2, 3: 3, 4: 3, 7: 5, 30: 5, 150: 8, 1200: 1}
    assert all(copies[d] == weight[n] for d, n in sizes.items())
    for g, r in plan["ratios"].items():
        assert abs(shares[g] - r) <= 0.005, g
    assert man["sources"]["ja"]["trimmed_tokens"] == 0 and man["sources"]["ja"]["repeat_tokens"] > 0
    assert "repeats(rehydration)" in out


@pytest.mark.realdata
def test_shards_round_trip_with_independent_reader(chain):
    import sentencepiece as spm

    run = chain["run"]
    tok_dir = run / "tokenize"
    man = json.loads((tok_dir / "manifest.json").read_text())
    model = run / "tokenizer" / "tokenizer.model"
    assert man["tokenizer"]["sha256"] == sha256(model)
    assert (tok_dir / man["tokenizer"]["path"]).resolve() == model.resolve()
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert man["tokenizer"]["vocab_size"] == sp.get_piece_size() and man["tokenizer"]["eos_id"] == sp.eos_id()
    assert man["dtype"] == "uint16"
    mixed = _mix_docs(run)
    text_of = {(r["metadata"]["source"], r["id"]): r["text"] for r in mixed}
    mixed_count = Counter((r["metadata"]["source"], r["id"]) for r in mixed)

    seen = Counter()
    split_ids: dict[str, set] = {"train": set(), "val": set()}
    splits_per_source = Counter()
    for s in man["shards"]:
        prefix = tok_dir / s["path"]
        assert sha256(Path(str(prefix) + ".bin")) == s["sha256"]
        assert sha256(Path(str(prefix) + ".idx")) == s["idx_sha256"]
        assert s["path"].split("/")[0] == s["source"]
        seqs = read_megatron(prefix)
        ids = [json.loads(line) for line in (tok_dir / s["ids_path"]).read_text().splitlines()]
        assert len(seqs) == len(ids) == s["documents"]
        assert sum(len(x) for x in seqs) == s["tokens"]
        splits_per_source[(s["source"], s["split"])] += 1
        for toks, doc_id in zip(seqs, ids):
            assert int(toks[-1]) == sp.eos_id() and sp.eos_id() not in toks[:-1].tolist()
            assert sp.decode(toks[:-1].tolist()) == text_of[(s["source"], doc_id)]  # exact round trip
            seen[(s["source"], doc_id)] += 1
            split_ids[s["split"]].add((s["source"], doc_id))
    # every source has train and val shards, val documents never appear in train
    for g in ("ja", "en", "code"):
        assert splits_per_source[(g, "train")] >= 1 and splits_per_source[(g, "val")] == 1
    assert not split_ids["train"] & split_ids["val"]
    assert len(man["shards"]) > 6  # shard_tokens splits the bigger sources
    # what is not in the shards is in rejected/ with its reason
    rejected = Counter()
    reasons = Counter()
    for f in (tok_dir / "rejected").glob("*.parquet"):
        for r in pq.read_table(f).to_pylist():
            rejected[(r["metadata"]["source"], r["id"])] += 1
            reasons[r["metadata"]["reject_reason"]] += 1
            assert r["text"] == text_of[(r["metadata"]["source"], r["id"])]
    # every mixed document is in a shard, in rejected/ with its reason, or an unused reserve
    # document (epoch -1, counted in stats.json); sources sized from ja may repeat documents
    reserve = {(r["metadata"]["source"], r["id"]) for r in mixed if r["metadata"]["epoch"] == -1}
    planned = {k for k in mixed_count if k not in reserve}
    assert planned <= set(seen) | set(rejected)
    assert set(mixed_count) == set(seen) | set(rejected) | reserve
    assert set(reasons) <= {"ratio_trim", "val_repeat"}
    assert not [k for k in rejected if k[0] == "ja" and k not in split_ids["val"]]  # ja: val repeats only
    assert reasons["val_repeat"] > 0  # ja is repeated, so held-out ja documents had copies
    stats = json.loads((tok_dir / "stats.json").read_text())
    unused = len(reserve - set(seen))
    assert stats["dropped"].get("reserve_unused", {"documents": 0})["documents"] == unused


@pytest.mark.realdata
def test_tokenizer_drops_no_line_and_reports_chars_per_token(chain, shared_data):
    import sentencepiece as spm
    from helpers.mix_inputs import heldout_texts

    run = chain["run"]
    meta = json.loads((run / "tokenizer" / "tokenizer.json").read_text())
    s = meta["sample"]
    assert s["lines_split"] >= 1  # the long-line document had to be split ...
    assert s["lines_over_max_sentence_length"] == 0
    assert s["sentencepiece_skipped_too_long"] == 0  # ... so SentencePiece skipped nothing
    assert s["lines_used"] == s["lines"]
    assert set(s["by_source"]) == {"ja", "en", "code"}
    assert meta["vocab_size"] == 2000 and (meta["unk_id"], meta["bos_id"], meta["eos_id"], meta["pad_id"]) == (
        0,
        1,
        2,
        3,
    )
    assert meta["settings"]["normalization_rule_name"] == "identity"
    sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer" / "tokenizer.model"))
    held = heldout_texts(shared_data, CODE_IN_MIX)
    cpt = {}
    for g, texts in held.items():
        chars = sum(len(t) for t in texts)
        toks = sum(len(x) for x in sp.encode(texts))
        cpt[g] = chars / toks
        assert all(sp.decode(x) == t for x, t in zip(sp.encode(texts), texts))  # identity: lossless
    print(
        f"\nheld-out characters per token (vocab {meta['vocab_size']}): "
        + ", ".join(f"{g} {v:.2f}" for g, v in cpt.items())
    )
    assert 1.0 < cpt["ja"] < cpt["en"] and cpt["code"] > 1.5  # a 2,000-piece vocabulary: short pieces
    assert sp.encode("2024年", out_type=str)[:4] == ["2", "0", "2", "4"]  # digits split


@pytest.mark.realdata
def test_hf_export_matches_sentencepiece(chain, shared_data):
    import sentencepiece as spm
    from helpers.mix_inputs import heldout_texts
    from transformers import AutoTokenizer

    run = chain["run"]
    hf = AutoTokenizer.from_pretrained(str(run / "tokenizer" / "hf"))
    sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer" / "tokenizer.model"))
    assert hf.eos_token_id == sp.eos_id() and hf.bos_token_id == sp.bos_id() and hf.pad_token_id == sp.pad_id()
    held = heldout_texts(shared_data, CODE_IN_MIX)
    same = Counter()
    for g, texts in held.items():
        for t in texts[:200]:
            ids = hf.encode(t, add_special_tokens=False)
            same[g] += ids == sp.encode(t)
            assert hf.decode(ids) == t
    print("\nHF ids equal to SentencePiece:", {g: f"{same[g]}/{min(200, len(held[g]))}" for g in held})
    assert same["ja"] == min(200, len(held["ja"])) and same["en"] == len(held["en"])
    # code: whitespace runs may segment differently (equal scores), decoding is the same
    assert same["code"] >= 0.5 * len(held["code"])


@pytest.mark.realdata
def test_same_config_and_seed_give_identical_bytes(chain):
    root = chain["root"]
    run2 = root / "run_again"
    shutil.copytree(chain["run"] / "clean", run2 / "clean")
    # another number of tasks: the outputs do not depend on it
    _run_chain(_cfg(run2, root, tasks=1))
    a, b = chain["run"], run2
    assert sha256(a / "tokenizer" / "tokenizer.model") == sha256(b / "tokenizer" / "tokenizer.model")
    assert (a / "mix" / "plan.json").read_text() == (b / "mix" / "plan.json").read_text().replace(str(b), str(a))
    assert (a / "tokenize" / "manifest.json").read_bytes() == (b / "tokenize" / "manifest.json").read_bytes()
    files = sorted(p.relative_to(a / "tokenize") for p in (a / "tokenize").glob("*/*_*.*") if "logs" not in p.parts)
    assert files
    for f in files:
        assert (a / "tokenize" / f).read_bytes() == (b / "tokenize" / f).read_bytes(), f


@pytest.mark.realdata
def test_kill_during_tokenize_then_rerun_is_identical(chain, tmp_path):
    run = tmp_path / "run"
    for d in ("mix", "tokenizer"):
        shutil.copytree(chain["run"] / d, run / d)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        json.dumps(
            {
                "run_dir": str(run),
                "seed": 7,
                "executor": {"tasks": 4, "workers": 1},
                "mix": {"sources": [{"name": "ja"}], "ratios": {"ja": 1}},
                "tokenize": {"shard_tokens": 60_000, "val_min_docs": 5, "tasks": 4},
            }
        )
    )
    cmd = [sys.executable, "-m", "shikomi.cli", "tokenize", "--config", str(cfg_file)]
    p = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = run / "tokenize" / "_parts"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (parts / "00001").exists():
        time.sleep(0.005)
    killed = p.poll() is None
    if killed:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    print(f"\nkilled mid-run: {killed}")
    a, b = chain["run"] / "tokenize", run / "tokenize"
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    man = json.loads((a / "manifest.json").read_text())
    for s in man["shards"]:
        for suf in (".bin", ".idx"):
            assert sha256(b / (s["path"] + suf)) == sha256(a / (s["path"] + suf))
    assert not (b / "_parts").exists()


def test_demo_keeps_every_japanese_token_and_explains_every_dropped_document(tmp_path):
    """The demo up to tokenize: its one large code file must not cost Japanese tokens."""
    stages = "extract,langid,dedup,clean,mix,train-tokenizer,tokenize"
    cmd = [sys.executable, "-m", "shikomi.cli", "run", "--config", "configs/demo.yaml", "-o", str(tmp_path)]
    r = subprocess.run([*cmd, "--stages", stages], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shares, man, plan = _train_shares(tmp_path)
    print("\n" + r.stdout[r.stdout.index("[mix]") :])
    assert plan["anchor"] == "ja" and man["sources"]["ja"]["trimmed_tokens"] == 0
    for g, ratio in plan["ratios"].items():
        assert abs(shares[g] - ratio) <= 0.005, g
        src = man["sources"][g]
        assert src["val_tokens"] <= 0.25 * src["available_tokens"]  # the demo's val_max_fraction
    # every document that does not reach the shards is counted with its reason, on the console too
    stats = json.loads((tmp_path / "tokenize" / "stats.json").read_text())
    assert stats["documents_in"] == stats["documents_out"] + stats["documents_dropped"]
    tok_out = r.stdout[r.stdout.index("[tokenize]") :]
    for reason, d in stats["dropped"].items():
        assert reason in ("val_repeat", "reserve_unused", "ratio_trim")
        assert f"dropped {reason}" in tok_out and f"{d['documents']} docs" in tok_out
    assert "(anchor)" in tok_out and "warning: mix source 'ja' is repeated" in r.stdout


def test_tokenize_without_tokenizer_is_one_line_error(tmp_path):
    (tmp_path / "mix" / "data").mkdir(parents=True)
    cfg = load_config(None, {"run_dir": str(tmp_path)})
    from shikomi.pipeline.chain import build_stage

    with pytest.raises(UserError, match="tokenizer not found"):
        build_stage("tokenize", cfg)
    with pytest.raises(UserError, match="input not found"):
        build_stage("train-tokenizer", load_config(None, {"run_dir": str(tmp_path / "nothing")}))


def test_vocab_too_large_for_the_sample_is_explained(tmp_path):
    import pyarrow as pa

    d = tmp_path / "mix" / "data" / "ja"
    d.mkdir(parents=True)
    rows = [{"id": str(i), "text": f"小さな見本の文 {i}。", "metadata": {"source": "ja"}} for i in range(50)]
    pq.write_table(pa.Table.from_pylist(rows), d / "00_00000.parquet")
    from shikomi.tokenize.train_tokenizer import TrainTokenizer

    cfg = load_config(None, {"run_dir": str(tmp_path), "tokenizer": {"vocab_size": 5000, "num_threads": 1}})
    step = TrainTokenizer(str(tmp_path / "mix"), str(tmp_path / "tokenizer"), cfg.tokenizer.model_dump(), 1)
    with pytest.raises(UserError, match=r"vocab_size=5000 is more than this sample supports \(at most \d+\)"):
        list(step.run(None, 0, 1))


# --------------------------------------------------------------------------- the encode path


def _one_by_one(sp, files: list[Path]) -> dict[str, dict]:
    """What an encode task must write, per source: each document encoded on its own
    (EOS appended), ids `[id, epoch, chars]` written by the standard library. Rows are
    read in the stage's batches of 8,192, so a missing id is `<file>/<row in batch>`."""
    from shikomi.tokenize.stage import READ_DOCS, _safe_source

    out: dict[str, dict] = {}
    for f in files:
        for b in pq.ParquetFile(f).iter_batches(batch_size=READ_DOCS):
            for i, r in enumerate(b.to_pylist()):
                src = _safe_source(r["metadata"]["source"])
                d = out.setdefault(src, {"tokens": [], "ids": []})
                d["tokens"].append(np.asarray(sp.encode(r["text"], add_eos=True), dtype=np.uint16))
                doc_id = r["id"] if r["id"] is not None else f"{f.name}/{i}"
                line = json.dumps(
                    [doc_id, r["metadata"]["epoch"], len(r["text"])], ensure_ascii=False, separators=(",", ":")
                )
                d["ids"].append(line + "\n")
    return out


@pytest.mark.realdata
def test_encode_task_writes_what_encoding_one_document_at_a_time_writes(chain, tmp_path):
    """The batch encode path (Arrow text as UTF-8 bytes, one int32 buffer per batch, id
    lines built by Arrow) writes the bytes of the plain per-document encode: ids that
    JSON must escape, missing ids, three sources (one renamed), epochs, two files."""
    import pyarrow as pa
    import sentencepiece as spm

    from shikomi.tokenize.stage import EncodeToParts

    model = chain["run"] / "tokenizer" / "tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=str(model))
    rows = _mix_docs(chain["run"])[:1500]
    assert {r["metadata"]["source"] for r in rows} == {"ja", "en", "code"}
    odd = ['quote"d', "back\\slash", "tab\tbell\x07", "改行\nあり", "emoji😀/é"]
    for i, r in enumerate(rows):
        r["metadata"] = {"source": "web/ja" if i % 7 == 3 else r["metadata"]["source"], "epoch": i % 4 - 1}
        if i % 97 == 5:
            r["id"] = odd[i % len(odd)] + str(i)
        if i % 131 == 9:
            r["id"] = None
    inp = tmp_path / "in" / "data"
    inp.mkdir(parents=True)
    files = [inp / "00000.parquet", inp / "00001.parquet"]
    pq.write_table(pa.Table.from_pylist(rows[:1000]), files[0])
    pq.write_table(pa.Table.from_pylist(rows[1000:]), files[1])
    # batches of 7 texts per SentencePiece call: the calls do not show in the output
    list(EncodeToParts(str(tmp_path / "out"), str(model), str(inp.parent), batch_docs=7).run(None, 0, 1))
    parts = tmp_path / "out" / "_parts" / "00000"
    want = _one_by_one(sp, files)
    assert json.loads((parts / "DONE.json").read_text())["sources"] == sorted(want) == ["code", "en", "ja", "web_ja"]
    for src, d in want.items():
        got = read_megatron(parts / src)
        assert len(got) == len(d["tokens"]) and all(np.array_equal(a, b) for a, b in zip(got, d["tokens"])), src
        assert (parts / f"{src}.bin").read_bytes() == np.concatenate(d["tokens"]).tobytes()
        assert (parts / f"{src}.ids.jsonl").read_bytes() == "".join(d["ids"]).encode("utf-8"), src
    # the escaped ids and the named missing ones are there
    ids = [json.loads(x)[0] for d in want.values() for x in d["ids"]]
    for prefix in odd:
        assert any(i.startswith(prefix) for i in ids), prefix
    # the merge reads the ids from the Arrow columns file, or parses the JSON without it:
    # the same shards, ids and manifest
    from shikomi.tokenize.stage import COLS, MergeShards

    assert sorted(x.name for x in parts.glob(f"*{COLS}")) == [f"{s}{COLS}" for s in sorted(want)]
    shutil.copytree(tmp_path / "out", tmp_path / "json")
    for f in (tmp_path / "json" / "_parts" / "00000").glob(f"*{COLS}"):
        f.unlink()
    tc = {**chain["cfg"].tokenize.model_dump(), "keep_parts": True}
    for d in ("out", "json"):
        list(MergeShards(str(tmp_path / d), str(model), 1, 7, tc, None).run(None, 0, 1))
    merged = sorted(x.relative_to(tmp_path / "out") for x in (tmp_path / "out").rglob("*_0*.*"))
    assert len(merged) >= 4 * 3  # train and val .bin/.idx/.ids.jsonl of every source
    assert (tmp_path / "out" / "manifest.json").read_bytes() == (tmp_path / "json" / "manifest.json").read_bytes()
    for f in merged:
        assert (tmp_path / "out" / f).read_bytes() == (tmp_path / "json" / f).read_bytes(), f
    assert any(i.startswith("00000.parquet/") for i in ids) and any(i.startswith("00001.parquet/") for i in ids)


@pytest.mark.realdata
@pytest.mark.parametrize("path", ["buffers", "public"])
def test_encode_flat_is_sentencepiece_encode_per_text(chain, shared_data, monkeypatch, path):
    """Both ways of encoding (the binding's int32 buffers on the checked SentencePiece
    version, the public numpy `encode` on any other) give `sp.encode`'s ids text by text."""
    import sentencepiece as spm

    from shikomi.tokenize import spm as spm_lines
    from shikomi.tokenize.sentencepiece_adapter import CHECKED_VERSION, buffer_encoder
    from shikomi.tokenize.spm import encode_flat

    sp = spm.SentencePieceProcessor(model_file=str(chain["run"] / "tokenizer" / "tokenizer.model"))
    assert buffer_encoder(sp, version="0.0.0") is None
    if path == "buffers":
        assert spm.__version__ == CHECKED_VERSION and buffer_encoder(sp) is not None
    else:
        monkeypatch.setattr(spm_lines, "buffer_encoder", lambda sp: None)
    texts = [r["text"] for r in _mix_docs(chain["run"])[:400]] + ["", " ", "。"]
    want = [sp.encode(t, add_eos=True) for t in texts]
    for inputs in (texts, [t.encode("utf-8") for t in texts]):
        for batch in (1, 64, 10_000):
            tokens, lengths = encode_flat(sp, inputs, True, batch)
            assert tokens.dtype == np.int32 and lengths.tolist() == [len(w) for w in want]
            assert tokens.tolist() == [t for w in want for t in w]
    tokens, lengths = encode_flat(sp, texts[:3], False, 2)
    assert tokens.tolist() == [t for x in texts[:3] for t in sp.encode(x)]
    assert encode_flat(sp, [], True, 8)[0].size == 0


def test_gather_codes_and_shard_digests(tmp_path):
    from shikomi.core.shards import ShardWriter
    from shikomi.tokenize.stage import _codes, _gather

    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 60_000, 5_000).astype(np.uint16) for _ in range(3)]
    part = rng.integers(0, 3, 400).astype(np.int32)
    length = rng.integers(0, 30, 400)
    start = np.asarray([rng.integers(0, 5_000 - n + 1) for n in length])
    want = np.concatenate([parts[p][s : s + n] for p, s, n in zip(part, start, length)])
    assert np.array_equal(_gather(parts, part, start, length, np.uint16), want)
    same = np.zeros(400, np.int32)
    assert np.array_equal(
        _gather(parts, same, start, length, np.uint16),
        np.concatenate([parts[0][s : s + n] for s, n in zip(start, length)]),
    )
    assert _gather(parts, part[:0], start[:0], length[:0], np.uint16).size == 0
    # ids as numbers, first seen first: strings (Arrow) and anything else (a dict) agree
    ids = ["b", "a", "b", "c", "a", "é", "c"]
    codes, n = _codes(ids)
    assert codes.tolist() == [0, 1, 0, 2, 1, 3, 2] and n == 4
    codes, n = _codes([3, "3", 3, None])
    assert codes.tolist() == [0, 1, 0, 2] and n == 3
    # the digests taken while writing are the files' sha256
    w = ShardWriter(tmp_path / "s", np.uint16, digest=True)
    w.add_many(want, length)
    w.add(parts[1][:7])
    w.close()
    assert w.sha256 == sha256(tmp_path / "s.bin") and w.idx_sha256 == sha256(tmp_path / "s.idx")
    got = read_megatron(tmp_path / "s")
    assert [len(x) for x in got] == [*length.tolist(), 7]
