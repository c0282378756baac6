"""HojiChar filters wrapped as datatrove rule steps (wrapped, not forked).

Each class builds the HojiChar filter from its config, runs `filter.apply()` on a
`hojichar.Document` and turns `is_rejected` into a drop with the value that tripped
it (computed with HojiChar's own helper where it has one). Transforms (normalise,
mask personal information, header/footer removal) copy the new text back. Where
HojiChar counts n-grams in a Python loop (char_repetition, word_repetition) the same
statistic is counted here with `Counter`, and single_char_repetition calls the filter
only when a regex finds a run that long: same decisions and values, less CPU
(tests/filters/test_ja_words.py compares them with HojiChar's).
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import Field

from shikomi.config.base import Section
from shikomi.filters.base import CleanRule, char_ngram_counts, register
from shikomi.filters.hojichar_adapter import special_characters_ratio, text_chunks
from shikomi.filters.ja_words import SharedTagger


class HojiCharRule(CleanRule):
    """Runs one HojiChar filter. Subclasses implement `make()` and may give `value()`."""

    def make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self) -> None:
        self._h_filter = self.make()

    def value(self, text: str):
        return None

    def check_value(self, doc):
        """The filter's decision (`value >= threshold`) from `value()` alone, for rules
        whose `value()` computes HojiChar's statistic without running its filter."""
        ratio = self.value(doc.text)
        if ratio >= self.params.threshold:
            return self.rule, ratio
        return None

    def check(self, doc):
        from hojichar import Document as HDocument

        hd = HDocument(doc.text)
        self._h_filter.apply(hd)
        if hd.is_rejected:
            return self.rule, self.value(doc.text)
        if self.kind == "transform" and hd.text != doc.text:
            doc.text = hd.text
        return None


def char_repetition_ratio(text: str, n: int) -> float:
    """HojiChar's `CharRepetitionRatioFilter.compute_character_repetition_ratio`: the
    share of character n-grams taken by the sqrt(distinct) most frequent ones that
    repeat (tests/filters/test_ja_words.py checks it against HojiChar's)."""
    import numpy as np

    counts = char_ngram_counts(text, n)
    if not counts:
        return 0.0
    freq = sorted(counts.values(), reverse=True)
    top = min(int(np.sqrt(len(freq))), len(freq) - freq.count(1))
    return sum(freq[:top]) / sum(freq)


def word_repetition_ratio(h_filter, text: str, n: int) -> float:
    """HojiChar's `WordRepetitionRatioFilter.compute_word_repetition_ratio`: the share of
    word n-grams (per parse chunk) that occur more than once."""
    total: Counter[str] = Counter()
    for chunk in text_chunks(h_filter, text):
        words = [w.surface for w in h_filter.tagger(chunk)]
        if 0 < n <= len(words):
            total.update(map(" ".join, zip(*(words[i:] for i in range(n)))))
    if not total:
        return 0.0
    return sum(v for v in total.values() if v > 1) / sum(total.values())


# --- transforms -------------------------------------------------------------------


@register
class Normalize(HojiCharRule):
    """NFKC normalisation (HojiChar `DocumentNormalizer`): full-width ASCII to
    half-width, half-width katakana to full-width."""

    rule = "normalize"
    kind = "transform"

    def make(self):
        from hojichar.filters.document_filters import DocumentNormalizer

        return DocumentNormalizer()


@register
class MaskPersonalInformation(HojiCharRule):
    """Masks the last digits of phone numbers and the parts of e-mail addresses
    (HojiChar `MaskPersonalInformation`)."""

    rule = "mask_personal_information"
    kind = "transform"

    def make(self):
        from hojichar.filters.document_filters import MaskPersonalInformation as F

        return F()


class HeaderFooterParams(Section):
    max_lines: int = Field(3, ge=0, description="look at most this many lines at each end")


