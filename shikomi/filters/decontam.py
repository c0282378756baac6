"""Benchmark decontamination: the last step of clean.

The benchmark files listed in `clean.decontaminate.benchmarks` (JSONL, JSON lines,
Parquet or CSV; the text fields to use; a name per benchmark) are turned into one
index of hashed n-grams: character n-grams for Japanese items, word n-grams for the
others (GPT-3/Llama/OLMo use word 13-grams). Text is NFKC-normalised, lower-cased,
and only letters and digits are kept, so punctuation, spacing and full/half-width
changes do not hide an overlap. A 64-bit polynomial hash of each window (numpy,
stable across processes and machines) goes into a sorted array with the item it
came from; the index is built once per run and cached next to the stage output
(`clean/decontaminate/index-<fingerprint>.npz`).

A document sharing one n-gram with an item is dropped with
`reject_reason = "decontaminate/<benchmark>:<item id>"` (counted per benchmark in
stats.json), or with `action: cut`, the overlapping spans are cut out of it (the
document is dropped only if no letter or digit is left).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import re
import time
import unicodedata
from pathlib import Path

import numpy as np

from shikomi.core.rules import Rule
from shikomi.errors import UserError

WORD = re.compile(r"[^\W_]+")
NON_WORD = re.compile(r"[\W_]+")
MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial hash


def normalise(text: str) -> tuple[str, np.ndarray]:
    """(letters and digits of the NFKC, lower-cased text; for each, its offset in `text`)."""
    t = unicodedata.normalize("NFKC", text)
    if len(t) == len(text):
        low = t.lower()
        if len(low) == len(t):
            spans = [m.span() for m in WORD.finditer(low)]
            if not spans:
                return "", np.zeros(0, dtype=np.int64)
            kept = "".join(low[s:e] for s, e in spans)
            pos = np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in spans])
            return kept, pos
    chars, pos = [], []
    for i, ch in enumerate(text):  # slow path: a character whose normal form changes length
        for c in unicodedata.normalize("NFKC", ch).lower():
            if WORD.match(c):
                chars.append(c)
                pos.append(i)
    return "".join(chars), np.asarray(pos, dtype=np.int64)


def normalise_text(text: str) -> str:
    """`normalise(text)[0]` without the offsets (index building)."""
    return NON_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def codepoints(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def window_hashes(units: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of every window of `n` units (wrapping arithmetic)."""
    m = len(units) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    # H_a[i] * MULT**b + H_b[i + a] = H_(a+b)[i]: combine windows of doubling width
    total = len(units)
    cur, width = units + np.uint64(1), 1  # H_1
    out, out_width = None, 0
    with np.errstate(over="ignore"):
        k = n
        while k:
            if k & 1:
                if out is None:
                    out, out_width = cur, width
                else:
                    keep = total - out_width - width + 1
                    out = out[:keep] * _power(width) + cur[out_width : out_width + keep]
                    out_width += width
            k >>= 1
            if k:
                keep = total - 2 * width + 1
                cur = cur[:keep] * _power(width) + cur[width : width + keep]
                width *= 2
    return out[:m]


def _power(k: int) -> np.uint64:
    return np.uint64(pow(int(MULT), k, 1 << 64))


