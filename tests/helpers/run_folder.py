"""A small synthetic run folder in the stage-folder contract, for the inspect,
report, find and batch tests: stats.json per stage, clean data and rejected
documents, a mix, a SentencePiece tokenizer, Megatron token shards with a manifest
and id sidecars, and train metrics. Built from the project's own text, no data
files needed."""

from __future__ import annotations

import json
import random
from pathlib import Path

from datatrove.data import Document

from shikomi.core.files import sha256_file, write_json_atomic
from shikomi.core.rules import reject
from shikomi.core.schemas import MetricsLog, MixPlan, StageStats, TokenManifest
from shikomi.core.shards import ShardWriter, dtype_for_vocab
from shikomi.core.writers import DocWriter

JA_WORDS = [
    "日本語",
    "文章",
    "東京",
    "大阪",
    "天気",
    "研究",
    "学校",
    "電車",
    "季節",
    "料理",
    "歴史",
    "音楽",
    "言語",
    "モデル",
    "データ",
    "コーパス",
    "京都",
    "山",
    "川",
    "海",
]
JA_PARTS = ["は", "が", "を", "に", "で", "と", "の"]
EN_WORDS = [
    "the",
    "model",
    "reads",
    "data",
    "river",
    "city",
    "music",
    "history",
    "school",
    "train",
    "weather",
    "language",
    "quick",
    "brown",
    "fox",
    "over",
]
CODE_LINES = [
    "def f(x):",
    "    return x + 1",
    "for i in range(10):",
    "    print(i)",
    "import os",
    "class A:",
    "    pass",
    "x = [1, 2, 3]",
]

# seed 3: the order in which the sentinel sentence (SENTINEL[:14]) sits inside one 16-token window,
# so `find` has a text step to hand to `batch`
TRAIN = {"seq_len": 16, "global_batch_size": 8, "micro_batch_size": 2, "max_steps": 20, "seed": 3}
SENTINEL = "猫が窓辺で静かに眠っている午後の光景を記録する。"


def ja_text(rng: random.Random, n: int) -> str:
    sents = []
    for _ in range(n):
        words = [rng.choice(JA_WORDS) + rng.choice(JA_PARTS) for _ in range(rng.randint(3, 7))]
        sents.append("".join(words) + rng.choice(["。", "です。", "ました。"]))
    return "".join(sents)


def en_text(rng: random.Random, n: int) -> str:
    return " ".join(
        " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "." for _ in range(n)
    )


def code_text(rng: random.Random, n: int) -> str:
    return "\n".join(rng.choice(CODE_LINES) for _ in range(n))


def write_docs(folder: Path, docs: list[Document], rank: int = 0) -> None:
    w = DocWriter(str(folder))
    with w:
        for d in docs:
            w.write(d, rank)


def stats(stage: str, din: int, dout: int, dropped: dict, chars_in: int, chars_out: int, **extra) -> dict:
    return {
        "stage": stage,
        "documents_in": din,
        "chars_in": chars_in,
        "documents_out": dout,
        "chars_out": chars_out,
        "documents_dropped": sum(d["documents"] for d in dropped.values()),
        "dropped": dropped,
        "skipped": extra.pop("skipped", {}),
        "rules": [],
        **extra,
    }


def write_stats(stage_dir: Path, st: dict) -> None:
    StageStats.parse(st).write(stage_dir)


def dedup_record(cluster_sizes: dict[str, int]) -> dict:
    """The `dedup` field of dedup's stats.json (a run without line dedup)."""
    return {
        "tasks": 1,
        "ngram": 5,
        "normalisation": {"nfkc": True, "whitespace": "folded", "lowercase": True, "fold_digits": True},
        "lsh": {"bands": 14, "num_perm": 128, "rows": 9, "threshold": 0.8},
        "verify": True,
        "survivor": "index of an earlier run first, then earliest crawl date, then lowest id",
        "index": [],
        "cluster_sizes": cluster_sizes,
        "clusters": sum(cluster_sizes.values()),
        "lines": {},
    }


def mix_plan(docs: list[Document], ratios: dict[str, float], seed: int = 1234) -> dict:
    """A mix/plan.json for documents taken once each (one input per source)."""
    norm = {k: round(v / sum(ratios.values()), 6) for k, v in ratios.items()}
    cpt = {"ja": 1.4, "en": 2.75, "code": 2.2}
    sources = {}
    for i, g in enumerate(ratios):
        mine = [d for d in docs if d.metadata["source"] == g]
        chars = sum(len(d.text) for d in mine)
        tokens = int(chars / cpt[g])
        inp = {
            "index": i,
            "label": g,
            "path": f"/data/{g}",
            "format": "auto",
            "documents_read": len(mine),
            "chars_read": chars,
            "available_documents": len(mine),
            "available_chars": chars,
            "available_tokens": tokens,
            "target_tokens": float(tokens),
            "base_epochs": 1,
            "epochs": 1.0,
            "expected_tokens": tokens,
            "expected_documents": len(mine),
        }
        sources[g] = {
            "weight": norm[g],
            "available_tokens": tokens,
            "available_documents": len(mine),
            "target_tokens": float(tokens),
            "expected_tokens": tokens,
            "expected_documents": len(mine),
            "epochs": 1.0,
            "inputs": [inp],
            "expected_share": 0.0,
        }
    total = sum(s["expected_tokens"] for s in sources.values())
    for s in sources.values():
        s["expected_share"] = round(s["expected_tokens"] / total, 6)
    return {
        "seed": seed,
        "counted_with": {"method": "estimate", "chars_per_token": {g: cpt[g] for g in ratios}},
        "ratios": norm,
        "total_tokens_target": float(total),
        "total_tokens_expected": total,
        "sources": sources,
        "warnings": [],
    }


