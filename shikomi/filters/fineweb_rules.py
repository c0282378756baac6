"""FineWeb-2's filters on Japanese words: Gopher repetition, FineWeb quality, Gopher
quality, and the language-score floor (profile `fineweb2`).

The statistics are those of datatrove's `GopherRepetitionFilter`,
`FineWebQualityFilter` and `GopherQualityFilter` (computed with datatrove's own
helpers), on words from fugashi + unidic-lite (`ja_words`) instead of datatrove's
spaCy tokenizer. Each rule drops with the statistic that tripped it, as
`<rule>:<check>=<value>`. Thresholds come from the profile (FineWeb-2's
`configs/jpn_Jpan.yml`; the source of each number is cited there).
"""

from __future__ import annotations

import re

from pydantic import Field

from shikomi.config.base import Section
from shikomi.filters.base import CleanRule, register
from shikomi.filters.ja_words import word_list


def _r(x: float) -> float:
    return round(x, 4)


class LanguageScoreParams(Section):
    min: float = Field(0.65, ge=0, le=1, description="drop when the Japanese language score is below this")
    language: str = Field("ja", description="the language whose score is compared")


@register
class LanguageScore(CleanRule):
    """Drops documents whose language score is below `min`: `metadata.language_score`
    from the langid stage when it is for `language`, else the shipped lid.176 model's
    probability of `language` on the text. Value: the score."""

    rule = "language_score"
    Params = LanguageScoreParams

    def setup(self):
        self._h_lid = None

    def score(self, doc) -> float:
        md = doc.metadata
        if md.get("language") == self.params.language and "language_score" in md:
            return float(md["language_score"])
        if self._h_lid is None:
            from shikomi.text.lid import FastTextLID

            self._h_lid = FastTextLID()
        lid = self._h_lid
        return lid.score_of(lid.normalise(doc.text), self.params.language)

    def check(self, doc):
        s = self.score(doc)
        if s < self.params.min:
            return self.rule, _r(s)


class GopherRepetitionParams(Section):
    dup_line_frac: float | None = Field(0.3, ge=0, le=1, description="max share of lines repeating an earlier one")
    top_n_grams: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16},
        description="{n: max share of characters in the most frequent word n-gram}",
    )
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="{n: max share of characters in repeated word n-grams}",
    )


@register
class GopherRepetition(CleanRule):
    """Gopher's repetition limits (Rae et al. 2021, table A1) on lines and fugashi
    words; paragraph checks are off as in FineWeb-2. Value: `check=fraction`."""

    rule = "gopher_repetition"
    Params = GopherRepetitionParams

    def check(self, doc):
        from datatrove.pipeline.filters.gopher_repetition_filter import (
            find_all_duplicate,
            find_duplicates,
            find_top_duplicate,
            get_n_grams,
        )

        text = doc.text
        if not text:
            return self.rule, "empty"
        p = self.params
        lines = re.split(r"\n+", text)
        if p.dup_line_frac:
            frac = find_duplicates(lines)[0] / len(lines)
            if frac > p.dup_line_frac:
                return self.rule, f"dup_line_frac={_r(frac)}"
        words = word_list(text)
        for n, limit in sorted(p.top_n_grams.items()):
            grams = get_n_grams(words, n)
            if grams:
                frac = find_top_duplicate(grams) / len(text)
                if frac > limit:
                    return self.rule, f"top_{n}_gram={_r(frac)}"
        for n, limit in sorted(p.dup_n_grams.items()):
            frac = find_all_duplicate(words, n) / len(text)
            if frac > limit:
                return self.rule, f"dup_{n}_gram={_r(frac)}"


class FineWebQualityParams(Section):
    line_punct_thr: float = Field(0.12, ge=0, le=1, description="min share of lines ending in terminal punctuation")
    char_duplicates_ratio: float = Field(0.01, ge=0, le=1, description="max share of characters in repeated lines")
    new_line_ratio: float = Field(0.3, ge=0, description="max newlines per word")
    short_line_thr: float | None = Field(None, ge=0, le=1, description="max share of short lines (None: off)")
    short_line_length: int = Field(30, ge=1)


