"""dedup stage: unit tests on fixtures made here (no ../shared/data needed)."""

from __future__ import annotations

import json
import random
import signal

import numpy as np
import pytest
from datasketch import MinHash
from helpers.dedup import (
    edit_header,
    edit_swap,
    fullwidth_copy,
    jaccard,
    outputs,
    run_cli,
    run_dedup,
    synthetic_ja,
    write_jsonl,
)

from shikomi.config import load_config
from shikomi.dedup import common as C
from shikomi.dedup.buckets import star_pairs
from shikomi.dedup.minhash import MinHasher, lsh_params, permutations, signatures_batch
from shikomi.dedup.text import (
    exact_key,
    fold,
    normalize,
    shingle_hash32,
    shingle_hash64,
    shingle_hashes,
    shingle_sets,
    shingles,
)
from shikomi.errors import UserError

# ---------------------------------------------------------------- MinHash math


@pytest.mark.parametrize(
    "text", ["足利　尊氏は、鎌倉時代末期から室町時代前期の武将。2023年 ABC def", "あ", "短い", "x" * 5, ""]
)
def test_shingle_hashes_vectorised_equal_reference(text):
    norm = normalize(text)
    ref = np.array([shingle_hash64(g) for g in shingles(norm, 5)], dtype=np.uint64)
    assert np.array_equal(shingle_hashes(norm, 5), ref)


@pytest.mark.parametrize("seed,num_perm", [(1, 128), (1234, 64), (7, 256)])
def test_signatures_equal_datasketch(seed, num_perm):
    rng = random.Random(seed)
    hasher = MinHasher(5, num_perm, seed)
    for n_sent in (1, 5, 40, 400):  # up to ~10k shingles: several chunks
        norm = normalize(synthetic_ja(rng, n_sent))
        ref = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash32)  # datasketch 2.x default scheme
        ref.update_batch(shingles(norm, 5))
        assert np.array_equal(hasher.signature(norm), ref.hashvalues)
    assert hasher.signature("") is None
    one = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash32)
    one.update_batch(["あ"])
    assert np.array_equal(hasher.signature("あ"), one.hashvalues)


def test_batched_signatures_and_shingle_sets_equal_one_document_at_a_time():
    rng = random.Random(3)
    # empty, shorter than n, exactly n, ordinary, and longer than one chunk of a batch (4,096 shingles)
    texts = ["", "あ", "短い文", "あいうえお", "x" * 40, normalize(synthetic_ja(rng, 300))]
    texts += [normalize(synthetic_ja(rng, rng.randint(1, 12))) for _ in range(200)]
    rng.shuffle(texts)
    hasher = MinHasher(5, 128, 1234)
    a, b = permutations(128, 1234)
    nonempty = [t for t in texts if t]
    got = signatures_batch(nonempty, 5, a, b)
    assert np.array_equal(got, np.stack([hasher.signature(t) for t in nonempty]))
    values, counts = shingle_sets(texts, 5)
    assert counts.tolist() == [len(np.unique(shingle_hashes(t, 5))) for t in texts]
    off = np.r_[0, np.cumsum(counts)]
    for i, t in enumerate(texts):
        assert np.array_equal(values[off[i] : off[i + 1]], np.unique(shingle_hashes(t, 5)))


