"""The clean stage's shortcuts decide exactly as the code they stand in for: the words
from MeCab's text output against fugashi's nodes, the early exits of ng_word_ratio,
single_char_repetition and the PII rules against the full computation, and the
Counter-based n-gram statistics against HojiChar's and datatrove's own, on real
Japanese text (../shared/data) and edge cases."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

import pytest

from shikomi.filters import ja_words
from shikomi.filters.hojichar_rules import char_repetition_ratio, word_repetition_ratio
from shikomi.filters.pii import PII_RULES, fold
from shikomi.filters.quality_rules import _top_ngram_fraction
from shikomi.filters.registry import make_rule

GOLD = "gold/quality/mc4ja_good_bad.jsonl"
EDGE = [
    "",
    "EOS",
    "今日は 良い天気。\nですね\u3000ｱ zzqx\t\r\n x",
    "タブ\tと\r\n改行\n\nと全角\u3000空白",
    "😀絵文字と①②と㍻と\u200bゼロ幅",
    "ＡＢＣ１２３ｶﾀｶﾅ",
    "EOS\tEOS\nEOS",
]


def _texts(shared_data, n=400):
    rows = [json.loads(x) for x in (shared_data / GOLD).open(encoding="utf-8")][:n]
    with (shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl").open(encoding="utf-8") as f:
        paras = [json.loads(x)["text"] for _, x in zip(range(n), f)]
    texts = [r["text"] for r in rows] + paras + EDGE
    return texts + [unicodedata.normalize("NFKC", t) for t in texts]


@pytest.mark.realdata
def test_words_from_mecab_text_equal_fugashi_nodes(shared_data):
    from fugashi import Tagger

    own = Tagger("-Owakati")
    for t in _texts(shared_data, 150):
        want = [(w.surface, w.feature.pos1) for w in own(t)]
        got = ja_words.parse(t)
        assert [(w.surface, w.feature.pos1) for w in got] == want, t[:80]
        ja_words._NODES = ("", [])
        assert ja_words.wakati(t) == " ".join(own.parse(t).split())  # straight from MeCab's output
        assert ja_words.nodes(t) is ja_words.nodes(t)  # one parse per text
        assert ja_words.wakati(t) == " ".join(own.parse(t).split())  # from the shared words
        assert ja_words.word_list(t) == [s for s, _ in want if s and not s.isspace()]


def test_unsplittable_output_falls_back_to_nodes(monkeypatch):
    class Broken:  # a surface holding a tab: the counts no longer match
        def parse(self, text):
            return "今日\tは\t名詞\n天気\t名詞\nEOS"

    monkeypatch.setattr(ja_words, "_POS_TAGGER", Broken())
    words = ja_words.parse("今日は天気")
    assert [(w.surface, w.feature.pos1) for w in words] == [("今日", "名詞"), ("は", "助詞"), ("天気", "名詞")]
    ja_words._NODES = ("", [])
    assert ja_words.wakati("今日は天気") == "今日 は 天気"


@pytest.mark.realdata
def test_early_exits_decide_as_the_full_computation(shared_data):
    from datatrove.pipeline.filters.gopher_repetition_filter import find_top_duplicate
    from hojichar import Document as HDocument
    from hojichar.filters.document_filters import (
        CharRepetitionRatioFilter,
        SingleCharacterRepetitionFilter,
        WordRepetitionRatioFilter,
    )

    texts = _texts(shared_data, 120)
    ng = make_rule("ng_word_ratio", {"max": 0.0})
    ng.ensure_ready()
    texts += [
        "あいうえお" * 3 + "ー" * 250,
        "あ" * 199 + "い",
        "x" * 200,
        "ポルノ映画の話",
        "淫らな",
        "セックスピストルズ",
    ]
    single = make_rule("single_char_repetition", {"threshold": 200})
    single.ensure_ready()
    h_single = SingleCharacterRepetitionFilter(threshold=200)
    pii = [make_rule(r.rule, {}) for r in PII_RULES]
    for r in pii:
        r.ensure_ready()
    h_char, h_rep = CharRepetitionRatioFilter(), WordRepetitionRatioFilter()
    rep = make_rule("word_repetition", {})
    rep.ensure_ready()
    hits = Counter()
    for t in texts:
        covered = sum(m.end() - m.start() for m in ng._h_pat.finditer(t))  # the pattern on every text
        want = ("ng_word_ratio", covered / len(t)) if t and covered / len(t) > 0 else None
        got = ng.apply_text(t)
        assert got == want, t[:80]
        hits["ng"] += got is not None
        is_rep = h_single.apply(HDocument(t)).is_rejected
        assert (single.apply_text(t) is not None) == is_rep
        hits["single"] += is_rep
        for n in (2, 3, 4):
            grams = [t[i : i + n] for i in range(len(t) - n + 1)]
            want_top = find_top_duplicate(grams) / len(t) if len(t) >= n else 0.0
            assert _top_ngram_fraction(t, n) == want_top
        for r in pii:
            full = list(r.spans(fold(t)))
            assert r.find(t) == full
            hits[r.rule] += bool(full)
        assert char_repetition_ratio(t, 5) == h_char.compute_character_repetition_ratio(t, 5)
        for n in (1, 3, 7):
            assert word_repetition_ratio(rep._h_filter, t, n) == h_rep.compute_word_repetition_ratio(t, n)
    assert hits["ng"] >= 3 and hits["single"] == 2  # both branches ran


@pytest.mark.realdata
def test_pii_early_exits_on_the_labelled_set(shared_data):
    from tests.helpers.pii_testset import build

    rules = [make_rule(r.rule, {}) for r in PII_RULES]
    found = Counter()
    for c in build(shared_data, per_kind=40, seed=3):
        for r in rules:
            full = list(r.spans(fold(c.text)))
            assert r.find(c.text) == full, (r.rule, c.text[:80])
            found[r.rule] += bool(full)
    assert all(found[r.rule] for r in rules)  # every kind found something


def test_single_char_run_pattern_matches_hojichar_runs():
    from hojichar import Document as HDocument
    from hojichar.filters.document_filters import SingleCharacterRepetitionFilter

    rule = make_rule("single_char_repetition", {"threshold": 5})
    rule.ensure_ready()
    h = SingleCharacterRepetitionFilter(threshold=5)
    for t in ["aaaa", "aaaaa", "abababab", "\n\n\n\n\n", "ああああ。ああああ", "😀😀😀😀😀x", "", "xaaaaay"]:
        assert (rule.apply_text(t) is not None) == h.apply(HDocument(t)).is_rejected, t
    assert re.compile(r"(.)\1{4}", re.DOTALL).pattern == rule._h_run.pattern