def train_sp(model_prefix: Path, texts: list[str], vocab_size: int = 400) -> None:
    import sentencepiece as spm

    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        bos_id=-1,
        eos_id=1,
        unk_id=0,
        pad_id=2,
        allow_whitespace_only_pieces=True,
        max_sentence_length=1 << 16,
        minloglevel=2,
        num_threads=1,
    )


def make_run(
    root: Path,
    seed: int = 0,
    ja: list[str] | None = None,
    en: list[str] | None = None,
    code: list[str] | None = None,
    train: dict | None = None,
) -> dict:
    """Build a run folder; returns what went into it (ids, texts, counts). Texts
    default to generated ones; pass real texts for the real-data tests."""
    rng = random.Random(seed)
    run = root / "run"
    info: dict = {"run": run}

    # clean: kept Japanese documents and rejected ones of three rules
    if ja is None:
        ja = [ja_text(rng, rng.randint(2, 6)) for _ in range(24)]
        ja[7] = ja[7] + SENTINEL + ja_text(rng, 1)
    kept = [
        Document(
            t,
            f"ja-{i:03d}",
            metadata={"url": f"https://example.jp/{i}", "source": "ja", "language": "ja", "language_score": 0.99},
        )
        for i, t in enumerate(ja)
    ]
    rejected = []
    for i in range(9):
        d = Document(
            "短い",
            f"short-{i}",
            metadata={"url": f"https://example.jp/s{i}", "source": "ja", "language": "ja", "language_score": 0.9},
        )
        rejected.append(reject(d, "too_short", len(d.text)))
    for i in range(5):
        d = Document(
            "ABC " * 20 + "です",
            f"hira-{i}",
            metadata={"url": f"https://example.jp/h{i}", "source": "ja", "language": "ja", "language_score": 0.6},
        )
        rejected.append(reject(d, "hiragana_ratio", 0.0123))
    for i in range(3):
        d = Document(
            "買う 今すぐ クリック " * 5,
            f"ng-{i}",
            metadata={"url": f"https://spam.example/{i}", "source": "ja", "language": "ja", "language_score": 0.8},
        )
        rejected.append(reject(d, "ng_words"))
    half = len(kept) // 2
    write_docs(run / "clean" / "data", kept[:half], 0)
    write_docs(run / "clean" / "data", kept[half:], 1)
    write_docs(run / "clean" / "rejected", rejected, 0)
    drop = {}
    for d in rejected:
        rule = d.metadata["reject_reason"].split(":")[0]
        e = drop.setdefault(rule, {"documents": 0, "chars": 0})
        e["documents"] += 1
        e["chars"] += len(d.text)
    kc = sum(len(d.text) for d in kept)
    rc = sum(len(d.text) for d in rejected)
    clean_stats = stats("clean", len(kept) + len(rejected), len(kept), dict(sorted(drop.items())), kc + rc, kc)
    write_stats(run / "clean", clean_stats)
    info["clean_stats"] = clean_stats
    info["kept"] = kept
    info["rejected"] = rejected

    # upstream stages: stats only (what the report reads)
    n_dedup_in = len(kept) + len(rejected) + 6
    write_stats(
        run / "dedup",
        stats(
            "dedup",
            n_dedup_in,
            len(kept) + len(rejected),
            {"near_duplicate": {"documents": 6, "chars": 900}},
            kc + rc + 900,
            kc + rc,
            dedup=dedup_record({"2": 2, "3": 1, "4-5": 1, "1001+": 0}),
        ),
    )
    n_langid_out = n_dedup_in + 10
    write_stats(
        run / "langid",
        stats(
            "langid",
            n_langid_out + 7,
            n_langid_out,
            {"language": {"documents": 5, "chars": 700}, "low_score": {"documents": 2, "chars": 100}},
            50_000,
            40_000,
            languages={"ja": n_dedup_in, "en": 10},
            score_histogram={
                "bins": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                "counts": {"ja": [1, 2, 4, 8, 32], "en": [0, 1, 1, 3, 5]},
            },
        ),
    )
    write_stats(
        run / "extract",
        stats(
            "extract",
            n_langid_out + 7 + 2 + 16,
            n_langid_out + 7,
            {"empty_text": {"documents": 2, "chars": 0}},
            60_000,
            50_000,
            skipped={"not_html": 4, "not_response": 12},
        ),
    )

    # mix: ja (the clean output), en, code
    if en is None:
        en = [en_text(rng, rng.randint(2, 5)) for _ in range(16)]
    if code is None:
        code = [code_text(rng, rng.randint(3, 8)) for _ in range(6)]
    en_docs = [
        Document(t, f"en-{i:03d}", metadata={"source": "en", "url": f"https://ex.com/{i}"}) for i, t in enumerate(en)
    ]
    code_docs = [Document(t, f"code-{i:03d}", metadata={"source": "code"}) for i, t in enumerate(code)]
    mix_docs = kept + en_docs + code_docs
    rng.shuffle(mix_docs)
    write_docs(run / "mix" / "data", mix_docs, 0)
    write_stats(
        run / "mix",
        stats(
            "mix",
            len(mix_docs),
            len(mix_docs),
            {},
            sum(len(d.text) for d in mix_docs),
            sum(len(d.text) for d in mix_docs),
        ),
    )
    MixPlan.parse(mix_plan(mix_docs, {"ja": 5, "en": 4, "code": 1})).write(run / "mix")
    info["mix_docs"] = mix_docs

    # tokenizer
    texts = [d.text for d in mix_docs] * (3 if len(mix_docs) < 200 else 1)
    train_sp(run / "tokenizer" / "tokenizer", texts, 400 if len(mix_docs) < 200 else 2000)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer" / "tokenizer.model"))
    write_json_atomic(
        run / "tokenizer" / "tokenizer.json",
        {"vocab_size": sp.vocab_size(), "eos_id": sp.eos_id(), "bos_id": sp.bos_id(), "pad_id": sp.pad_id()},
    )

    # tokenize: one train and one val shard per source; ids sidecars
    tok_dir = run / "tokenize"
    dtype = dtype_for_vocab(sp.vocab_size())
    shards = []
    by_src: dict[str, list[Document]] = {}
    for d in sorted(mix_docs, key=lambda d: d.id):
        by_src.setdefault(d.metadata["source"], []).append(d)
    for src, docs in sorted(by_src.items()):
        for split, part in (("val", docs[:2]), ("train", docs[2:])):
            name = f"{src}/{split}_00000"
            w = ShardWriter(tok_dir / name, dtype)
            for d in part:
                w.add(sp.encode(d.text) + [sp.eos_id()])
            bin_p, idx_p = w.close()
            ids_path = f"{name}.ids.jsonl"
            (tok_dir / ids_path).write_text("".join(json.dumps(d.id) + "\n" for d in part), encoding="utf-8")
            shards.append(
                {
                    "path": name,
                    "sha256": sha256_file(bin_p),
                    "idx_sha256": sha256_file(idx_p),
                    "documents": w.documents,
                    "tokens": w.tokens,
                    "source": src,
                    "split": split,
                    "ids_path": ids_path,
                }
            )
    manifest = {
        "tokenizer": {
            "path": "../tokenizer/tokenizer.model",
            "sha256": sha256_file(run / "tokenizer" / "tokenizer.model"),
            "vocab_size": sp.vocab_size(),
            "eos_id": sp.eos_id(),
        },
        "dtype": str(dtype),
        "seed": 1234,
        "shards": shards,
    }
    TokenManifest.parse(manifest).write(tok_dir)
    total_tokens = sum(s["tokens"] for s in shards)
    write_stats(
        tok_dir,
        stats(
            "tokenize", len(mix_docs), len(mix_docs), {}, sum(len(d.text) for d in mix_docs), 0, tokens_out=total_tokens
        ),
    )
    info["manifest"] = manifest

    # train: the resolved config the trainer writes, and metrics of steps 0..19
    import yaml

    from shikomi.config import load_config

    cfg = load_config(None, {"run_dir": str(run), "train": train or TRAIN})
    (run / "train").mkdir(parents=True, exist_ok=True)
    (run / "train" / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log = MetricsLog(run / "train")
    for step in range(cfg.train.max_steps):
        m = {
            "step": step,
            "tokens": step * 512,
            "loss": 6.0 - 0.2 * step,
            "lr": 1e-3,
            "grad_norm": 1.0,
            "tokens_per_s": 1000.0,
        }
        if step % 10 == 0:
            m["val_loss/ja"] = 5.5 - 0.1 * step
            m["val_loss/en"] = 5.8 - 0.1 * step
            m["val_loss/code"] = 5.9 - 0.1 * step
        log.append(m)
    return info


def test_make_run_roundtrips_tokens(tmp_path):
    """The fixture's tokenizer decodes every document back to its text."""
    from shikomi.tools.inspect import TokenFolder

    info = make_run(tmp_path)
    tf = TokenFolder(info["run"] / "tokenize")
    texts = {d.id: d.text for d in info["mix_docs"]}
    n = 0
    for shard, _r, seq, text in tf.iter_decoded():
        assert text == texts[tf.doc_id(shard, seq)]
        n += 1
    assert n == len(texts)
