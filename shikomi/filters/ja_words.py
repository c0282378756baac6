"""Japanese words for word-level rules: fugashi (MeCab) with unidic-lite, the one place
the clean stage makes a word tagger.

One parse per document: `nodes(text)` keeps the last text's fugashi nodes, so the rules
that run one after the other on the same document (the part-of-speech filters through
`SharedTagger`, the FineWeb-2 word rules through `word_list`, the quality classifier
through `wakati`) tokenise it once. `word_list(text)` is the surface forms, spaces and
newlines left out; `wakati(text)` the same words space-separated."""

from __future__ import annotations

_TAGGER = None
_NODES: tuple[str, list] = ("", [])
_LAST: tuple[str, list[str]] = ("", [])


def tagger():
    global _TAGGER
    if _TAGGER is None:
        from fugashi import Tagger

        _TAGGER = Tagger("-Owakati")
    return _TAGGER


def _same(text: str, cached: str) -> bool:
    return text is cached or text == cached


def nodes(text: str) -> list:
    """fugashi nodes of `text`, their features read at once: MeCab reuses its lattice, so
    a node's features read after the next parse would be the next text's."""
    global _NODES
    if _same(text, _NODES[0]):
        return _NODES[1]
    out = tagger()(text)
    for w in out:
        w.feature  # noqa: B018 - read while the lattice is this text's
    _NODES = (text, out)
    return out


class SharedTagger:
    """Stands in for a HojiChar filter's own `Tagger("-Owakati")` (the same dictionary
    and options): its parses go through `nodes`, shared with the other word rules."""

    def __call__(self, text: str) -> list:
        return nodes(text)


def word_list(text: str) -> list[str]:
    global _LAST
    if _same(text, _LAST[0]):
        return _LAST[1]
    src = _NODES[1] if _same(text, _NODES[0]) else tagger()(text)
    out = [w.surface for w in src if w.surface and not w.surface.isspace()]
    _LAST = (text, out)
    return out


def wakati(text: str) -> str:
    """The words of `text`, space-separated, as MeCab's wakati output: from the shared
    nodes when an earlier rule parsed this text, else from MeCab's own output (no
    Python object per word: the quality classifier's path for documents no word rule
    saw). Both give the same string (tests/filters/test_quality_model.py)."""
    if _same(text, _NODES[0]):
        return " ".join(" ".join(w.surface for w in _NODES[1]).split())
    return " ".join(tagger().parse(text).split())
