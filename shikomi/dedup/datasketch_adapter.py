"""The one module that uses datasketch's private functions (tests/test_dependency_privates.py
checks that no other module does): its LSH parameter search and error areas, so that
our bands and rows are the ones `datasketch.MinHashLSH` would choose."""

from __future__ import annotations


def optimal_bands_rows(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """datasketch's (bands, rows) minimising the weighted false positive and negative areas."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, fp_weight, fn_weight)


def false_positive_area(threshold: float, bands: int, rows: int) -> float:
    """The area under the S-curve below the threshold (datasketch)."""
    from datasketch.lsh import _false_positive_probability

    return _false_positive_probability(threshold, bands, rows)


def false_negative_area(threshold: float, bands: int, rows: int) -> float:
    """The area above the S-curve beyond the threshold (datasketch)."""
    from datasketch.lsh import _false_negative_probability

    return _false_negative_probability(threshold, bands, rows)
