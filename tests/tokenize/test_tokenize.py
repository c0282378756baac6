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
from shikomi.tokenize.stage import balance, first_fit

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


def test_first_fit_and_balance():
    lengths = np.array([50, 30, 20, 10, 5, 5])
    keep = first_fit(lengths, 64)
    # the prefix under the target (50), then later documents that still fit (10)
    assert keep.tolist() == [True, False, False, True, False, False]
    rng = np.random.default_rng(0)
    lens = {"ja": rng.integers(10, 200, 3000), "en": rng.integers(100, 2000, 800), "code": rng.integers(1000, 9000, 30)}
    masks = balance(lens, {"ja": 5, "en": 4, "code": 1}, 0.002)
    got = {s: int(lens[s][m].sum()) if m is not None else int(lens[s].sum()) for s, m in masks.items()}
    total = sum(got.values())
    for s, r in {"ja": 0.5, "en": 0.4, "code": 0.1}.items():
        assert abs(got[s] / total - r) / r <= 0.002


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
        assert abs(train[g] / total - r) / r <= 0.005, g
        assert man["sources"][g]["realised_share"] == pytest.approx(train[g] / total, abs=1e-6)


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
    assert seen + rejected == mixed_count
    assert set(reasons) <= {"ratio_trim", "val_repeat"}
    assert reasons["val_repeat"] > 0  # ja is repeated, so held-out ja documents had copies


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
