"""SentencePiece training lines: documents split into lines SentencePiece will not skip;
and the stage's batch encode (`encode_flat`).

The special tokens and the `transformers` export are in `shikomi.text.hf_tokenizer`."""

from __future__ import annotations

import re

import numpy as np

from shikomi.tokenize.sentencepiece_adapter import buffer_encoder

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


def encode_flat(sp, texts: list, add_eos: bool, batch_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """(every token of `texts` back to back as int32, tokens per text): single-thread
    SentencePiece `encode` of str or UTF-8 bytes, `batch_docs` texts per call. The same
    ids as `sp.encode(..., return_type="numpy")`, without a numpy array per text: the
    binding's int32 buffers are joined in one copy (`sentencepiece_adapter`; the numpy
    arrays of the public `encode` on a version it was not checked on), and with EOS
    appended the lengths come from where the EOS ids are (checked: one per text, else
    counted per text)."""
    fn = buffer_encoder(sp)
    eos = sp.eos_id() if add_eos else -1
    parts, lengths = [], []
    for a in range(0, len(texts), batch_docs):
        batch = texts[a : a + batch_docs]
        if fn is not None:
            bufs = fn(batch, add_eos)
        else:
            bufs = [
                x.astype(np.int32, copy=False)
                for x in sp.encode(batch, num_threads=1, add_eos=add_eos, return_type="numpy")
            ]
        chunk = b"".join(bufs)
        parts.append(chunk)
        if eos >= 0:
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.int32) == eos) + 1
            if ends.size == len(bufs) and (not ends.size or ends[-1] * 4 == len(chunk)):
                lengths.append(np.diff(ends, prepend=0))
                continue
        lengths.append(np.fromiter((memoryview(b).nbytes for b in bufs), dtype=np.int64, count=len(bufs)) // 4)
    tokens = np.frombuffer(b"".join(parts), dtype=np.int32)
    return tokens, np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)
