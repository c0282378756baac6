"""The one module that uses HojiChar's private members (tests/test_dependency_privates.py
checks that no other module does). The rules report the statistic that made a HojiChar
filter drop a document, computed with HojiChar's own helpers, which are private."""

from __future__ import annotations


def special_characters_ratio(h_filter, text: str) -> float:
    """`DiscardTooManySpecialToken`'s share of special characters in `text`."""
    return h_filter._compute_special_characters_ratio(text)


def text_chunks(h_filter, text: str):
    """The chunks `DiscardTooManyNouns` parses `text` in (at most `max_parse_chars`)."""
    return h_filter._chunk_text(text)
