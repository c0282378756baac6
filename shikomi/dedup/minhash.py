"""MinHash signatures and LSH parameters.

The MinHash math is datasketch's (2.x, scheme "affine32"): every shingle hash h
is pre-mixed with the MurmurHash3 32-bit finaliser and permuted as a*h + b
(mod 2^32) with the (a, b) pairs datasketch draws from its seed; the signature
is the minimum per permutation. We take the permutation parameters from
datasketch itself and compute the whole document at once with numpy, in chunks
so that a 10 MB document stays within a few MB of memory. `tests/test_dedup.py`
checks that the signatures equal `datasketch.MinHash(...).update_batch(...)` with
the same shingle hash function.

Bands and rows come from datasketch's optimal-parameter search for the threshold
(weighted false positive/negative areas); the probabilities are reported in stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shikomi.dedup.datasketch_adapter import false_negative_area, false_positive_area, optimal_bands_rows
from shikomi.dedup.text import concat_shingle_hashes, fmix64, shingle_hashes

_CHUNK = 4096  # shingles per chunk of the (shingles x permutations) matrix
_BATCH_CHUNK = 4096  # shingles per chunk when the documents of a batch are hashed together


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b) for this seed."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signature_from_hashes(h32: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signature (uint32[num_perm]) of 32-bit shingle hashes."""
    sig = np.full(len(a), 0xFFFFFFFF, dtype=np.uint32)
    if len(h32) == 0:
        return sig
    hv = fmix32(h32.astype(np.uint32, copy=False))
    for s in range(0, len(hv), _CHUNK):
        chunk = hv[s : s + _CHUNK, None]
        phv = chunk * a[None, :]
        phv += b[None, :]
        np.minimum(sig, phv.min(axis=0), out=sig)
    return sig


@dataclass(frozen=True)
class MinHasher:
    ngram: int
    num_perm: int
    seed: int

    def hashes64(self, norm_text: str) -> np.ndarray:
        return shingle_hashes(norm_text, self.ngram)

    def signature(self, norm_text: str) -> np.ndarray | None:
        """uint32[num_perm], or None for an empty text."""
        if not norm_text:
            return None
        h64 = self.hashes64(norm_text)
        a, b = permutations(self.num_perm, self.seed)
        return signature_from_hashes((h64 >> np.uint64(32)).astype(np.uint32), a, b)


def signatures_batch(texts: list[str], ngram: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (uint32[len(texts), num_perm]) of non-empty normalised texts,
    equal to `signature_from_hashes` per text, computed a batch of documents at a time:
    the n-gram hashes of all of them in one pass over their concatenated code points and
    the (shingles x permutations) matrix reduced per document with `minimum.reduceat`.
    Documents shorter than n and documents larger than a chunk take the per-text path."""
    out = np.empty((len(texts), len(a)), dtype=np.uint32)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    counts = np.maximum(lengths - ngram + 1, 0)
    alone = (lengths < ngram) | (counts > _BATCH_CHUNK)
    for i in np.flatnonzero(alone):
        out[i] = signature_from_hashes((shingle_hashes(texts[i], ngram) >> np.uint64(32)).astype(np.uint32), a, b)
    batch = np.flatnonzero(~alone)
    if not len(batch):
        return out
    h32 = (concat_shingle_hashes([texts[i] for i in batch], ngram) >> np.uint64(32)).astype(np.uint32)
    hv = fmix32(h32)
    del h32
    cnt = counts[batch]
    ends = np.cumsum(cnt)
    starts = ends - cnt
    k = 0
    while k < len(batch):
        # whole documents, up to _BATCH_CHUNK shingles
        stop = int(np.searchsorted(ends, starts[k] + _BATCH_CHUNK, side="right"))
        stop = max(stop, k + 1)
        lo, hi = int(starts[k]), int(ends[stop - 1])
        # (permutations x shingles): the reductions run along contiguous rows
        phv = a[:, None] * hv[None, lo:hi]
        phv += b[:, None]
        out[batch[k:stop]] = np.minimum.reduceat(phv, starts[k:stop] - lo, axis=1).T
        k = stop
    return out


_KEY_MUL = np.uint64(0x100000001B3)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit key per (document, band) of a (docs x num_perm) signature matrix."""
    d = sigs.shape[0]
    s = sigs[:, : bands * rows].reshape(d, bands, rows).astype(np.uint64)
    h = np.full((d, bands), 0xCBF29CE484222325, dtype=np.uint64)
    for j in range(rows):
        h = h * _KEY_MUL
        h = h + s[:, :, j] + np.uint64(j + 1)
        h = fmix64(h)
    return h


def lsh_params(
    threshold: float,
    num_perm: int,
    fp_weight: float,
    fn_weight: float,
    bands: int | None = None,
    rows: int | None = None,
) -> dict:
    """Bands x rows (datasketch's optimum unless given) and their error probabilities."""
    if bands is None:
        bands, rows = optimal_bands_rows(threshold, num_perm, fp_weight, fn_weight)
    fp = false_positive_area(threshold, bands, rows)
    fn = false_negative_area(threshold, bands, rows)

    def p(s: float) -> float:
        return 1 - (1 - s**rows) ** bands

    return {
        "threshold": threshold,
        "num_perm": num_perm,
        "bands": int(bands),
        "rows": int(rows),
        "fp_weight": fp_weight,
        "fn_weight": fn_weight,
        # datasketch's areas under the S-curve below / above the threshold
        "false_positive_area": round(float(fp), 6),
        "false_negative_area": round(float(fn), 6),
        # probability that a pair of this Jaccard similarity becomes a candidate
        "candidate_probability": {f"{s:.2f}": round(p(s), 4) for s in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)},
        # the similarity where the S-curve crosses 1/2 (approx. (1/b)^(1/r))
        "effective_threshold": round((1 / bands) ** (1 / rows), 4),
    }
