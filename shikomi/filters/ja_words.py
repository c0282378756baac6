"""Japanese words for word-level rules: fugashi (MeCab) with unidic-lite, the one place
the clean stage makes a word tagger.

One parse per document: `nodes(text)` keeps the last text's words, so the rules
that run one after the other on the same document (the part-of-speech filters through
`SharedTagger`, the FineWeb-2 word rules through `word_list`, the quality classifier
through `wakati`) tokenise it once. `word_list(text)` is the surface forms, spaces and
newlines left out; `wakati(text)` the same words space-separated.

The words come from MeCab's text output ("surface TAB part of speech" per word, one
call into MeCab per document), not from fugashi's node objects: building a node and
its 29-field feature tuple for every word took most of the clean stage's time. Each
word is a `Word` with `surface` and `feature.pos1`, the two things the rules read, with
the same values as fugashi's nodes (tests/filters/test_ja_words.py); a text whose
output cannot be split that way is parsed to nodes as before. One MeCab tagger serves
all of these: each tagger maps the dictionary (260 MB for unidic-lite) on its own, and
the pages it touches count in the process's RSS once per tagger."""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

_TAGGER = None
_POS_TAGGER = None
_NODES: tuple[str, list] = ("", [])
_LAST: tuple[str, list[str]] = ("", [])


def tagger():
    global _TAGGER
    if _TAGGER is None:
        from fugashi import Tagger

        _TAGGER = Tagger("-Owakati")
    return _TAGGER


def pos_tagger():
    """MeCab with the same dictionary as `tagger()`, printing each word as "surface TAB
    pos1" (the dictionary's own output format switched off with `-O ""`)."""
    global _POS_TAGGER
    if _POS_TAGGER is None:
        import unidic_lite
        from fugashi import GenericTagger

        d = unidic_lite.DICDIR
        fmt = r"%m\t%f[0]\n"
        _POS_TAGGER = GenericTagger(f'-d "{d}" -r "{d}/mecabrc" -O "" -F "{fmt}" -U "{fmt}" -E "EOS"')
    return _POS_TAGGER


class Pos:
    """A word's features: only the part of speech (UniDic pos1) is kept."""

    __slots__ = ("pos1",)

    def __init__(self, pos1: str):
        self.pos1 = pos1

    def __repr__(self) -> str:
        return f"Pos({self.pos1!r})"


class Word(NamedTuple):
    """A word as the rules read it: `surface` and `feature.pos1`, like a fugashi node."""

    surface: str
    feature: Pos


# one Pos per part of speech: UniDic's pos1 labels. A name not in it sends the text to
# fugashi's nodes, which add it, so a misread line never passes as a part of speech
# (fugashi's tagger maps the dictionary a second time, hence the labels are known upfront)
UNIDIC_POS1 = "名詞 代名詞 形状詞 連体詞 副詞 接続詞 感動詞 動詞 形容詞 助動詞 助詞 接頭辞 接尾辞 記号 補助記号 空白"
_POS: dict[str, Pos] = {p: Pos(p) for p in UNIDIC_POS1.split()}


def _from_nodes(text: str) -> list[Word]:
    out = []
    for w in tagger()(text):
        p = w.feature.pos1
        out.append(Word(w.surface, _POS.get(p) or _POS.setdefault(p, Pos(p))))
    return out


def parse(text: str) -> list[Word]:
    """The words of `text`, from one call into MeCab."""
    s = pos_tagger().parse(text)
    # one line per word, "surface TAB pos1", then "EOS": MeCab treats tabs and line
    # breaks as spaces, so no surface holds one; if one ever did, the counts tell
    n = s.count("\n")
    if not (s == "EOS" or s.endswith("\nEOS")) or s.count("\t") != n:
        return _from_nodes(text)
    parts = s.replace("\n", "\t").split("\t")  # surface, pos1, surface, pos1, ..., "EOS"
    feats = list(map(_POS.get, parts[1::2]))
    if None in feats:
        return _from_nodes(text)
    return list(map(_new_word, repeat(Word), zip(parts[0:-1:2], feats)))


_new_word = tuple.__new__


def _same(text: str, cached: str) -> bool:
    return text is cached or text == cached


def nodes(text: str) -> list[Word]:
    """The words of `text`, from the last parse when it was this text."""
    global _NODES
    if _same(text, _NODES[0]):
        return _NODES[1]
    out = parse(text)
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
    src = _NODES[1] if _same(text, _NODES[0]) else parse(text)
    out = [w.surface for w in src if w.surface and not w.surface.isspace()]
    _LAST = (text, out)
    return out


def wakati(text: str) -> str:
    """The words of `text`, space-separated, as MeCab's wakati output: from the shared
    words when an earlier rule parsed this text, else from MeCab's output without a
    Python object per word (the quality classifier's path for documents no word rule
    saw). Both give the same string (tests/filters/test_quality_model.py)."""
    if _same(text, _NODES[0]):
        return " ".join(" ".join(w.surface for w in _NODES[1]).split())
    s = pos_tagger().parse(text)
    if not (s == "EOS" or s.endswith("\nEOS")) or s.count("\t") != s.count("\n"):
        return " ".join(" ".join(w.surface for w in parse(text)).split())
    return " ".join(" ".join(s.replace("\n", "\t").split("\t")[0:-1:2]).split())