def test_appenders_write_the_bytes_of_a_single_save(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shikomi.dedup.signatures import DOCS_SCHEMA

    rows = np.zeros(1000, dtype=C.KEY_DTYPE)
    rows["key"] = np.arange(1000, dtype=np.uint64) * 0x9E3779B97F4A7C15
    rows["idx"] = np.arange(1000)
    for arr in (rows, rows["key"].copy(), np.zeros(0, dtype=np.uint32)):
        C.save_npy(tmp_path / "one.npy", arr)
        out = C.NpyAppender(tmp_path / "parts.npy", arr.dtype)
        for k in range(0, len(arr), 77):
            out.append(arr[k : k + 77])
        assert np.array_equal(out.read(), arr)
        out.close()
        assert (tmp_path / "parts.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npy", "parts.npy"]  # no raw file left

    n = 300
    table = pa.table(
        {
            "idx": pa.array(np.arange(n, dtype=np.uint32)),
            "id": pa.array([f"doc{i}" for i in range(n)], type=pa.string()),
            "date": pa.array(np.arange(n, dtype=np.int64)),
            "exact": pa.array(np.arange(n, dtype=np.uint64)),
            "chars": pa.array(np.arange(n, dtype=np.int64)),
        }
    )
    C.save_parquet(tmp_path / "one.parquet", table)
    for rows_per_group, groups in ((1000, 1), (128, 3), (100, 3)):
        out = C.ParquetAppender(tmp_path / "parts.parquet", DOCS_SCHEMA, rows_per_group)
        for k in range(0, n, 50):
            out.write(table.slice(k, 50))
        out.close()
        f = pq.ParquetFile(tmp_path / "parts.parquet")
        assert f.metadata.num_row_groups == groups
        assert f.read().equals(table)
        if groups == 1:
            assert (tmp_path / "parts.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_lsh_params_are_datasketch_optimum():
    from datasketch.lsh import _optimal_param

    p = lsh_params(0.8, 128, 0.1, 0.9)
    assert (p["bands"], p["rows"]) == _optimal_param(0.8, 128, 0.1, 0.9) == (14, 9)
    assert p["candidate_probability"]["0.85"] >= 0.95
    assert p["candidate_probability"]["0.50"] < 0.05
    fixed = lsh_params(0.8, 128, 0.5, 0.5, bands=16, rows=8)
    assert (fixed["bands"], fixed["rows"]) == (16, 8)


def test_normalisation():
    assert fold("　ＡＢＣ１２３\n\n  テスト ") == "ABC123 テスト"
    assert normalize("ＡＢＣ 2024年") == "abc 0000年"
    assert exact_key(fold("ｶﾀｶﾅ  です")) == exact_key(fold("カタカナ です"))


def test_star_pairs_index_heads_its_run():
    keys = np.array([5, 5, 5, 7, 9, 9], dtype=np.uint64)
    nodes = np.array(
        [C.node(1, 0, 3), C.node(0, 0, 1), C.node(0, 1, 2), C.node(0, 0, 4), C.node(1, 0, 1), C.node(1, 0, 2)],
        dtype=np.uint64,
    )
    is_index = np.array([True, False, False, False, True, True])
    pairs = star_pairs(keys, nodes, is_index)
    assert [(int(a), int(b)) for a, b in pairs] == [(int(nodes[0]), int(nodes[1])), (int(nodes[0]), int(nodes[2]))]


def test_config_errors_are_one_line():
    with pytest.raises(UserError, match="bands"):
        load_config(None, {"dedup": {"bands": 10}})
    with pytest.raises(UserError, match="exceeds"):
        load_config(None, {"dedup": {"bands": 20, "rows": 10}})
    with pytest.raises(UserError, match="unknown key"):
        load_config(None, {"dedup": {"treshold": 0.7}})


def test_missing_input_is_user_error(tmp_path):
    from shikomi.dedup.stage import build

    cfg = load_config(None, {"run_dir": str(tmp_path / "run")})
    with pytest.raises(UserError, match="input not found"):
        build(cfg, str(tmp_path / "nope"))


# ---------------------------------------------------------------- the stage on a made-up corpus


def _corpus(seed: int = 0, n: int = 120) -> tuple[list[dict], dict]:
    """Documents with exact copies, near-duplicates, a shared footer, tiny and huge docs."""
    rng = random.Random(seed)
    docs, truth = [], {"exact": [], "near": [], "footer_docs": []}
    footer = "\nこのサイトについて | 個人情報保護方針 | お問い合わせ"
    for i in range(n):
        text = synthetic_ja(rng, rng.randint(30, 40) if i % 10 == 5 else rng.randint(4, 12))
        if i % 4 == 0:
            text += footer
            truth["footer_docs"].append(f"doc{i:04d}")
        docs.append({"id": f"doc{i:04d}", "text": text, "metadata": {"date": f"2023-03-{1 + i % 28:02d}T00:00:00Z"}})
    for i in range(0, n, 10):
        base = docs[i]
        # an exact copy crawled later: dropped as exact_duplicate of the earlier page
        docs.append(
            {"id": f"copy{i:04d}", "text": fullwidth_copy(base["text"]), "metadata": {"date": "2024-01-01T00:00:00Z"}}
        )
        truth["exact"].append((f"copy{i:04d}", base["id"]))
    for i in range(5, n, 10):
        base = docs[i]
        a, b = edit_header(rng, edit_swap(rng, base["text"]))
        assert jaccard(b, base["text"]) >= 0.85
        docs.append({"id": f"near{i:04d}", "text": b, "metadata": {"date": "2025-01-01T00:00:00Z"}})
        truth["near"].append((f"near{i:04d}", base["id"]))
    return docs, truth


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    docs, truth = _corpus()
    folder = write_jsonl(tmp_path_factory.mktemp("dedup_in") / "in", docs)
    return folder, docs, truth


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory):
    folder, _, _ = corpus
    run = tmp_path_factory.mktemp("dedup_base")
    stats = run_dedup(run, folder, tasks=2, lines={"max_docs": 5})
    return run / "dedup", stats


def test_stage_drops_copies_and_near_duplicates(corpus, baseline):
    _, docs, truth = corpus
    out, stats = baseline
    kept, rej = outputs(out)
    assert len(kept) + len(rej) == len(docs)
    for dup, orig in truth["exact"]:
        assert rej[dup]["reject_reason"] == "exact_duplicate"
        assert rej[dup]["duplicate_of"] == orig and orig in kept
    for dup, orig in truth["near"]:
        assert rej[dup]["reject_reason"] == "near_duplicate"
        assert rej[dup]["duplicate_of"] == orig and orig in kept
    assert set(rej) == {d for d, _ in truth["exact"] + truth["near"]}
    # the shared footer is cut from every kept document that had it
    for did in truth["footer_docs"]:
        assert "個人情報保護方針" not in kept[did]
    assert stats["dropped"]["exact_duplicate"]["documents"] == len(truth["exact"])
    assert stats["dropped"]["near_duplicate"]["documents"] == len(truth["near"])
    dd = stats["dedup"]
    assert dd["lsh"]["bands"] == 14 and dd["lsh"]["rows"] == 9
    assert dd["exact_duplicates"] == len(truth["exact"]) and dd["near_duplicates"] == len(truth["near"])
    assert dd["cluster_sizes"]["2"] == len(truth["exact"]) + len(truth["near"])
    assert dd["lines"]["lines_removed"] == len(truth["footer_docs"])


def test_kept_documents_carry_their_cluster_size(corpus, baseline):
    from shikomi.core.documents import read_documents

    _, _, truth = corpus
    out, _ = baseline
    sizes = {d.id: d.metadata.get("dup_cluster_size") for d in read_documents(out / "data")}
    survivors = {orig for _, orig in truth["exact"] + truth["near"]}
    # every kept document has a size: 2 for the survivor of a pair, 1 for a document without duplicates
    assert sizes and all(v is not None for v in sizes.values())
    assert {d: v for d, v in sizes.items() if v != 1} == {d: 2 for d in survivors}


def test_line_removal_rejects_documents_left_too_short(tmp_path):
    menu = "ホーム\nニュース一覧\n会社概要\nお問い合わせ"
    rng = random.Random(3)
    docs = [{"id": f"m{i}", "text": menu + "\n" + synthetic_ja(rng, 3)} for i in range(6)]
    docs.append({"id": "menu-only", "text": menu + "\n短い"})
    stats = run_dedup(
        tmp_path / "run",
        write_jsonl(tmp_path / "in", docs, files=1),
        tasks=1,
        near=False,
        lines={"max_docs": 3, "min_chars": 20},
    )
    kept, rej = outputs(tmp_path / "run" / "dedup")
    assert rej["menu-only"]["reject_reason"] == "lines_too_short:2"
    assert all("会社概要" not in t for t in kept.values())
    assert stats["dedup"]["lines"]["lines_removed"] == 4 * 7


def test_rerun_is_byte_identical(corpus, baseline, tmp_path):
    folder, _, _ = corpus
    run_dedup(tmp_path, folder, tasks=2, lines={"max_docs": 5})
    base, _ = baseline
    for sub in ("data", "rejected"):
        a = sorted(p.name for p in (base / sub).glob("*.parquet"))
        assert a == sorted(p.name for p in (tmp_path / "dedup" / sub).glob("*.parquet"))
        for name in a:
            assert (base / sub / name).read_bytes() == (tmp_path / "dedup" / sub / name).read_bytes()


def test_tasks_streaming_in_small_batches_write_the_same_files(corpus, baseline, tmp_path, monkeypatch):
    """The signature and verification tasks write their output a batch at a time; with
    batches of a few documents every work file and the output are the same as with one
    batch (the documents table, split in row groups, has the same rows)."""
    import pyarrow.parquet as pq

    from shikomi.dedup import signatures, verify

    monkeypatch.setattr(signatures, "_BATCH", 3)
    monkeypatch.setattr(signatures, "_DOCS_ROWS", 16)
    monkeypatch.setattr(verify, "_BATCH", 2)
    folder, _, _ = corpus
    run_dedup(tmp_path, folder, tasks=2, lines={"max_docs": 5})
    base, _ = baseline
    new = tmp_path / "dedup"
    files = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file() and p.suffix in (".npy", ".parquet"))
    assert any(f.parts[:2] == ("work", "shingles") for f in files)
    assert (
        sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file() and p.suffix in (".npy", ".parquet")) == files
    )
    for f in files:
        if f.parts[:3] == ("work", "sigs", "docs"):
            assert pq.ParquetFile(new / f).metadata.num_row_groups > 1
            assert pq.read_table(new / f).equals(pq.read_table(base / f))
        else:
            assert (new / f).read_bytes() == (base / f).read_bytes(), f