@register
class HeaderFooterLines(HojiCharRule):
    """Removes header/footer lines ("カテゴリー", "投稿日", "一覧に戻る", ...) at the start
    and end of a document, using HojiChar's `HeaderFooterTagsRemover` keyword matcher
    on lines (HojiChar's own loop works on 。-sentences and marks the wrong token for
    footers, so the line loop is ours)."""

    rule = "header_footer_lines"
    kind = "transform"
    Params = HeaderFooterParams

    def make(self):
        from hojichar.filters.document_filters import HeaderFooterTagsRemover

        return HeaderFooterTagsRemover()

    def check(self, doc):
        lines = doc.text.split("\n")
        n = len(lines)
        look = min(self.params.max_lines, 1 if n < 4 else 2 if n < 6 else 3)
        drop = set()
        for i in range(look):
            for j in (i, n - 1 - i):
                if self._h_filter.keyword_pat.match(lines[j].strip()):  # HojiChar's should_drop_token
                    drop.add(j)
        if drop and len(drop) < n:
            doc.text = "\n".join(line for k, line in enumerate(lines) if k not in drop)
        return None


# --- filters ----------------------------------------------------------------------


class LengthParams(Section):
    min_chars: int | None = Field(200, ge=0)
    max_chars: int | None = Field(50_000, ge=1)


@register
class DocumentLength(HojiCharRule):
    """Length limits (HojiChar `DocumentLengthFilter`); value: the length."""

    rule = "document_length"
    Params = LengthParams

    def make(self):
        from hojichar.filters.document_filters import DocumentLengthFilter

        return DocumentLengthFilter(min_doc_len=self.params.min_chars, max_doc_len=self.params.max_chars)

    def value(self, text):
        return len(text)


class AcceptJapaneseParams(Section):
    lookup_size: int = Field(50, ge=1, description="characters from the start that must hold kana")


@register
class AcceptJapanese(HojiCharRule):
    """Drops documents without hiragana/katakana in their first `lookup_size`
    characters (HojiChar `AcceptJapanese`)."""

    rule = "accept_japanese"
    Params = AcceptJapaneseParams

    def make(self):
        from hojichar.filters.document_filters import AcceptJapanese as F

        return F(lookup_size=self.params.lookup_size)


class RareKutenParams(Section):
    max_average_sentence_length: int = Field(100, ge=1)


@register
class DiscardRareKuten(HojiCharRule):
    """Drops documents with too few 。 (HojiChar `DiscardRareKuten`); value: characters
    per 。."""

    rule = "rare_kuten"
    Params = RareKutenParams

    def make(self):
        from hojichar.filters.document_filters import DiscardRareKuten as F

        return F(max_average_sentence_length=self.params.max_average_sentence_length)

    def value(self, text):
        return round(len(text) / max(text.count("。"), 1), 1)


class CountParams(Section):
    max_allowed_num: int = Field(14, ge=0)


@register
class DiscardAds(HojiCharRule):
    """Drops documents with more than `max_allowed_num` advertisement keywords
    (HojiChar `DiscardAds`); value: the count."""

    rule = "ads"
    Params = CountParams

    def make(self):
        from hojichar.filters.document_filters import DiscardAds as F

        return F(max_allowed_num=self.params.max_allowed_num)

    def value(self, text):
        return len(self._h_filter.keyword_pat.findall(text))


@register
class DiscardBBSComments(HojiCharRule):
    """Drops forum/shop debris: dates, コメント, 投稿, レビュー, ... more than
    `max_allowed_num` times (HojiChar `DiscardBBSComments`); value: the count."""

    rule = "bbs_comments"
    Params = CountParams

    def make(self):
        from hojichar.filters.document_filters import DiscardBBSComments as F

        return F(max_allowed_num=self.params.max_allowed_num)

    def value(self, text):
        return len(self._h_filter.keyword_pat.findall(text))


class NgParams(Section):
    ignore_confused: bool = Field(True, description="katakana NG words only match as whole katakana runs")
    dict_path: str | None = Field(None, description="word list (one per line); default: HojiChar's")


