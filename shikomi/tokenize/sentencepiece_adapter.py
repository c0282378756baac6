"""The one place shikomi reaches past SentencePiece's public Python API.

`SentencePieceProcessor.encode(..., return_type="numpy")` builds one numpy array per
text; the binding underneath can return each text's ids as a plain int32 buffer
(`_EncodeAsBufferBatch`), which the tokenize stage joins in one copy. That entry point
is private, so it is used only on the SentencePiece version it was checked against
(`CHECKED_VERSION`, the one `requirements.txt` pins; the tokenize tests compare its ids
with the public `encode` text by text). On any other version, or a build without it,
`buffer_encoder` returns None and callers take the public path: the same ids, slower.
"""

from __future__ import annotations

from collections.abc import Callable

CHECKED_VERSION = "0.2.3"


def buffer_encoder(sp, version: str | None = None) -> Callable[[list, bool], list] | None:
    """`f(texts, add_eos) -> [int32 buffer per text]` on one thread (texts: str or UTF-8
    bytes), or None where the private entry point is not the one checked."""
    if version is None:
        import sentencepiece

        version = getattr(sentencepiece, "__version__", "")
    if version != CHECKED_VERSION:
        return None
    fn = getattr(getattr(sp, "_processor", None), "_EncodeAsBufferBatch", None)
    if fn is None:  # pragma: no cover - another build of the checked version
        return None

    def encode(texts: list, add_eos: bool) -> list:
        # (inputs, num_threads, thread_pool, enable_sampling, nbest_size, alpha, add_bos, add_eos, reverse)
        return fn(texts, 1, None, False, -1, 0.0, False, add_eos, False)

    return encode
