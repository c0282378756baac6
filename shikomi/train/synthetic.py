"""Small token folders for tests, benchmarks and drills, in the tokenize stage's format.

`write_token_folder` writes shards with `shikomi.core.shards.ShardWriter`, their id
sidecars and `manifest.json` exactly as the tokenize stage does. `synthetic_documents`
makes learnable token sequences (a noisy affine recurrence per source), so a tiny
model's loss falls within a few dozen steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shikomi.core.files import sha256_file
from shikomi.core.schemas import TokenManifest
from shikomi.core.shards import ShardWriter, dtype_for_vocab


def write_token_folder(
    folder: str | Path,
    docs: dict[tuple[str, str], list[tuple[str, list[int]]]],
    vocab_size: int,
    eos_id: int,
    seed: int = 0,
    tokenizer_path: str = "tokenizer.model",
    tokenizer_sha256: str = "0" * 64,
    shards_per_source: int = 1,
) -> Path:
    """docs: {(source, split): [(doc_id, tokens with EOS), ...]} -> token folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for_vocab(vocab_size)
    shards = []
    for (source, split), items in docs.items():
        n = shards_per_source if split == "train" else 1
        for k in range(n):
            part = items[k::n]
            rel = f"{split}/{source}/{source}-{k:05d}"
            w = ShardWriter(folder / rel, dtype)
            for _, toks in part:
                w.add(toks)
            w.close()
            ids_rel = rel + ".ids.jsonl"
            with open(folder / ids_rel, "w", encoding="utf-8") as f:
                for doc_id, _ in part:
                    f.write(json.dumps(doc_id, ensure_ascii=False) + "\n")
            shards.append(
                {
                    "path": rel,
                    "sha256": sha256_file(folder / (rel + ".bin")),
                    "idx_sha256": sha256_file(folder / (rel + ".idx")),
                    "documents": w.documents,
                    "tokens": w.tokens,
                    "source": source,
                    "split": split,
                    "ids_path": ids_rel,
                }
            )
    manifest = {
        "tokenizer": {"path": tokenizer_path, "sha256": tokenizer_sha256, "vocab_size": vocab_size, "eos_id": eos_id},
        "dtype": dtype.name,
        "seed": seed,
        "shards": shards,
    }
    TokenManifest.parse(manifest, folder / TokenManifest.FILENAME).write(folder)
    return folder


def synthetic_documents(
    source: str, n: int, vocab_size: int, eos_id: int, seed: int, min_len: int = 20, max_len: int = 200
) -> list[tuple[str, list[int]]]:
    """Documents of one source: x[t+1] = (a·x[t] + b) mod m in the source's token range,
    with 10% random tokens; each source has its own a, b and range."""
    salt = sum(source.encode())
    rng = np.random.default_rng([seed, salt])
    lo = 3 + (salt % 3) * ((vocab_size - 3) // 3)
    m = (vocab_size - 3) // 3
    a, b = 1 + 2 * (salt % 5), 7 + salt % 11
    out = []
    for i in range(n):
        length = int(rng.integers(min_len, max_len))
        x = int(rng.integers(0, m))
        toks = []
        for _ in range(length):
            x = (a * x + b) % m
            toks.append(lo + (x if rng.random() > 0.1 else int(rng.integers(0, m))))
        toks.append(eos_id)
        out.append((f"{source}-{seed}-{i:05d}", toks))
    return out


def synthetic_token_folder(
    folder: str | Path, vocab_size: int = 256, docs_per_source: int = 120, seed: int = 0, sources=("ja", "en", "code")
) -> Path:
    eos = 2
    weights = {"ja": 5, "en": 4, "code": 1}
    docs = {}
    for src in sources:
        n = max(4, docs_per_source * weights.get(src, 1) // 5)
        items = synthetic_documents(src, n + 8, vocab_size, eos, seed)
        docs[(src, "train")] = items[:n]
        docs[(src, "val")] = items[n:]
    return write_token_folder(folder, docs, vocab_size, eos, seed=seed, shards_per_source=2)