class _NgWords(HojiCharRule):
    Params = NgParams
    hojichar_class = ""

    def make(self):
        from hojichar.filters import document_filters as df

        cls = getattr(df, self.hojichar_class)
        kw = {"ignore_confused": self.params.ignore_confused}
        if self.params.dict_path:
            kw["dict_path"] = self.params.dict_path
        return cls(**kw)

    def value(self, text):
        return getattr(self._h_filter, "matched_text", None)


@register
class NgAdult(_NgWords):
    """Drops documents with an adult NG word (HojiChar `DiscardAdultContentJa`);
    value: the word."""

    rule = "ng_adult"
    hojichar_class = "DiscardAdultContentJa"


@register
class NgDiscrimination(_NgWords):
    """Drops documents with a discriminatory NG word (HojiChar
    `DiscardDiscriminationContentJa`); value: the word."""

    rule = "ng_discrimination"
    hojichar_class = "DiscardDiscriminationContentJa"


@register
class NgViolence(_NgWords):
    """Drops documents with a violent NG word (HojiChar `DiscardViolenceContentJa`);
    value: the word."""

    rule = "ng_violence"
    hojichar_class = "DiscardViolenceContentJa"


class CharRepParams(Section):
    threshold: float = Field(0.33, ge=0, le=1)
    ngram_size: int = Field(5, ge=1)


@register
class CharRepetitionRatio(HojiCharRule):
    """Share of the text taken by its most frequent character n-grams (HojiChar
    `CharRepetitionRatioFilter`, from BigScience); value: the ratio."""

    rule = "char_repetition"
    Params = CharRepParams

    def make(self):
        from hojichar.filters.document_filters import CharRepetitionRatioFilter

        return CharRepetitionRatioFilter(threshold=self.params.threshold, ngram_size=self.params.ngram_size)

    def value(self, text):
        return char_repetition_ratio(text, self.params.ngram_size)

    def check(self, doc):
        # HojiChar's statistic and decision, with the n-grams counted by `Counter` (in C)
        return self.check_value(doc)


class EllipsisParams(Section):
    threshold: float = Field(0.7, ge=0, le=1, description="max share of lines ending with ... or …")


@register
class TooManyEndingEllipsis(HojiCharRule):
    """Drops documents whose lines mostly end with an ellipsis (HojiChar
    `DiscardTooManyEndingEllipsis`); value: the share."""

    rule = "ending_ellipsis"
    Params = EllipsisParams

    def make(self):
        from hojichar.filters.document_filters import DiscardTooManyEndingEllipsis

        return DiscardTooManyEndingEllipsis(threshold=self.params.threshold)

    def value(self, text):
        return len(self._h_filter.ellipsis_pattern.findall(text)) / max(text.count("\n"), 1)


class ShortLinesParams(Section):
    threshold: float = Field(0.5, ge=0, le=1, description="max share of lines of 10 characters or fewer")


@register
class TooShortLines(HojiCharRule):
    """Drops menus and breadcrumb lists: too many lines of ≤10 characters (HojiChar
    `DiscardTooShortLines`); value: the share."""

    rule = "short_lines"
    Params = ShortLinesParams

    def make(self):
        from hojichar.filters.document_filters import DiscardTooShortLines

        return DiscardTooShortLines(threshold=self.params.threshold)

    @staticmethod
    def _non_blank(text: str) -> str:
        # HojiChar counts blank lines as short; extracted web text separates
        # paragraphs with blank lines, so every well-formed article would look
        # like a menu. Only lines with content are counted.
        return "\n".join(x for x in text.split("\n") if x.strip())

    def check_value(self, doc):
        """The filter's decision (`value >= threshold`) from `value()` alone, for rules
        whose `value()` computes HojiChar's statistic without running its filter."""
        ratio = self.value(doc.text)
        if ratio >= self.params.threshold:
            return self.rule, ratio
        return None

    def check(self, doc):
        from hojichar import Document as HDocument

        text = self._non_blank(doc.text)
        hd = HDocument(text)
        self._h_filter.apply(hd)
        if hd.is_rejected:
            return self.rule, self.value(text)
        return None

    def value(self, text):
        lines = [len(x) for x in self._non_blank(text).split("\n")]
        return sum(1 for x in lines if x <= 10) / max(1, len(lines))


