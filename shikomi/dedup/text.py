"""Text normalisation and hashing for dedup: exact keys, character shingles, lines.

Shingle hashes are computed for a whole document at once with numpy: the text
becomes an array of code points and the n-gram hash is a polynomial over them
(wrapping uint64 arithmetic) followed by the MurmurHash3 64-bit finaliser.
`shingle_hash64` is the same function for one n-gram string, used to check the
vectorised path against datasketch, which hashes one string at a time.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import xxhash

_WS = re.compile(r"\s+")
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")

# polynomial base of the n-gram hash (an odd 64-bit constant)
_POLY = np.uint64(0x9E3779B97F4A7C15)
_POLY_INT = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def fold(text: str) -> str:
    """NFKC and whitespace folded: the text exact dedup compares."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def normalize(text: str, lowercase: bool = True, fold_digits: bool = True) -> str:
    """The text shingles are taken from: `fold`, lowercased, ASCII digits mapped to 0."""
    return normalize_folded(fold(text), lowercase, fold_digits)


def normalize_folded(t: str, lowercase: bool = True, fold_digits: bool = True) -> str:
    """`normalize` of a text that is already `fold`ed."""
    if lowercase:
        t = t.lower()
    if fold_digits:
        # after NFKC digits are ASCII; in UTF-8 their bytes never occur inside other characters
        t = t.encode("utf-8").translate(_DIGITS).decode("utf-8")
    return t


def exact_key(folded: str) -> int:
    """64-bit key of the folded text (xxh3)."""
    return xxhash.xxh3_64_intdigest(folded.encode("utf-8"))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finaliser on a uint64 array (wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def shingles(text: str, n: int) -> list[str]:
    """The character n-grams of a normalised text (the whole text when shorter than n)."""
    if not text:
        return []
    if len(text) < n:
        return [text]
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def shingle_hash64(gram: str) -> int:
    """64-bit hash of one n-gram string (reference for `shingle_hashes`)."""
    h = 0
    for ch in gram:
        h = (h * _POLY_INT + ord(ch)) & _M64
    return _fmix64_int(h)


def shingle_hash32(gram: str) -> int:
    """32-bit shingle hash fed to MinHash: the top half of `shingle_hash64`."""
    return shingle_hash64(gram) >> 32


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """uint64 hashes of every character n-gram of `text`, in order (vectorised)."""
    if not text:
        return np.zeros(0, dtype=np.uint64)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    m = len(cps) - n + 1
    if m <= 0:
        n, m = len(cps), 1
    return fmix64(_rolling(cps, n, m))


def _rolling(cps: np.ndarray, n: int, m: int) -> np.ndarray:
    """The polynomial hash (`shingle_hash64` before its final mix) of the n code points
    starting at each of the first m positions of `cps`."""
    h = np.zeros(m, dtype=np.uint64)
    for i in range(n):
        h *= _POLY
        h += cps[i : i + m]
    return h


def concat_shingle_hashes(texts: list[str], n: int) -> np.ndarray:
    """`shingle_hashes` of each text (every text at least n characters long), concatenated
    in order: one pass over the code points of all texts, keeping the n-grams that do not
    cross a boundary between two texts."""
    if not texts:
        return np.zeros(0, dtype=np.uint64)
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    h = _rolling(cps, n, len(cps) - n + 1)
    del cps
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    counts = lengths - n + 1
    # position of the k-th kept n-gram: its index in its text plus the text's start
    starts = np.cumsum(lengths) - lengths
    keep = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return fmix64(h[keep])


def shingle_sets(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted unique shingle hashes of each text (`np.unique(shingle_hashes(t, n))`),
    for a batch of texts at once: (values of all texts in order, counts per text)."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    ends = np.cumsum(counts)
    h = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint64)
    long = np.flatnonzero(lengths >= n)
    if len(long):
        pos = np.repeat(ends[long] - counts[long], counts[long])
        pos += np.arange(len(pos), dtype=np.int64) - np.repeat(np.cumsum(counts[long]) - counts[long], counts[long])
        h[pos] = concat_shingle_hashes([texts[i] for i in long], n)
    for i in np.flatnonzero((lengths < n) & (lengths > 0)):
        h[ends[i] - 1] = shingle_hashes(texts[i], n)[0]
    # sort by (text, hash): by hash, then stably by text (a radix sort for up to 65,536 texts)
    doc = np.repeat(np.arange(len(texts), dtype=np.uint16 if len(texts) <= 1 << 16 else np.int64), counts)
    order = np.argsort(h)
    order = order[np.argsort(doc[order], kind="stable")]
    h, doc = h[order], doc[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (doc[1:] != doc[:-1])
    return h[keep], np.bincount(doc[keep], minlength=len(texts))


def split_lines(text: str) -> list[str]:
    """Lines with their line endings, so that joining them gives the text back."""
    return text.splitlines(keepends=True)


def line_hash(norm_line: str) -> int:
    return xxhash.xxh3_64_intdigest(norm_line.encode("utf-8"))
