"""mix, train-tokenizer and tokenize throughput, next to their anchors in the same run:

- tokenize stage (Parquet in -> Megatron shards + manifest, one task on one core)
  vs raw `sentencepiece` `encode` (batches of 256, one thread) of the same texts in memory;
- mix stage (count, plan, sample, write; one task) vs a plain datatrove read of the
  same inputs.

Input: real text of ../shared/data (Japanese Wikipedia leads and JSQuAD paragraphs,
English speeches and Shakespeare, CPython standard-library modules) as a clean-stage
folder (ja), JSONL (en) and starcoderdata Parquet (code).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path


def _jsonl(p: Path) -> list[dict]:
    op = gzip.open if p.suffix == ".gz" else open
    with op(p, "rt", encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def _write_inputs(data: Path, root: Path, quick: bool) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ja = _jsonl(data / "ja/jawiki_annotated_corpus_leads.jsonl") + _jsonl(data / "ja/jsquad_wikipedia_paragraphs.jsonl")
    en = _jsonl(data / "en/us_inaugural_addresses_1789-2021.jsonl") + _jsonl(
        data / "en/us_state_of_the_union_1945-2006.jsonl"
    )
    shakespeare = (data / "en/tinyshakespeare_input.txt").read_text(encoding="utf-8")
    en += [{"text": shakespeare[i : i + 4000]} for i in range(0, len(shakespeare), 4000)]
    code = _jsonl(data / "code/python3.11.7_stdlib_toplevel.jsonl.gz")
    if quick:
        ja, en, code = ja[:2000], en[:120], code[:50]
    d = root / "run" / "clean" / "data"
    d.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(
            [{"id": f"ja/{i}", "text": r["text"], "metadata": {"source": "web"}} for i, r in enumerate(ja)]
        ),
        d / "00000.parquet",
        compression="zstd",
    )
    (root / "en").mkdir()
    with open(root / "en" / "en.jsonl", "w", encoding="utf-8") as f:
        for i, r in enumerate(en):
            f.write(json.dumps({"id": f"en/{i}", "text": r["text"]}, ensure_ascii=False) + "\n")
    (root / "code").mkdir()
    pq.write_table(
        pa.Table.from_pylist([{"id": f"code/{r['path']}", "content": r["text"], "lang": "python"} for r in code]),
        root / "code" / "train-00000.parquet",
        compression="zstd",
    )
    return {"ja": len(ja), "en": len(en), "code": len(code)}


def bench(data: Path, quick: bool) -> dict:
    import pyarrow.parquet as pq
    import sentencepiece as spm

    from shikomi.config import load_config
    from shikomi.executor.run import run_stage
    from shikomi.mix.sources import reader_for_source
    from shikomi.pipeline.chain import build_stage

    root = Path(tempfile.mkdtemp(prefix="shikomi-bench-tok-"))
    try:
        n_docs = _write_inputs(data, root, quick)
        run = root / "run"
        vocab = 4000 if quick else 8000
        cfg = load_config(
            None,
            {
                "run_dir": str(run),
                "seed": 1,
                "executor": {"tasks": 1, "workers": 1},
                "mix": {
                    "sources": [
                        {"name": "ja"},
                        {"name": "en", "path": str(root / "en"), "format": "jsonl"},
                        {"name": "code", "path": str(root / "code"), "format": "starcoder"},
                    ]
                },
                "tokenizer": {"vocab_size": vocab, "character_coverage": 0.9995, "num_threads": 1, "sample_mb": 50},
                "tokenize": {"val_min_docs": 10},
            },
        )

        # mix vs a plain read of the same inputs
        t0 = time.perf_counter()
        in_bytes = 0
        for src in cfg.mix.sources:
            path = src.path or str(run / "clean")
            for doc in reader_for_source(src, path).run(None, 0, 1):
                in_bytes += len(doc.text.encode("utf-8"))
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_stage(build_stage("mix", cfg), cfg)
        t_mix = time.perf_counter() - t0
        plan = json.loads((run / "mix" / "plan.json").read_text())

        t0 = time.perf_counter()
        run_stage(build_stage("train-tokenizer", cfg), cfg)
        t_train = time.perf_counter() - t0
        meta = json.loads((run / "tokenizer" / "tokenizer.json").read_text())

        # tokenize every input document once (more text than the no-repeat mix holds):
        # a stage folder with metadata.source, and the same texts in memory for the anchor
        import pyarrow as pa

        texts, rows_in = [], []
        for src in cfg.mix.sources:
            path = src.path or str(run / "clean")
            for doc in reader_for_source(src, path).run(None, 0, 1):
                texts.append(doc.text)
                rows_in.append({"id": doc.id, "text": doc.text, "metadata": {"source": src.name}})
        all_dir = root / "all" / "data"
        all_dir.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows_in), all_dir / "00000.parquet", compression="zstd")
        tok_cfg = cfg.model_copy(update={"tokenize": cfg.tokenize.model_copy(update={"input": str(root / "all")})})
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer" / "tokenizer.model"))
        best_raw = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            n_tok = 0
            for i in range(0, len(texts), 256):
                n_tok += sum(len(x) for x in sp.encode(texts[i : i + 256], num_threads=1))
            best_raw = min(best_raw, time.perf_counter() - t0)

        best_stage = float("inf")
        for _ in range(2):
            shutil.rmtree(run / "tokenize", ignore_errors=True)
            t0 = time.perf_counter()
            st = run_stage(build_stage("tokenize", tok_cfg), tok_cfg)
            best_stage = min(best_stage, time.perf_counter() - t0)
        man = json.loads((run / "tokenize" / "manifest.json").read_text())
        tokens = sum(s["tokens"] for s in man["shards"])

        epochs = ", ".join(f"{g} {s['epochs']}" for g, s in plan["sources"].items())
        rows = [
            ["raw sentencepiece encode (in memory)", f"{mb:.1f}", f"{best_raw:.2f}", f"{mb / best_raw:.1f}", "1.00"],
            [
                "shikomi tokenize stage (Parquet -> shards + manifest)",
                f"{mb:.1f}",
                f"{best_stage:.2f}",
                f"{mb / best_stage:.1f}",
                f"{best_raw / best_stage:.2f}",
            ],
            [
                "plain read of the mix inputs",
                f"{in_bytes / 1e6:.1f}",
                f"{t_read:.2f}",
                f"{in_bytes / 1e6 / t_read:.1f}",
                "",
            ],
            [
                "shikomi mix stage (count, plan, sample, write)",
                f"{in_bytes / 1e6:.1f}",
                f"{t_mix:.2f}",
                f"{in_bytes / 1e6 / t_mix:.1f}",
                f"{t_mix / t_read:.1f}x the read",
            ],
            [
                f"shikomi train-tokenizer ({meta['vocab_size']} pieces, {meta['sample']['lines']:,} lines)",
                f"{meta['sample']['bytes'] / 1e6:.1f}",
                f"{t_train:.2f}",
                f"{meta['sample']['bytes'] / 1e6 / t_train:.2f}",
                "",
            ],
        ]
        return {
            "title": "mix / train-tokenizer / tokenize (one task, one core)",
            "columns": ["variant", "MB", "seconds", "MB/s per core", "ratio"],
            "rows": rows,
            "notes": [
                f"Input: {n_docs['ja']:,} ja, {n_docs['en']:,} en, {n_docs['code']:,} code documents of ../shared/data; "
                f"mix ratios 5:4:1 (epochs {epochs}); "
                f"{tokens:,} tokens in {len(man['shards'])} shards. "
                f"Tokenize ratio = raw time / stage time (stage includes reading Parquet, the merge, "
                f"shuffle, sha256 and the executor); best of 2 runs each.",
            ],
            "raw": {
                "mb": mb,
                "raw_s": best_raw,
                "stage_s": best_stage,
                "mix_s": t_mix,
                "read_s": t_read,
                "train_s": t_train,
                "tokens": tokens,
                "stage_stats": {k: st.get(k) for k in ("tokens_out", "wall_s")},
            },
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
