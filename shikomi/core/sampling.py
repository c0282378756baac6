"""Deterministic sampling: seeded hashes of document ids and first-fit selection.

Every stage that ranks, samples or shuffles documents does it with `seeded_hash`, a
function of the seed and the document (never of file order or task count), so the
same input, config and seed give the same output.
"""

from __future__ import annotations

import hashlib

import numpy as np
import xxhash


def seeded_hash(seed, *parts) -> int:
    """xxh64 (uint64) of `seed` and `parts`, each as `str()`, joined by NUL."""
    return xxhash.xxh64_intdigest("\x00".join(map(str, (seed, *parts))))


def seeded_hashes(seed, prefix: tuple, items) -> np.ndarray:
    """`seeded_hash(seed, *prefix, *item)` of every item (a tuple of parts) as a
    uint64 array; the prefix is joined once."""
    h = xxhash.xxh64_intdigest
    pre = "\x00".join(str(p) for p in (seed, *prefix)) + "\x00"
    items = list(items)
    join = "\x00".join
    return np.fromiter((h(pre + join(map(str, it))) for it in items), dtype=np.uint64, count=len(items))


def seeded_hashes_str(seed, prefix: tuple, strings: list[str]) -> np.ndarray:
    """`seeded_hash(seed, *prefix, s)` of every string `s` (parts already joined by NUL)
    as a uint64 array: one concatenation and one hash per string."""
    pre = "\x00".join(str(p) for p in (seed, *prefix)) + "\x00"
    return np.fromiter(map(xxhash.xxh64_intdigest, [pre + s for s in strings]), dtype=np.uint64, count=len(strings))


def seeded_uniform(seed, *parts) -> float:
    """`seeded_hash` scaled to [0, 1): a document's draw for sampling at a rate."""
    return seeded_hash(seed, *parts) / 2.0**64


def seeded_digest(seed, *parts) -> bytes:
    """An 8-byte BLAKE2b digest of `seed` and `parts` joined by NUL: the sort key of
    `shikomi inspect`'s samples. (Not xxh64: which documents a given `--seed` shows
    is part of what `inspect` promises, and switching the hash would change it.)"""
    return hashlib.blake2b("\x00".join(str(p) for p in (seed, *parts)).encode(), digest_size=8).digest()


def first_fit(lengths: np.ndarray, target: float, max_fill: int = 100_000) -> np.ndarray:
    """Mask of the items kept, in order: the longest prefix whose sum stays at most
    `target`, then, in order, later items that still fit the gap (at most `max_fill`
    of them)."""
    return first_fit_groups(lengths, target, None, max_fill)[0]


def first_fit_groups(
    lengths: np.ndarray, target: float, groups: np.ndarray | None = None, max_fill: int = 100_000
) -> tuple[np.ndarray, int, list[int]]:
    """First fit in order, where the items of one group (equal values in `groups`)
    are taken together: (mask of the items kept, length of the prefix, positions of
    the item that brought in each group taken by the fill after the prefix).

    The prefix is the longest one whose sum stays at most `target`; when it ends
    inside a group, the whole group is taken (so the prefix may pass the target by
    the rest of that group); then, in order, a group is taken when its total still
    fits the gap. Without `groups` every item is its own group.
    """
    n = lengths.size
    keep = np.zeros(n, dtype=bool)
    fill: list[int] = []
    if target <= 0 or n == 0:
        return keep, 0, fill
    cum = np.cumsum(lengths)
    k = int(np.searchsorted(cum, target, side="right"))
    if k > 0:
        keep[:k] = True
        if groups is not None:
            keep |= groups == groups[k - 1]
    gap = target - int(lengths[keep].sum())
    rest = np.nonzero(~keep)[0]
    for _ in range(max_fill):
        if gap <= 0 or rest.size == 0:
            break
        fits = rest[lengths[rest] <= gap]
        if fits.size == 0:
            break
        j = int(fits[0])
        same = np.nonzero(groups == groups[j])[0] if groups is not None else np.asarray([j])
        t = int(lengths[same].sum())
        if t > gap:
            rest = rest[rest != j]
            continue
        keep[same] = True
        fill.append(j)
        gap -= t
        rest = rest[~np.isin(rest, same)] if groups is not None else rest[rest > j]
    return keep, k, fill