def test_changed_config_on_same_folder_needs_force(corpus, tmp_path):
    folder, _, _ = corpus
    run_dedup(tmp_path, folder, tasks=2, lines={"max_docs": 5})
    with pytest.raises(UserError, match="--force"):
        run_dedup(tmp_path, folder, tasks=2, lines={"max_docs": 6})


def test_cross_run_index(tmp_path):
    rng = random.Random(11)
    old = [{"id": f"old{i}", "text": synthetic_ja(rng, 8)} for i in range(30)]
    run_dedup(tmp_path / "old", write_jsonl(tmp_path / "old_in", old, files=2), tasks=2)
    new = [{"id": f"new{i}", "text": synthetic_ja(rng, 8)} for i in range(30)]
    new.append({"id": "recrawl-exact", "text": old[3]["text"]})
    new.append({"id": "recrawl-near", "text": edit_header(rng, old[7]["text"])[0]})
    stats = run_dedup(
        tmp_path / "new",
        write_jsonl(tmp_path / "new_in", new, files=2),
        tasks=2,
        index=[str(tmp_path / "old" / "dedup")],
    )
    kept, rej = outputs(tmp_path / "new" / "dedup")
    assert rej["recrawl-exact"]["reject_reason"] == "exact_duplicate" and rej["recrawl-exact"]["duplicate_of"] == "old3"
    assert rej["recrawl-near"]["reject_reason"] == "near_duplicate" and rej["recrawl-near"]["duplicate_of"] == "old7"
    assert len(kept) == 30 and stats["dedup"]["index_matches"] == 2
    with pytest.raises(UserError, match="other parameters"):
        run_dedup(tmp_path / "new2", tmp_path / "new_in", tasks=2, ngram=4, index=[str(tmp_path / "old" / "dedup")])