class SingleCharParams(Section):
    threshold: int = Field(200, ge=2, description="drop a run of one character this long")


@register
class SingleCharacterRepetition(HojiCharRule):
    """Drops documents with one character repeated `threshold` times in a row
    (HojiChar `SingleCharacterRepetitionFilter`)."""

    rule = "single_char_repetition"
    Params = SingleCharParams

    def make(self):
        from hojichar.filters.document_filters import SingleCharacterRepetitionFilter

        return SingleCharacterRepetitionFilter(threshold=self.params.threshold)

    def setup(self) -> None:
        super().setup()
        # `threshold` equal characters in a row: what the filter looks for, found by one
        # regex search instead of its Python loop over every character
        self._h_run = re.compile(rf"(.)\1{{{self.params.threshold - 1}}}", re.DOTALL)

    def check(self, doc):
        if self._h_run.search(doc.text) is None:
            return None  # no such run: the filter keeps it
        return super().check(doc)


class SpecialParams(Section):
    threshold: float = Field(0.4, ge=0, le=1)


@register
class TooManySpecialToken(HojiCharRule):
    """Drops documents dominated by punctuation, symbols and emoji (HojiChar
    `DiscardTooManySpecialToken`, from BigScience); value: the share."""

    rule = "special_characters"
    Params = SpecialParams

    def make(self):
        from hojichar.filters.document_filters import DiscardTooManySpecialToken

        return DiscardTooManySpecialToken(threshold=self.params.threshold)

    def value(self, text):
        return special_characters_ratio(self._h_filter, text)


# --- part-of-speech filters (fugashi + unidic-lite) -------------------------------


class NounsParams(Section):
    threshold: float = Field(0.80, ge=0, le=1, description="max share of nouns among non-symbol words")
    max_parse_chars: int = Field(100_000, ge=100)


@register
class TooManyNouns(HojiCharRule):
    """Drops keyword lists and ad copy: the share of nouns among words (symbols
    excluded) is at or above `threshold` (HojiChar `DiscardTooManyNouns`, fugashi +
    unidic-lite); value: the noun share."""

    rule = "too_many_nouns"
    Params = NounsParams

    def make(self):
        from hojichar.filters.document_filters import DiscardTooManyNouns

        f = DiscardTooManyNouns(threshold=self.params.threshold, max_parse_chars=self.params.max_parse_chars)
        f.tagger = SharedTagger()  # one parse per document, shared with the other word rules
        return f

    def value(self, text):
        n = total = 0
        for chunk in text_chunks(self._h_filter, text):
            for w in self._h_filter.tagger(chunk):
                pos = w.feature.pos1
                if pos != "補助記号":
                    total += 1
                    n += pos == "名詞"
        return n / total if total else 0.0


class WordRepParams(Section):
    threshold: float = Field(0.40, ge=0, le=1)
    ngram_size: int = Field(7, ge=1, description="word n-gram size")
    max_parse_chars: int = Field(100_000, ge=100)


@register
class WordRepetitionRatio(HojiCharRule):
    """Share of word n-grams that occur more than once (HojiChar
    `WordRepetitionRatioFilter`, fugashi words); catches templated SEO lines such as
    「〇〇市の一戸建てを売る」 repeated with other place names; value: the share."""

    rule = "word_repetition"
    Params = WordRepParams

    def make(self):
        from hojichar.filters.document_filters import WordRepetitionRatioFilter

        f = WordRepetitionRatioFilter(
            threshold=self.params.threshold,
            ngram_size=self.params.ngram_size,
            max_parse_chars=self.params.max_parse_chars,
        )
        f.tagger = SharedTagger()
        return f

    def value(self, text):
        return word_repetition_ratio(self._h_filter, text, self.params.ngram_size)

    def check(self, doc):
        # HojiChar's statistic and decision, with the n-grams counted by `Counter` (in C)
        return self.check_value(doc)
