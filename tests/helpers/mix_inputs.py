"""Small inputs in the layouts the mix stage reads, written from ../shared/data:
a clean-stage folder (ja), SlimPajama (jsonl.zst with meta.redpajama_set_name),
Project Gutenberg (plain text with the PG header and licence) and starcoderdata
(Parquet with content and lang)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

JA_TRAIN = "ja/jawiki_annotated_corpus_leads.jsonl"
JA_HELDOUT = "ja/jsquad_wikipedia_paragraphs.jsonl"


def _jsonl(path: Path) -> list[dict]:
    op = gzip.open if path.suffix == ".gz" else open
    with op(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# duplicate-cluster sizes given to the leads in turn when asked (dedup writes them as
# metadata.dup_cluster_size): mostly singletons, some pairs and triples, a few large clusters
CLUSTER_SIZES = (1, 1, 1, 1, 1, 1, 2, 3, 4, 7, 1, 1, 150, 2, 1, 1200, 1, 30, 1, 1)


def write_clean_stage(
    shared: Path, run_dir: Path, limit: int | None = None, long_doc: bool = True, cluster_sizes: bool = False
) -> Path:
    """<run_dir>/clean/data/00000.parquet from Japanese Wikipedia leads (as the clean stage writes)."""
    rows = _jsonl(shared / JA_TRAIN)[:limit]
    out = []
    for i, r in enumerate(rows):
        meta = {
            "source": "CC-MAIN-2024-22",
            "url": f"https://ja.wikipedia.org/?curid={r['id']}",
            "language": "ja",
            "language_score": 0.99,
        }
        if cluster_sizes:
            meta["dup_cluster_size"] = CLUSTER_SIZES[i % len(CLUSTER_SIZES)]
        out.append({"id": f"jawiki/{r['id']}", "text": r["text"], "metadata": meta})
    if long_doc:
        # one document with a single line far longer than SentencePiece's max_sentence_length
        text = "".join(r["text"].replace("\n", "") for r in rows[:60])
        out.append(
            {
                "id": "jawiki/long-line",
                "text": text,
                "metadata": {
                    "source": "CC-MAIN-2024-22",
                    "url": "https://ja.wikipedia.org/long",
                    "language": "ja",
                    "language_score": 0.99,
                    **({"dup_cluster_size": 1} if cluster_sizes else {}),
                },
            }
        )
    d = run_dir / "clean" / "data"
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(out), d / "00000.parquet", compression="zstd")
    return run_dir / "clean"


def write_slimpajama(shared: Path, dest: Path) -> Path:
    """Two chunks of jsonl.zst; speeches in kept sets, plus Book and GitHub documents
    that the default exclude_sets must drop. (The CCNet pages stay out: held-out English.)"""
    dest.mkdir(parents=True, exist_ok=True)
    speeches = _jsonl(shared / "en/us_inaugural_addresses_1789-2021.jsonl") + _jsonl(
        shared / "en/us_state_of_the_union_1945-2006.jsonl"
    )
    code = _jsonl(shared / "code/python3.11.7_stdlib_toplevel.jsonl.gz")[:6]
    rows = []
    for i, r in enumerate(speeches):
        rows.append(
            {"text": r["text"], "meta": {"redpajama_set_name": "RedPajamaC4" if i % 2 else "RedPajamaCommonCrawl"}}
        )
    shakespeare = (shared / "en/tinyshakespeare_input.txt").read_text(encoding="utf-8")
    for i in range(5):
        rows.append({"text": shakespeare[i * 5000 : (i + 1) * 5000], "meta": {"redpajama_set_name": "RedPajamaBook"}})
    for r in code:
        rows.append({"text": r["text"], "meta": {"redpajama_set_name": "RedPajamaGithub"}})
    half = len(rows) // 2
    for n, chunk in enumerate([rows[:half], rows[half:]]):
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk).encode("utf-8")
        (dest / f"example_train_{n}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    return dest


PG_HEADER = (
    "The Project Gutenberg eBook of {title}\n\nThis eBook is for the use of anyone anywhere.\n\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK {title} ***\n"
)
PG_FOOTER = "\n*** END OF THE PROJECT GUTENBERG EBOOK {title} ***\n\nSection 1. General Terms of Use\n"


def write_gutenberg(shared: Path, dest: Path, books: int = 12) -> Path:
    """Plain-text books cut from Tiny Shakespeare, with the PG header and licence."""
    dest.mkdir(parents=True, exist_ok=True)
    text = (shared / "en/tinyshakespeare_input.txt").read_text(encoding="utf-8")
    n = len(text) // books
    for i in range(books):
        title = f"SHAKESPEARE PART {i + 1}"
        body = text[i * n : (i + 1) * n]
        (dest / f"pg{1000 + i}.txt").write_text(
            PG_HEADER.format(title=title) + body + PG_FOOTER.format(title=title), encoding="utf-8"
        )
    return dest


def write_starcoder(shared: Path, dest: Path, limit: int | None = None) -> Path:
    """starcoderdata layout: Parquet with content, lang (and repo metadata); Python
    modules of the standard library plus a few JavaScript rows to filter out."""
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in _jsonl(shared / "code/python3.11.7_stdlib_toplevel.jsonl.gz")[:limit]:
        rows.append(
            {
                "id": f"cpython/{r['path']}",
                "content": r["text"],
                "lang": "python",
                "max_stars_repo_path": r["path"],
                "max_stars_repo_name": "python/cpython",
                "max_stars_count": 1,
            }
        )
    for i in range(4):
        rows.append(
            {
                "id": f"js/{i}",
                "content": f"function f{i}(x) {{ return x + {i}; }}\n",
                "lang": "javascript",
                "max_stars_repo_path": f"f{i}.js",
                "max_stars_repo_name": "example/js",
                "max_stars_count": 0,
            }
        )
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half]), dest / "train-00000-of-00002.parquet", compression="zstd")
    pq.write_table(pa.Table.from_pylist(rows[half:]), dest / "train-00001-of-00002.parquet", compression="zstd")
    return dest


def mix_sources(root: Path) -> list[dict]:
    return [
        {"name": "ja"},
        {"name": "en", "path": str(root / "slimpajama"), "format": "slimpajama"},
        {"name": "en", "path": str(root / "gutenberg"), "format": "gutenberg"},
        {"name": "code", "path": str(root / "starcoder"), "format": "starcoder", "languages": ["python"]},
    ]


def heldout_texts(shared: Path, code_from: int) -> dict[str, list[str]]:
    """Text no test mix contains: JSQuAD paragraphs (ja), CCNet pages (en), the
    standard-library modules after `code_from` (code)."""
    return {
        "ja": [r["text"] for r in _jsonl(shared / JA_HELDOUT)],
        "en": [r["text"] for f in sorted((shared / "en").glob("dolma_ccnet_*.jsonl.gz")) for r in _jsonl(f)],
        "code": [r["text"] for r in _jsonl(shared / "code/python3.11.7_stdlib_toplevel.jsonl.gz")[code_from:]],
    }
