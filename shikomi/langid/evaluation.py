"""The language-ID gold set: labelled sentences to measure what the langid stage keeps.

Used by the tests and `make bench`; reads `gold/langid/lingua_testdata.tsv.gz` of the
shared data folder (lingua-py's test data: see that folder's README.md)."""

from __future__ import annotations

import gzip
from pathlib import Path

GOLD_LANGS = ("ja", "en", "zh", "ko")


def gold_sentences(data: Path, langs: tuple[str, ...] = GOLD_LANGS) -> dict[str, list[str]]:
    """Sentences of the gold set by their true language (only `langs`)."""
    rows: dict[str, list[str]] = {}
    with gzip.open(Path(data) / "gold" / "langid" / "lingua_testdata.tsv.gz", "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            if r["kind"] == "sentences" and r["lang"] in langs:
                rows.setdefault(r["lang"], []).append(r["text"])
    return rows
