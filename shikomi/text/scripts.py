"""The one table of Japanese script ranges (kana, kanji, punctuation).

Every rule that counts or matches a script takes its range from here, by name. The
names differ where their users mean different things: `kana` is the whole Hiragana
and Katakana blocks (marks and punctuation included), `kana_letters` only the kana a
word is spelled with, which is what the language-id guard asks for (a text with a
lone ・ or ー is not Japanese for it).

    >>> pattern("hiragana").findall("ひらがなとカタカナ")
    ['ひ', 'ら', 'が', 'な', 'と']
"""

from __future__ import annotations

import re

# name -> inclusive (first, last) code point ranges
RANGES: dict[str, tuple[tuple[str, str], ...]] = {
    # ぁ..ゟ: the Hiragana block (U+3040 is unassigned), voicing marks ゛゜ and ゝゞゟ
    "hiragana": (("\u3041", "\u309f"),),
    # ゠..ヿ: the Katakana block (・ and ー included), and the phonetic extensions ㇰ..ㇿ
    "katakana": (("\u30a0", "\u30ff"), ("\u31f0", "\u31ff")),
    # the Hiragana and Katakana blocks, whole (U+3040..U+30FF)
    "kana": (("\u3040", "\u30ff"),),
    # ぁ..ヺ: hiragana and katakana letters, without ・ ー ヽ ヾ ヿ
    "kana_letters": (("\u3041", "\u30fa"),),
    # ァ..ヴ and ー: what a katakana word is spelled with
    "katakana_word": (("\u30a1", "\u30f4"), ("\u30fc", "\u30fc")),
    # ｡..ﾟ: half-width katakana and the half-width punctuation before them
    "halfwidth_katakana": (("\uff61", "\uff9f"),),
    # 一..鿿: CJK Unified Ideographs (the main block only)
    "cjk_unified": (("\u4e00", "\u9fff"),),
    # kanji: CJK Unified Ideographs, Extension A and the compatibility ideographs
    "kanji": (("\u3400", "\u4dbf"), ("\u4e00", "\u9fff"), ("\uf900", "\ufaff")),
    # 、..〿: CJK symbols and punctuation 、。「」『』〜 and the iteration mark 々
    "japanese_punctuation": (("\u3001", "\u303f"),),
}
# Japanese text as the quality rules count it: punctuation, kana and kanji
RANGES["japanese"] = (
    *RANGES["japanese_punctuation"],
    *RANGES["hiragana"],
    *RANGES["katakana"],
    *RANGES["kanji"],
)


def char_class(*names: str) -> str:
    """A regular-expression character class (`[...]`) of the named ranges."""
    parts = []
    for name in names:
        for lo, hi in RANGES[name]:
            parts.append(lo if lo == hi else f"{lo}-{hi}")
    return "[" + "".join(parts) + "]"


def pattern(*names: str) -> re.Pattern:
    """The compiled character class of the named ranges."""
    return re.compile(char_class(*names))
