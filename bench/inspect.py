"""Benchmark of `shikomi find` / `inspect` on a token folder built from real text.

Anchors, on the same documents in the same run:
  - exact search: `find` decodes every shard sequence with SentencePiece and
    searches it; the anchor searches the raw text of the mix Parquet with Arrow
    (`pyarrow.compute.match_substring`), i.e. what a search without the token
    folder costs. The ratio is the price of searching what the model actually read.
  - steps of a document: `StepIndex` (inverts the sample order per epoch, then
    checks the candidate steps) against calling `step_documents` for every step.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from pathlib import Path


def _texts(data: Path, quick: bool) -> dict[str, list[str]]:
    ja = [
        json.loads(x)["text"]
        for x in (data / "ja" / "jawiki_annotated_corpus_leads.jsonl").read_text("utf-8").splitlines()
    ]
    ja += [
        json.loads(x)["text"]
        for x in (data / "ja" / "jsquad_wikipedia_paragraphs.jsonl").read_text("utf-8").splitlines()
    ]
    en = [
        json.loads(x)["text"]
        for x in (data / "en" / "us_inaugural_addresses_1789-2021.jsonl").read_text("utf-8").splitlines()
    ]
    en += [
        json.loads(x)["text"]
        for x in (data / "en" / "us_state_of_the_union_1945-2006.jsonl").read_text("utf-8").splitlines()
    ]
    with gzip.open(data / "code" / "python3.11.7_stdlib_toplevel.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(x)["text"] for x in f]
    if quick:
        ja, en, code = ja[:1500], en[:40], code[:40]
    return {"ja": ja, "en": en, "code": code}


def _build(root: Path, texts: dict[str, list[str]]):
    """mix/data Parquet, a SentencePiece model and a token folder with ids sidecars."""
    import sentencepiece as spm
    from datatrove.data import Document

    from shikomi.core.files import sha256_file
    from shikomi.core.shards import ShardWriter, dtype_for_vocab
    from shikomi.core.writers import DocWriter

    docs = [
        Document(t, f"{src}-{i:05d}", metadata={"source": src}) for src, ts in texts.items() for i, t in enumerate(ts)
    ]
    w = DocWriter(str(root / "mix" / "data"))
    with w:
        for d in docs:
            w.write(d, 0)
    (root / "tokenizer").mkdir(parents=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([d.text for d in docs]),
        model_prefix=str(root / "tokenizer" / "tokenizer"),
        vocab_size=4000,
        model_type="unigram",
        character_coverage=0.9995,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        bos_id=-1,
        eos_id=1,
        unk_id=0,
        pad_id=2,
        input_sentence_size=20000,
        shuffle_input_sentence=True,
        max_sentence_length=1 << 17,
        minloglevel=2,
        num_threads=1,
    )
    sp = spm.SentencePieceProcessor(model_file=str(root / "tokenizer" / "tokenizer.model"))
    tok = root / "tokenize"
    shards = []
    dtype = dtype_for_vocab(sp.vocab_size())
    for src in texts:
        part = [d for d in docs if d.metadata["source"] == src]
        for split, sel in (("val", part[:5]), ("train", part[5:])):
            name = f"{src}/{split}_00000"
            sw = ShardWriter(tok / name, dtype)
            for _doc, ids in zip(sel, sp.encode([d.text for d in sel])):
                sw.add(ids + [sp.eos_id()])
            b, i = sw.close()
            (tok / f"{name}.ids.jsonl").write_text("".join(json.dumps(d.id) + "\n" for d in sel), encoding="utf-8")
            shards.append(
                {
                    "path": name,
                    "sha256": sha256_file(b),
                    "idx_sha256": sha256_file(i),
                    "documents": sw.documents,
                    "tokens": sw.tokens,
                    "source": src,
                    "split": split,
                    "ids_path": f"{name}.ids.jsonl",
                }
            )
    (tok / "manifest.json").write_text(
        json.dumps(
            {
                "tokenizer": {
                    "path": "../tokenizer/tokenizer.model",
                    "sha256": "",
                    "vocab_size": sp.vocab_size(),
                    "eos_id": sp.eos_id(),
                },
                "dtype": str(dtype),
                "seed": 0,
                "shards": shards,
            }
        )
    )
    return docs


def bench(data: Path, quick: bool) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shikomi.config import load_config
    from shikomi.tools.find import StepIndex, search
    from shikomi.tools.inspect import TokenFolder
    from shikomi.train.data import step_documents

    texts = _texts(data, quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = _build(root, texts)
        n_docs = len(docs)
        mb = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
        src_doc = next(d for d in docs[len(docs) // 3 :] if d.metadata["source"] == "ja" and len(d.text) >= 200)
        query = src_doc.text[100:130]

        # anchor: Arrow substring search over the mix Parquet text
        t0 = time.perf_counter()
        hits_anchor = 0
        for f in sorted((root / "mix" / "data").glob("*.parquet")):
            col = pq.read_table(f, columns=["text"]).column("text")
            hits_anchor += int(pc.sum(pc.match_substring(col, query)).as_py() or 0)
        t_anchor = time.perf_counter() - t0

        t0 = time.perf_counter()
        tf = TokenFolder(root / "tokenize")
        exact, _ = search(tf, query, False, 5, 0.5, 10)
        t_find = time.perf_counter() - t0
        assert len(exact) == hits_anchor, (len(exact), hits_anchor)

        t0 = time.perf_counter()
        _, similar = search(TokenFolder(root / "tokenize"), query + "X", True, 5, 0.5, 10)
        t_ngram = time.perf_counter() - t0

        rows.append(
            [
                "exact search: Arrow match_substring on mix Parquet (anchor)",
                n_docs,
                f"{mb:.1f}",
                f"{t_anchor:.3f}",
                f"{mb / t_anchor:.1f}",
                "1.00",
            ]
        )
        rows.append(
            [
                "exact search: `shikomi find` (decode shards + search)",
                n_docs,
                f"{mb:.1f}",
                f"{t_find:.3f}",
                f"{mb / t_find:.1f}",
                f"{t_find / t_anchor:.2f}",
            ]
        )
        rows.append(
            [
                "`shikomi find --ngram` (decode + character 5-gram containment)",
                n_docs,
                f"{mb:.1f}",
                f"{t_ngram:.3f}",
                f"{mb / t_ngram:.1f}",
                f"{t_ngram / t_anchor:.2f}",
            ]
        )

        # steps of a document: StepIndex vs step_documents over every step
        cfg = load_config(
            None, {"train": {"seq_len": 256, "global_batch_size": 16, "max_steps": 200 if quick else 400, "seed": 3}}
        )
        tc = cfg.train
        # a document the run reads at step max_steps // 2
        mid = step_documents(root / "tokenize", tc, tc.max_steps // 2)[0]
        target = next(s for s in tf.shards if s["path"] == mid["shard"])
        seq = mid["sequence"]
        t0 = time.perf_counter()
        brute = {}
        for s in range(tc.max_steps):
            for d in step_documents(root / "tokenize", tc, s):
                if d["shard"] == target["path"] and d["sequence"] == seq:
                    brute.setdefault(s, set()).add(d["sample"])
        t_brute = time.perf_counter() - t0
        t0 = time.perf_counter()
        idx = StepIndex(root / "tokenize", tc, tc.max_steps)
        got = {e["step"]: set(e["samples"]) for e in idx.steps_of(target["path"], seq)}
        t_idx = time.perf_counter() - t0
        assert got == brute, (got, brute)
        rows.append(
            [
                f"steps of one document over {tc.max_steps} steps: step_documents per step (anchor)",
                "",
                "",
                f"{t_brute:.3f}",
                "",
                "1.00",
            ]
        )
        rows.append(
            [
                f"steps of one document: StepIndex ({len(got)} steps found)",
                "",
                "",
                f"{t_idx:.3f}",
                "",
                f"{t_idx / t_brute:.3f}",
            ]
        )
    return {
        "title": "inspect / find: searching the token shards (real ja/en/code text)",
        "columns": ["what", "documents", "MB", "seconds", "MB/s", "time vs anchor"],
        "rows": rows,
        "notes": [
            f"query: a 30-character span of a real Japanese Wikipedia paragraph; {len(exact)} exact hit(s), "
            f"{len(similar)} n-gram hit(s); SentencePiece unigram 4k vocabulary, one core."
        ],
    }