@register
class FineWebQuality(CleanRule):
    """FineWeb's quality filter (Penedo et al. 2024): terminal punctuation per line,
    duplicated line characters, newlines per fugashi word. Value: `check=fraction`."""

    rule = "fineweb_quality"
    Params = FineWebQualityParams

    def setup(self):
        from datatrove.utils.text import TERMINAL_PUNCTUATION

        self._h_stop = tuple(TERMINAL_PUNCTUATION)

    def check(self, doc):
        from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates

        p = self.params
        lines = [x for x in doc.text.split("\n") if x.strip()]
        if not lines:
            return self.rule, "empty"
        ratio = sum(1 for x in lines if x.endswith(self._h_stop)) / len(lines)
        if ratio < p.line_punct_thr:
            return self.rule, f"line_punct_ratio={_r(ratio)}"
        if p.short_line_thr is not None:
            ratio = sum(1 for x in lines if len(x) <= p.short_line_length) / len(lines)
            if ratio > p.short_line_thr:
                return self.rule, f"short_line_ratio={_r(ratio)}"
        chars = len(doc.text.replace("\n", "")) or 1
        ratio = find_duplicates(lines)[1] / chars
        if ratio > p.char_duplicates_ratio:
            return self.rule, f"char_dup_ratio={_r(ratio)}"
        words = word_list(doc.text)
        ratio = doc.text.count("\n") / max(len(words), 1)
        if ratio > p.new_line_ratio:
            return self.rule, f"list_ratio={_r(ratio)}"


class GopherQualityParams(Section):
    min_doc_words: int | None = Field(50, ge=0)
    max_doc_words: int | None = Field(100_000, ge=1)
    min_avg_word_length: float | None = Field(3, ge=0)
    max_avg_word_length: float | None = Field(10, ge=0)
    max_symbol_word_ratio: float | None = Field(0.1, ge=0)
    max_bullet_lines_ratio: float | None = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_ratio: float | None = Field(0.3, ge=0, le=1)
    max_non_alpha_words_ratio: float | None = Field(
        0.8, ge=0, le=1, description="min share of words with a letter (the name is Gopher's)"
    )
    min_stop_words: int | None = Field(2, ge=0)
    stop_words: list[str] = Field(default_factory=list, description="stop words (at least min_stop_words present)")


@register
class GopherQuality(CleanRule):
    """Gopher's quality heuristics (Rae et al. 2021) on fugashi words: word count,
    mean word length, # and ellipsis per word, bullet and ellipsis lines, words with
    a letter, stop words present. Value: `check=statistic`."""

    rule = "gopher_quality"
    Params = GopherQualityParams

    def setup(self):
        from datatrove.utils.text import PUNCTUATION_SET

        self._h_punct = PUNCTUATION_SET

    def check(self, doc):
        p = self.params
        text = doc.text
        words = word_list(text)
        n_words = len(words)
        if not n_words:
            return self.rule, "no_words"
        non_symbol = [w for w in words if any(ch not in self._h_punct for ch in w)]
        n = len(non_symbol)
        if p.min_doc_words and n < p.min_doc_words:
            return self.rule, f"short_doc={n}"
        if p.max_doc_words and n > p.max_doc_words:
            return self.rule, f"long_doc={n}"
        avg = sum(len(w) for w in non_symbol) / n if n else 0.0
        if p.min_avg_word_length and avg < p.min_avg_word_length:
            return self.rule, f"below_avg_word_length={_r(avg)}"
        if p.max_avg_word_length and avg > p.max_avg_word_length:
            return self.rule, f"above_avg_word_length={_r(avg)}"
        if p.max_symbol_word_ratio:
            if text.count("#") / n_words > p.max_symbol_word_ratio:
                return self.rule, f"too_many_hashes={_r(text.count('#') / n_words)}"
            ell = (text.count("...") + text.count("…")) / n_words
            if ell > p.max_symbol_word_ratio:
                return self.rule, f"too_many_ellipsis={_r(ell)}"
        lines = text.splitlines() or [text]
        if p.max_bullet_lines_ratio is not None:
            r = sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines)
            if r > p.max_bullet_lines_ratio:
                return self.rule, f"too_many_bullets={_r(r)}"
        if p.max_ellipsis_lines_ratio is not None:
            r = sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines)
            if r > p.max_ellipsis_lines_ratio:
                return self.rule, f"too_many_end_ellipsis={_r(r)}"
        if p.max_non_alpha_words_ratio:
            r = sum(any(c.isalpha() for c in w) for w in words) / n_words
            if r < p.max_non_alpha_words_ratio:
                return self.rule, f"below_alpha_words={_r(r)}"
        if p.min_stop_words:
            found = len(set(p.stop_words).intersection(words))
            if found < p.min_stop_words:
                return self.rule, f"stop_words={found}"