def test_kill_9_in_every_job_then_resume_gives_the_same_output(corpus, baseline, tmp_path):
    """kill -9 of the whole run inside each job in turn; every rerun resumes the
    completed tasks, and the final output is the uninterrupted run's, byte for byte."""
    folder, _, _ = corpus
    args = [
        "dedup",
        "--input",
        str(folder),
        "--output",
        str(tmp_path),
        "--tasks",
        "2",
        "--workers",
        "2",
        "--set",
        "dedup.lines.max_docs=5",
    ]
    for job in ["signatures", "buckets", "verify", "cluster", "lines", "filter"]:
        killed = run_cli(args, {C.KILL_ENV: job})
        assert killed.returncode == -signal.SIGKILL, (job, killed.stderr[-2000:])
        assert not (tmp_path / "dedup" / "stats.json").exists()
    done = run_cli(args)
    assert done.returncode == 0, done.stderr[-2000:]
    base, _ = baseline
    assert outputs(tmp_path / "dedup") == outputs(base)
    for sub in ("data", "rejected"):
        for name in sorted(p.name for p in (base / sub).glob("*.parquet")):
            assert (base / sub / name).read_bytes() == (tmp_path / "dedup" / sub / name).read_bytes()
    stats = json.loads((tmp_path / "dedup" / "stats.json").read_text())
    base_stats = json.loads((base / "stats.json").read_text())
    for k in ("documents_in", "documents_out", "dropped"):
        assert stats[k] == base_stats[k]


def test_empty_tiny_and_10mb_documents(tmp_path):
    rng = random.Random(5)
    big = synthetic_ja(rng, 2000)
    big = (big * (3_600_000 // len(big) + 1))[:3_600_000]  # 10.8 MB of UTF-8 on one line
    big = "\n".join(big[i : i + 100_000] for i in range(0, len(big), 100_000))
    docs = [
        {"id": "empty", "text": ""},
        {"id": "blank", "text": " \n\u3000 "},
        {"id": "one-char", "text": "あ", "metadata": {"date": "2020-01-01"}},
        {"id": "one-char-copy", "text": "あ", "metadata": {"date": "2030-01-01"}},
        {"id": "big", "text": big, "metadata": {"date": "2020-01-01"}},
        {"id": "big-copy", "text": big + "\n追記", "metadata": {"date": "2030-01-01"}},
    ]
    assert len(big.encode("utf-8")) > 10_000_000
    stats = run_dedup(tmp_path / "run", write_jsonl(tmp_path / "in", docs, files=1), tasks=1)
    kept, rej = outputs(tmp_path / "run" / "dedup")
    # datatrove readers skip records without text; whitespace-only text has no key
    assert set(kept) == {"blank", "one-char", "big"}
    assert rej["one-char-copy"]["reject_reason"] == "exact_duplicate"
    assert rej["big-copy"]["reject_reason"] == "near_duplicate" and rej["big-copy"]["duplicate_of"] == "big"
    assert stats["documents_in"] == 5
