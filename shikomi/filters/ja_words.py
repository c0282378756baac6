"""Japanese words for word-level rules: fugashi (MeCab) with unidic-lite, the one place
the clean stage makes a word tagger. `word_list(text)` is the surface forms, spaces and
newlines left out; the last text's words are kept, so rules that run one after the
other on the same document tokenise it once."""

from __future__ import annotations

_TAGGER = None
_LAST: tuple[str, list[str]] = ("", [])


def tagger():
    global _TAGGER
    if _TAGGER is None:
        from fugashi import Tagger

        _TAGGER = Tagger("-Owakati")
    return _TAGGER


def word_list(text: str) -> list[str]:
    global _LAST
    if text is _LAST[0] or text == _LAST[0]:
        return _LAST[1]
    out = [w.surface for w in tagger()(text) if w.surface and not w.surface.isspace()]
    _LAST = (text, out)
    return out


def wakati(text: str) -> str:
    """The same words as `word_list`, space-separated, from MeCab's own output (no
    Python object per word: the quality classifier's hot path)."""
    return " ".join(tagger().parse(text).split())
