"""`shikomi experiment mix-scaling`: condition folders, run configs, and the smallest
setting end to end on the embedded sample (and on real Japanese/English text)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shikomi.config import load_config
from shikomi.core.schemas import TokenManifest
from shikomi.core.shards import ShardReader, ShardWriter
from shikomi.errors import UserError
from shikomi.tools import experiment as E
from shikomi.train.data import step_documents

ROOT = Path(__file__).resolve().parents[2]
TOKYO = ROOT / "configs" / "recipes" / "tokyo-mix-study.yaml"


def _token_folder(path: Path, val: dict[str, int] | None = None) -> Path:
    """A token folder as the tokenize stage writes it: train and val shards per source."""
    val = {"ja": 2, "en": 2} if val is None else val
    rng = np.random.default_rng(0)
    shards = []
    for src in ("ja", "en"):
        for split, n in (("train", 5), ("val", val.get(src, 0))):
            if n == 0:
                continue
            rel = f"{src}/{split}_00000"
            (path / src).mkdir(parents=True, exist_ok=True)
            w = ShardWriter(path / rel, np.uint16)
            ids = []
            tokens = 0
            for i in range(n):
                doc = rng.integers(3, 100, size=20 + i)
                w.add(doc)
                tokens += doc.size
                ids.append(f"{src}-{split}-{i}")
            w.close()
            (path / f"{rel}.ids.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ids))
            shards.append(
                {
                    "path": rel,
                    "sha256": "",
                    "idx_sha256": "",
                    "documents": n,
                    "tokens": tokens,
                    "source": src,
                    "split": split,
                    "ids_path": f"{rel}.ids.jsonl",
                }
            )
    (path / "tok").mkdir(parents=True, exist_ok=True)
    (path / "tok" / "tokenizer.model").write_bytes(b"x")
    manifest = {
        "tokenizer": {"path": "tok/tokenizer.model", "sha256": "", "vocab_size": 100, "eos_id": 2},
        "dtype": "uint16",
        "seed": 1,
        "shards": shards,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_condition_folders_train_on_their_languages_and_validate_on_all(tmp_path):
    tok = _token_folder(tmp_path / "tokenize")
    ms = load_config(None).experiment.mix_scaling
    folders = E.condition_folders(tok, tmp_path / "shards", ms)
    assert set(folders) == {"ja-only", "en-only", "mixed"}
    for cond, langs in {"ja-only": ["ja"], "en-only": ["en"], "mixed": ["ja", "en"]}.items():
        m = TokenManifest.read(folders[cond]).dump()
        train = sorted(s["source"] for s in m["shards"] if s["split"] == "train")
        val = sorted(s["source"] for s in m["shards"] if s["split"] == "val")
        assert train == sorted(langs)
        assert val == ["en", "ja"]  # every model is judged on the same Japanese and English text
        for s in m["shards"]:  # the shards are the same bytes as the tokenize stage's
            a, b = ShardReader(folders[cond] / s["path"]), ShardReader(tok / s["path"])
            assert len(a) == len(b) and all(np.array_equal(a[i], b[i]) for i in range(len(a)))
        # the tokenizer path still names the same file from the new folder
        assert (folders[cond] / m["tokenizer"]["path"]).resolve() == (tok / "tok" / "tokenizer.model").resolve()


def test_train_samples_are_the_documents_back_to_back_cut_to_seq_len(tmp_path):
    """Each language's train documents, in order, cut into samples of seq_len tokens (the
    trainer shuffles these, not whole documents); validation shards stay as they are."""
    tok = _token_folder(tmp_path / "tokenize")
    out = E.sample_folder(tok, tmp_path / "samples", 8)
    m = TokenManifest.read(out).dump()
    info = json.loads((out / "samples.json").read_text())
    for s in m["shards"]:
        a, b = ShardReader(out / s["path"]), ShardReader(tok / s["path"])
        if s["split"] == "val":
            assert len(a) == len(b) and all(np.array_equal(a[i], b[i]) for i in range(len(a)))
            continue
        stream = np.concatenate([b[i] for i in range(len(b))])  # 20..24 tokens: 110 per source
        assert len(a) == s["documents"] == 110 // 8 and s["tokens"] == 110 // 8 * 8
        assert all(len(a[i]) == 8 for i in range(len(a)))
        assert np.array_equal(np.concatenate([a[i] for i in range(len(a))]), stream[: s["tokens"]])
        assert info["tokens_left_out"][s["source"]] == 110 % 8
        ids = [json.loads(x) for x in (out / s["ids_path"]).read_text().splitlines()]
        assert ids[:4] == [
            f"{s['source']}-train-0+0",
            f"{s['source']}-train-0+8",
            f"{s['source']}-train-0+16",
            f"{s['source']}-train-1+4",
        ]
    assert (out / m["tokenizer"]["path"]).resolve() == (tok / "tok" / "tokenizer.model").resolve()
    before = (out / "ja" / "train_00000.bin").stat().st_mtime_ns
    assert E.sample_folder(tok, tmp_path / "samples", 8) == out  # done: kept
    assert (out / "ja" / "train_00000.bin").stat().st_mtime_ns == before
    E.sample_folder(tok, tmp_path / "samples", 4)  # another sequence length: cut again
    assert TokenManifest.read(out).dump()["shards"][0]["documents"] == 110 // 4


def test_condition_folders_need_a_validation_set_per_language(tmp_path):
    tok = _token_folder(tmp_path / "tokenize", val={"ja": 0, "en": 2})
    ms = load_config(None).experiment.mix_scaling
    with pytest.raises(UserError, match="no validation documents for 'ja'"):
        E.condition_folders(tok, tmp_path / "shards", ms)


def test_run_config_trains_every_model_on_the_same_tokens(tmp_path):
    cfg = load_config(TOKYO.with_name("tokyo-mix-study.tiny.yaml"))
    ms = cfg.experiment.mix_scaling
    steps, batch, seq = E.steps_for(cfg)
    assert steps * batch * seq >= ms.train_tokens > (steps - 1) * batch * seq
    shapes = []
    for m in ms.models:
        rc = E.run_config(cfg, m, tmp_path / "data", tmp_path / m.name)
        t = rc.train
        assert (t.max_steps, t.global_batch_size, t.seq_len, t.seq_warmup_steps) == (steps, batch, seq, 0)
        assert t.input == str(tmp_path / "data") and rc.run_dir == str(tmp_path / m.name)
        assert t.nproc_per_node == 1 and t.eval_interval == max(1, steps // ms.evals)
        shapes.append((t.model.dim, t.model.n_layers, t.model.n_heads, t.model.ffn_dim))
    assert shapes == [(m.dim, m.n_layers, m.n_heads, m.ffn_dim or 3 * m.dim) for m in ms.models]


def test_experiment_config_errors_name_the_key(tmp_path):
    with pytest.raises(UserError, match=r"experiment\.mix_scaling\.modelz"):
        load_config(None, {"experiment": {"mix_scaling": {"modelz": []}}})
    with pytest.raises(UserError, match="not in experiment.mix_scaling.languages"):
        load_config(None, {"experiment": {"mix_scaling": {"conditions": {"zh-only": ["zh"]}}}})
    with pytest.raises(UserError, match="not divisible"):
        load_config(
            None, {"experiment": {"mix_scaling": {"models": [{"name": "a", "dim": 30, "n_layers": 1, "n_heads": 4}]}}}
        )
    cfg = load_config(None, {"mix": {"sources": [{"name": "ja"}], "ratios": {"ja": 1}}})
    with pytest.raises(UserError, match="languages lists en"):
        E.language_sources(cfg)


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLCONFIGDIR=str(cwd / ".mpl"))
    return subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _read_table(report: Path) -> list[dict]:
    with open(report / "mix_scaling.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_mix_scaling_smallest_setting_end_to_end(tmp_path):
    """Three sizes x ja-only / en-only / mixed on the embedded sample, on CPU."""
    args = [
        "experiment",
        "mix-scaling",
        "--config",
        str(TOKYO),
        "--scale",
        "tiny",
        "--set",
        "experiment.mix_scaling.train_tokens=10240",
        "--set",
        "experiment.mix_scaling.evals=2",
    ]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = tmp_path / "runs" / "tokyo-mix-study-tiny" / "report"
    rows = _read_table(report)
    cfg = load_config(TOKYO.with_name("tokyo-mix-study.tiny.yaml"))
    ms = cfg.experiment.mix_scaling
    # the table: one row per (condition, model), every column filled
    assert len(rows) == len(ms.conditions) * len(ms.models) == 9
    assert list(rows[0]) == E.columns(["ja", "en"])
    assert {(r["condition"], r["model"]) for r in rows} == {(c, m.name) for c in ms.conditions for m in ms.models}
    assert all(v != "" for r in rows for v in r.values())
    for r in rows:
        assert int(r["train_tokens"]) == 10240  # equal token count for every model
        assert float(r["train_loss_end"]) < float(r["train_loss_first"]), r  # each model's loss fell
    for c in ms.conditions:  # the family grows
        params = [int(r["non_embedding_params"]) for r in rows if r["condition"] == c]
        assert params == sorted(params) and len(set(params)) == 3
    data = json.loads((report / "mix_scaling.json").read_text())
    assert data["meta"]["train_tokens_per_model"] == 10240 and len(data["rows"]) == 9
    assert all(len(r["curves"]["ja"]) == 2 and len(r["curves"]["en"]) == 2 for r in data["rows"])
    assert (report / "mix_scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (report / "mix_scaling.md").read_text()
    assert "| model | non-embedding params |" in md and "mixed → ja" in md
    # the three token folders: same validation shards, different train shards
    shards = tmp_path / "runs" / "tokyo-mix-study-tiny" / "experiment" / "mix-scaling" / "shards"
    val = {
        c: sorted(s["path"] for s in TokenManifest.read(shards / c).dump()["shards"] if s["split"] == "val")
        for c in ms.conditions
    }
    assert val["ja-only"] == val["en-only"] == val["mixed"] == ["en/val_00000", "ja/val_00000"]

    # a second run finds every model trained and only rewrites the report, identically
    before = (report / "mix_scaling.csv").read_bytes()
    r2 = _run(args, tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "[train]" not in r2.stderr
    assert (report / "mix_scaling.csv").read_bytes() == before


def test_mix_scaling_on_real_text(shared_data, tmp_path):
    """Japanese Wikipedia leads against US presidential speeches: a model trained only on
    one language is far worse on the other, and the mixed model learns both."""
    ja = shared_data / "ja" / "jawiki_annotated_corpus_leads.jsonl"
    en1 = shared_data / "en" / "us_inaugural_addresses_1789-2021.jsonl"
    en2 = shared_data / "en" / "us_state_of_the_union_1945-2006.jsonl"
    sources = (
        f"[{{name: ja, path: '{ja}', format: jsonl}}, {{name: en, path: '{en1}', format: jsonl}}, "
        f"{{name: en, path: '{en2}', format: jsonl}}]"
    )
    args = [
        "experiment",
        "mix-scaling",
        "--config",
        str(TOKYO),
        "--scale",
        "tiny",
        "--set",
        f"mix.sources={sources}",
        "--set",
        "mix.total_tokens=null",
        "--set",
        "experiment.mix_scaling.pool_tokens=60000",
        "--set",
        "experiment.mix_scaling.models=[{name: s, dim: 32, n_layers: 2, n_heads: 4, ffn_dim: 96}]",
        "--set",
        "experiment.mix_scaling.train_tokens=20480",
        "--set",
        "experiment.mix_scaling.evals=1",
        "--set",
        "tokenizer.vocab_size=4000",
        "--set",
        "tokenize.val_fraction=0.05",
    ]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {x["condition"]: x for x in _read_table(tmp_path / "runs" / "tokyo-mix-study-tiny" / "report")}
    assert set(rows) == {"ja-only", "en-only", "mixed"}
    ja = {c: float(rows[c]["val_loss_ja"]) for c in rows}
    en = {c: float(rows[c]["val_loss_en"]) for c in rows}
    # the mixed model trained on both languages about equally, although the English pool is
    # nine speeches of ~6,500 tokens and the Japanese one ~900 leads of ~66 (samples, not
    # documents, are shuffled)
    root = tmp_path / "runs" / "tokyo-mix-study-tiny" / "experiment" / "mix-scaling"
    tc = load_config(root / "runs" / "mixed-s" / "train" / "config.yaml").train
    seen = {"ja": 0, "en": 0}
    for step in range(tc.max_steps):
        for d in step_documents(root / "shards" / "mixed", tc, step):
            seen[d["source"]] += d["tokens"]
    assert 0.4 < seen["en"] / sum(seen.values()) < 0.6, seen
    assert ja["en-only"] > max(ja["ja-only"], ja["mixed"]) + 1.0, ja
    assert en["ja-only"] > max(en["en-only"], en["mixed"]) + 0.5, en
    for c in rows:  # each model's loss fell
        assert float(rows[c]["train_loss_end"]) < float(rows[c]["train_loss_first"])
