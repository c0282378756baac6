"""Swallow corpus quality rules (Okazaki et al. 2024), Gopher-style repetition at the
character level, and LLM-jp's zlib compression-ratio window.

Each rule is one small class; the value in `reject_reason` is the statistic that
tripped it. Statistics are computed on the text as it reaches the rule (after
normalisation in the default profile).
"""

from __future__ import annotations

import re
import zlib

from pydantic import Field, model_validator

from shikomi.config.base import Section
from shikomi.filters.base import CleanRule, char_ngram_counts, register
from shikomi.text.scripts import char_class, pattern

HIRAGANA = pattern("hiragana")
KATAKANA = pattern("katakana")
# kana, kanji (CJK unified + ext. A + compatibility), the iteration mark and Japanese
# punctuation 、。「」『』・〜ー
JAPANESE = pattern("japanese")
# what a katakana NG word is spelled with
KATAKANA_WORD = char_class("katakana_word")
WHITESPACE = re.compile(r"\s")
# a sentence ends at 。！？!? or a line break
SENTENCE_SPLIT = re.compile(r"(?<=[。！？!?])|\n")
ELLIPSIS_END = re.compile(r"(?:…|\.\.\.|・・・)\s*$")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT.split(text) if s.strip()]


def _non_space_len(text: str) -> int:
    return len(text) - len(WHITESPACE.findall(text))


class HiraganaParams(Section):
    min: float = Field(0.2, ge=0, le=1)


@register
class HiraganaFraction(CleanRule):
    """Swallow: hiragana must be at least `min` of the non-space characters (lists of
    names, products and places have little hiragana); value: the fraction."""

    rule = "hiragana_fraction"
    Params = HiraganaParams

    def check(self, doc):
        n = _non_space_len(doc.text)
        f = len(HIRAGANA.findall(doc.text)) / n if n else 0.0
        if f < self.params.min:
            return self.rule, f


class KatakanaParams(Section):
    max: float = Field(0.5, ge=0, le=1)


@register
class KatakanaFraction(CleanRule):
    """Swallow: katakana at most `max` of the non-space characters; value: the fraction."""

    rule = "katakana_fraction"
    Params = KatakanaParams

    def check(self, doc):
        n = _non_space_len(doc.text)
        f = len(KATAKANA.findall(doc.text)) / n if n else 0.0
        if f > self.params.max:
            return self.rule, f


class JapaneseParams(Section):
    min: float = Field(0.5, ge=0, le=1)


@register
class JapaneseFraction(CleanRule):
    """Swallow: Japanese characters (kana, kanji, Japanese punctuation) at least `min`
    of the non-space characters; value: the fraction."""

    rule = "japanese_fraction"
    Params = JapaneseParams

    def check(self, doc):
        n = _non_space_len(doc.text)
        f = len(JAPANESE.findall(doc.text)) / n if n else 0.0
        if f < self.params.min:
            return self.rule, f