def word_units(words: list[str]) -> np.ndarray:
    """A stable 64-bit value per word."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") | 1 for w in words],
        dtype=np.uint64,
    )


def japanese_shares(norms: list[str]) -> np.ndarray:
    """Share of kana and kanji in each normal form (vectorised over all of them)."""
    lens = np.array([len(x) for x in norms], dtype=np.int64)
    if not lens.sum():
        return np.zeros(len(norms))
    cp = codepoints("".join(norms))
    ja = ((cp >= 0x3040) & (cp <= 0x30FF)) | ((cp >= 0x3400) & (cp <= 0x9FFF)) | ((cp >= 0xF900) & (cp <= 0xFAFF))
    csum = np.concatenate([[0], np.cumsum(ja)])
    ends = np.cumsum(lens)
    counts = csum[ends] - csum[ends - lens]
    return counts / np.maximum(lens, 1)


# --- benchmark files --------------------------------------------------------------------


def read_benchmark(spec) -> list[tuple[str, list[str]]]:
    """[(item id, [texts])] of one benchmark file."""
    p = Path(spec.path)
    if not p.is_file():
        raise UserError(f"clean.decontaminate: benchmark '{spec.name}': file not found: {p}")
    fmt = spec.format
    if fmt == "auto":
        suffix = p.suffix.lower()
        fmt = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}.get(suffix, "jsonl")
    rows: list[dict]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(p).to_pylist()
    elif fmt == "csv":
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if p.suffix.lower() == ".tsv" else ","))
    else:
        raw = p.read_text(encoding="utf-8")
        try:
            data = json.loads(raw)
            rows = data if isinstance(data, list) else data.get("data", [data])
        except json.JSONDecodeError:
            rows = []
            for i, line in enumerate(raw.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise UserError(f"clean.decontaminate: {p}:{i}: not JSON") from None
    items = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"clean.decontaminate: {p}: row {i} is not an object")
        missing = [f for f in spec.fields if f not in row]
        if missing and i == 0:
            raise UserError(
                f"clean.decontaminate: benchmark '{spec.name}': {p} has no field(s) {missing}; "
                f"fields: {', '.join(map(str, row))}"
            )
        texts = [str(row[f]) for f in spec.fields if row.get(f) not in (None, "")]
        item_id = str(row[spec.id_field]) if spec.id_field and spec.id_field in row else str(i)
        items.append((item_id, texts))
    return items


# --- the index --------------------------------------------------------------------------


class NgramIndex:
    """Sorted n-gram hashes (chars and words) and, for each, the item it came from."""

    def __init__(self, chars, word_h, word_item, items, benches, info):
        self.chars = chars  # {n: (sorted hashes, item numbers)}
        self.word_h, self.word_item = word_h, word_item
        self.items = items  # "benchmark\titem id" per item number
        self.benches = benches
        self.info = info

    @classmethod
    def build(cls, cfg) -> NgramIndex:
        t0 = time.perf_counter()
        char_parts: dict[int, list] = {}
        word_parts, items = [], []
        too_short = {}
        for b in cfg.benchmarks:
            short = 0
            rows = []  # (item number, text, normal form)
            for item_id, texts in read_benchmark(b):
                k = len(items)
                items.append(f"{b.name}\t{item_id}")
                rows += [(k, text, normalise_text(text)) for text in texts]
            if b.ngram == "auto":
                japanese = japanese_shares([r[2] for r in rows]) >= cfg.japanese_share
            else:
                japanese = np.full(len(rows), b.ngram == "chars")
            n = b.char_ngram or cfg.char_ngram
            for (k, text, norm), ja in zip(rows, japanese.tolist()):
                if ja:
                    if len(norm) < n:
                        short += 1
                        continue
                    char_parts.setdefault(n, []).append((k, norm))
                else:
                    words = WORD.findall(unicodedata.normalize("NFKC", text).lower())
                    if len(words) < cfg.word_ngram:
                        short += 1
                        continue
                    word_parts.append((k, words))
            too_short[b.name] = short
        chars = {n: _char_index(parts, n) for n, parts in sorted(char_parts.items())}
        word_h, word_item = _word_index(word_parts, cfg.word_ngram)
        info = {
            "items": len(items),
            "char_ngrams": {n: int(len(h)) for n, (h, _) in chars.items()},
            "word_ngrams": int(len(word_h)),
            "too_short": too_short,
            "build_s": round(time.perf_counter() - t0, 2),
        }
        return cls(chars, word_h, word_item, items, [b.name for b in cfg.benchmarks], info)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            **{f"char_h_{n}": h for n, (h, _) in self.chars.items()},
            **{f"char_item_{n}": it for n, (_, it) in self.chars.items()},
            word_h=self.word_h,
            word_item=self.word_item,
            items=np.array(self.items, dtype=str),
            meta=np.array(json.dumps({"benches": self.benches, "info": self.info})),
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> NgramIndex:
        z = np.load(path)
        meta = json.loads(str(z["meta"]))
        ns = sorted(int(k.rsplit("_", 1)[1]) for k in z.files if k.startswith("char_h_"))
        chars = {n: (z[f"char_h_{n}"], z[f"char_item_{n}"]) for n in ns}
        return cls(chars, z["word_h"], z["word_item"], list(z["items"]), meta["benches"], meta["info"])

    def matches(self, text: str, word_n: int, want_spans: bool = False):
        """(matched item numbers, first match first; with `want_spans`, the matched
        windows as (start, end) offsets into `text`)."""
        norm, pos = normalise(text) if want_spans else (normalise_text(text), None)
        found, spans = [], []
        units = codepoints(norm)
        for n, (keys, vals) in self.chars.items():
            if len(keys) and len(norm) >= n:
                item, where = _lookup(keys, vals, window_hashes(units, n))
                found += item.tolist()
                if want_spans:
                    spans += [(int(pos[i]), int(pos[i + n - 1]) + 1) for i in where]
        if len(self.word_h):
            low = unicodedata.normalize("NFKC", text).lower()
            raw = list(WORD.finditer(low))
            if len(raw) >= word_n:
                h = window_hashes(word_units([m.group() for m in raw]), word_n)
                item, where = _lookup(self.word_h, self.word_item, h)
                found += item.tolist()
                if want_spans and len(low) == len(text):  # offsets of the normal form are offsets of the text
                    spans += [(raw[i].start(), raw[i + word_n - 1].end()) for i in where]
        return found, spans


def _lookup(keys: np.ndarray, vals: np.ndarray, h: np.ndarray):
    i = np.searchsorted(keys, h)
    i[i >= len(keys)] = 0
    hit = np.nonzero(keys[i] == h)[0]
    return vals[i[hit]], hit


def _dedupe(h: np.ndarray, item: np.ndarray):
    # windows come in item order; unique's first index (stable sort) is the first item
    h, first = np.unique(h, return_index=True)
    return h, item[first]


def _char_index(parts, n):
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    # one array of every item's characters, separated by 0, hashed in one pass
    text = "\0".join(norm for _, norm in parts)
    units = codepoints(text)
    h = window_hashes(units, n)
    lens = np.array([len(norm) for _, norm in parts], dtype=np.int64)
    part = np.repeat(np.arange(len(parts), dtype=np.int32), lens + 1)[: len(h)]  # the part of each window
    starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
    ok = np.arange(len(h)) - starts[part] <= lens[part] - n  # the window ends inside its part
    item = np.array([k for k, _ in parts], dtype=np.int32)[part[ok]]
    return _dedupe(h[ok], item)


def _word_index(parts, n):
    hs, its = [], []
    for k, words in parts:
        h = window_hashes(word_units(words), n)
        hs.append(h)
        its.append(np.full(len(h), k, dtype=np.int32))
    if not hs:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    return _dedupe(np.concatenate(hs), np.concatenate(its))


def fingerprint(cfg) -> str:
    d = cfg.model_dump()
    d["files"] = []
    for b in cfg.benchmarks:
        st = Path(b.path).stat()
        d["files"].append([str(Path(b.path).resolve()), st.st_size, int(st.st_mtime)])
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build(cfg, cache_dir: str | None) -> NgramIndex:
    """The index, built once per run (under a file lock) and cached in `cache_dir`."""
    if not cache_dir:
        return NgramIndex.build(cfg)
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"index-{fingerprint(cfg)}.npz"
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.is_file():
                return NgramIndex.load(path)
            idx = NgramIndex.build(cfg)
            idx.save(path)
            (d / "index.json").write_text(json.dumps({"file": path.name, **idx.info}, indent=2))
            return idx
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- the step -------------------------------------------------------------------------


class Decontaminate(Rule):
    """Drops (or cuts) documents that share an n-gram with a benchmark item."""

    name = "decontaminate"
    rule = "decontaminate"

    def __init__(self, cfg, cache_dir: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.cache_dir = cache_dir
        self._index = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_index"] = None
        return state

    @property
    def index(self) -> NgramIndex:
        if self._index is None:
            self._index = load_or_build(self.cfg, self.cache_dir)
        return self._index

    def run(self, data, rank: int = 0, world_size: int = 1):
        _ = self.index
        self._cut = {}
        try:
            yield from super().run(data, rank, world_size)
        finally:
            for bench, (docs, chars) in self._cut.items():
                self.stat_update(f"cut/{bench}", value=docs)
                self.stat_update(f"cut_chars/{bench}", value=chars)

    def check(self, doc):
        idx = self.index
        found, spans = idx.matches(doc.text, self.cfg.word_ngram, want_spans=self.cfg.action == "cut")
        if not found:
            return None
        bench, item_id = idx.items[found[0]].split("\t", 1)
        if self.cfg.action == "drop":
            return f"{self.rule}/{bench}", item_id
        text = cut_spans(doc.text, spans)
        c = self._cut.setdefault(bench, [0, 0])
        c[0] += 1
        c[1] += len(doc.text) - len(text)
        if not WORD.search(text):  # nothing but punctuation left
            return f"{self.rule}/{bench}", item_id
        doc.text = text
        return None

    def apply_text(self, text: str):
        """(reason, new text) for one text outside a pipeline; reason None when kept."""
        from datatrove.data import Document

        self._cut = {}
        doc = Document(text=text, id="x")
        res = self.check(doc)
        if res:
            return f"{res[0]}:{res[1]}", text
        return None, doc.text


def cut_spans(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for s, e in sorted(spans):
        if e <= pos:
            continue
        out.append(text[pos : max(s, pos)])
        pos = e
    out.append(text[pos:])
    return "".join(out)
