"""SentencePiece training lines: documents split into lines SentencePiece will not skip.

The special tokens and the `transformers` export are in `shikomi.text.hf_tokenizer`."""

from __future__ import annotations

import re

# split after sentence ends (Japanese and Latin) when a line is too long for SentencePiece
_SENTENCE_END = re.compile(r"(?<=[。！？．!?])|(?<=\.\s)")


def _hard_split(s: str, max_bytes: int) -> list[str]:
    out, cur, size = [], [], 0
    for ch in s:
        b = len(ch.encode("utf-8"))
        if size + b > max_bytes and cur:
            out.append("".join(cur))
            cur, size = [], 0
        cur.append(ch)
        size += b
    if cur:
        out.append("".join(cur))
    return out


def split_long(line: str, max_bytes: int) -> list[str]:
    """Pieces of a line, each at most max_bytes UTF-8 bytes: packed sentences, and hard
    cuts for a sentence that is longer by itself."""
    if len(line.encode("utf-8")) <= max_bytes:
        return [line]
    out: list[str] = []
    cur, size = "", 0
    for sent in (x for x in _SENTENCE_END.split(line) if x):
        b = len(sent.encode("utf-8"))
        if b > max_bytes:
            if cur:
                out.append(cur)
                cur, size = "", 0
            out.extend(_hard_split(sent, max_bytes))
            continue
        if size + b > max_bytes:
            out.append(cur)
            cur, size = "", 0
        cur += sent
        size += b
    if cur:
        out.append(cur)
    return out


def training_lines(text: str, max_bytes: int) -> tuple[list[str], int]:
    """A document as SentencePiece training lines (newline-separated, none longer than
    max_bytes, none blank) and how many of its lines had to be split."""
    lines, n_split = [], 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        parts = split_long(line, max_bytes)
        if len(parts) > 1:
            n_split += 1
        lines.extend(parts)
    return lines, n_split