class SentenceLengthParams(Section):
    min_average: float = Field(20, ge=0)
    max_average: float = Field(90, ge=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min_average > self.max_average:
            raise ValueError("min_average must not exceed max_average")
        return self


@register
class AverageSentenceLength(CleanRule):
    """Swallow: the average sentence (split at 。！？ and line breaks) is between
    `min_average` and `max_average` characters; value: the average."""

    rule = "average_sentence_length"
    Params = SentenceLengthParams

    def check(self, doc):
        s = sentences(doc.text)
        avg = sum(len(x) for x in s) / len(s) if s else 0.0
        if not (self.params.min_average <= avg <= self.params.max_average):
            return self.rule, round(avg, 1)


class MaxSentenceParams(Section):
    max: int = Field(200, ge=1)


@register
class MaxSentenceLength(CleanRule):
    """Swallow: no sentence longer than `max` characters (run-on keyword lists,
    text without punctuation); value: the longest."""

    rule = "max_sentence_length"
    Params = MaxSentenceParams

    def check(self, doc):
        longest = max((len(x) for x in sentences(doc.text)), default=0)
        if longest > self.params.max:
            return self.rule, longest


class EllipsisSentenceParams(Section):
    max: float = Field(0.2, ge=0, le=1)


@register
class EllipsisSentences(CleanRule):
    """Swallow: at most `max` of the sentences end with … / ... (truncated
    snippets, "続きを読む" teasers); value: the fraction."""

    rule = "ellipsis_sentences"
    Params = EllipsisSentenceParams

    def check(self, doc):
        s = sentences(doc.text)
        if not s:
            return None
        f = sum(1 for x in s if ELLIPSIS_END.search(x)) / len(s)
        if f > self.params.max:
            return self.rule, f


class WordIndex:
    """Which of a fixed set of words occur in a text, by their first two characters:
    one set of the text's character bigrams, then `in` for the few words whose first
    two characters are among them."""

    def __init__(self, words: list[str]):
        self.single = frozenset(w for w in words if len(w) == 1)
        self.by_bigram: dict[str, list[str]] = {}
        for w in words:
            if len(w) > 1:
                self.by_bigram.setdefault(w[:2], []).append(w)

    def any_in(self, text: str) -> bool:
        if self.single and not self.single.isdisjoint(text):
            return True
        grams = {text[i : i + 2] for i in range(len(text) - 1)}
        for g in self.by_bigram.keys() & grams:
            for w in self.by_bigram[g]:
                if w in text:
                    return True
        return False


class NgRatioParams(Section):
    max: float = Field(0.05, ge=0, le=1, description="max share of characters inside NG words")
    dictionaries: list[str] = Field(
        default_factory=lambda: ["adult_keywords_ja", "discrimination_keywords_ja", "violence_keywords_ja"],
        description="HojiChar dictionary names or paths to word lists",
    )
    katakana_whole_word: bool = Field(True, description="katakana NG words match only as whole katakana runs")


@register
class NgWordCharRatio(CleanRule):
    """Swallow: characters covered by NG words at most `max` of the text (softer than
    the HojiChar one-hit NG filters); value: the share."""

    rule = "ng_word_ratio"
    Params = NgRatioParams

    def setup(self):
        from pathlib import Path

        import hojichar

        words: list[str] = []
        for d in self.params.dictionaries:
            p = Path(d)
            if not p.is_file():
                p = Path(hojichar.__path__[0]) / "dict" / f"{d}.txt"
            words += [w.strip() for w in p.read_text(encoding="utf-8").split("\n") if w.strip()]
        words = sorted(set(words), key=lambda w: (-len(w), w))
        kata = [re.escape(w) for w in words if re.fullmatch(KATAKANA_WORD + "+", w)]
        other = [re.escape(w) for w in words if not re.fullmatch(KATAKANA_WORD + "+", w)]
        parts = []
        if other:
            parts.append("|".join(other))
        if kata:
            parts.append(
                rf"(?<!{KATAKANA_WORD})(?:{'|'.join(kata)})(?!{KATAKANA_WORD})"
                if self.params.katakana_whole_word
                else "|".join(kata)
            )
        self._h_pat = re.compile("|".join(parts)) if parts else None
        # every match is one of the words: a text holding none of them is decided
        # without running the pattern's ~1,600 alternatives at each of its positions
        self._h_index = WordIndex(words)

    def check(self, doc):
        if self._h_pat is None or not doc.text or not self._h_index.any_in(doc.text):
            return None
        covered = sum(m.end() - m.start() for m in self._h_pat.finditer(doc.text))
        f = covered / len(doc.text)
        if f > self.params.max:
            return self.rule, f


# --- Gopher-style repetition, at the character level (Swallow) ---------------------
# datatrove's Gopher helpers count the repeats (imported on use: the package
# `datatrove.pipeline.filters` takes most of a second to import).


class DupParams(Section):
    max_fraction: float = Field(0.30, ge=0, le=1, description="max share of units that repeat an earlier one")
    max_char_fraction: float = Field(0.20, ge=0, le=1, description="max share of characters in repeated units")


@register
class DuplicateLines(CleanRule):
    """Gopher/Swallow: repeated lines; value: which limit and its share."""

    rule = "duplicate_lines"
    Params = DupParams
    separator = re.compile(r"\n+")

    def check(self, doc):
        units = [u for u in (x.strip() for x in self.separator.split(doc.text)) if u]
        if len(units) < 2:
            return None
        from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates

        n, chars = find_duplicates(units)  # units repeating an earlier one, their characters
        if n / len(units) > self.params.max_fraction:
            return self.rule, round(n / len(units), 4)
        total = sum(len(u) for u in units)
        if total and chars / total > self.params.max_char_fraction:
            return self.rule, round(chars / total, 4)


@register
class DuplicateParagraphs(DuplicateLines):
    """Gopher/Swallow: repeated paragraphs (blocks separated by blank lines)."""

    rule = "duplicate_paragraphs"
    separator = re.compile(r"\n\s*\n+")


class TopNgramParams(Section):
    # Gopher's word thresholds, applied to characters as Swallow does
    limits: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    min_chars: int = Field(100, ge=0, description="skip texts with fewer non-space characters (too few to judge)")


def _top_ngram_fraction(text: str, n: int) -> float:
    """Characters in the most frequent n-gram's occurrences / all characters (datatrove's
    `find_top_duplicate`: n x its count; counted in C by `char_ngram_counts`)."""
    if len(text) < n:
        return 0.0
    return n * max(char_ngram_counts(text, n).values()) / len(text)


@register
class TopCharNgram(CleanRule):
    """Gopher/Swallow: the most frequent character n-gram covers at most the limit
    for n (2: 0.20, 3: 0.18, 4: 0.16); value: "n=share"."""

    rule = "top_char_ngram"
    Params = TopNgramParams

    def check(self, doc):
        text = WHITESPACE.sub("", doc.text)
        if len(text) < self.params.min_chars:
            return None
        for n, limit in sorted(self.params.limits.items()):
            f = _top_ngram_fraction(text, n)
            if f > limit:
                return self.rule, f"{n}={f:.4f}"


class DupNgramParams(Section):
    limits: dict[int, float] = Field(default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    min_chars: int = Field(100, ge=0, description="skip texts with fewer non-space characters (too few to judge)")


def dup_ngram_fraction(text: str, n: int) -> float:
    """Share of characters in n-grams seen before (non-overlapping, as Gopher/datatrove)."""
    # datatrove's find_all_duplicate(list(text), n) gives the same numbers, but joins a
    # list for every position: about 1.4x slower on this per-document rule.
    if not text:
        return 0.0
    seen: set[str] = set()
    repeated = i = 0
    last = len(text) - n + 1
    while i < last:
        g = text[i : i + n]
        if g in seen:
            repeated += n
            i += n
        else:
            seen.add(g)
            i += 1
    return repeated / len(text)


@register
class DuplicateCharNgrams(CleanRule):
    """Gopher/Swallow: characters inside repeated character n-grams, per n
    (5: 0.15 ... 10: 0.10); value: "n=share"."""

    rule = "duplicate_char_ngrams"
    Params = DupNgramParams

    def check(self, doc):
        text = WHITESPACE.sub("", doc.text)
        if len(text) < self.params.min_chars:
            return None
        for n, limit in sorted(self.params.limits.items(), reverse=True):
            f = dup_ngram_fraction(text, n)
            if f > limit:
                return self.rule, f"{n}={f:.4f}"


class ZlibParams(Section):
    min: float = Field(0.30, ge=0, le=2)
    max: float = Field(0.70, ge=0, le=2)
    min_bytes: int = Field(
        1000, ge=0, description="skip texts shorter than this many UTF-8 bytes (short texts compress poorly)"
    )


@register
class ZlibCompressionRatio(CleanRule):
    """LLM-jp: zlib-compressed size / UTF-8 size within [min, max]. Very repetitive
    text compresses far below `min`; random strings, base64 and hashes stay near 1;
    value: the ratio."""

    rule = "zlib_ratio"
    Params = ZlibParams

    def check(self, doc):
        raw = doc.text.encode("utf-8")
        if len(raw) < max(self.params.min_bytes, 1):
            return None
        r = len(zlib.compress(raw, 9)) / len(raw)
        if not (self.params.min <= r <= self.params.max):
            return self.rule, r
