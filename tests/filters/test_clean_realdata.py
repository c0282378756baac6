"""The clean stage on real data (../shared/data): the labelled mC4-ja quality set,
Wikipedia paragraphs, and a real case the part-of-speech filters decide."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest

from shikomi.config import load_config
from shikomi.filters.classifier import read_labels
from shikomi.filters.evaluate import evaluate, format_table, group_labelled, run_chain
from shikomi.filters.profile import build_rules

pytestmark = pytest.mark.realdata

GOLD = "gold/quality/mc4ja_good_bad.jsonl"


def test_default_profile_on_labelled_mc4ja(shared_data):
    labels = str(shared_data / GOLD)
    before = evaluate(load_config(None, {"clean": {"rules": {"quality_classifier": False}}}), labels, group=3)
    # a user's own labels train the classifier (the shipped model is tested in test_quality_model.py)
    own = {"quality_labels": labels, "rules": {"quality_classifier": {"threshold": 0.4}}}
    after = evaluate(load_config(None, {"clean": own}), labels, group=3, folds=5)
    print("\nrules only (HojiChar + Swallow + POS):\n" + format_table(before))
    print("\ndefault profile (rules + quality classifier, 5-fold cross-validated):\n" + format_table(after))
    assert before["overall"]["keep_good"] >= 0.95  # the rules alone rarely hurt good text...
    assert before["overall"]["drop_bad"] < 0.6  # ...but miss most fluent ad/SEO copy
    assert after["overall"]["keep_good"] >= 0.90
    assert after["overall"]["drop_bad"] >= 0.60
    drops = {r["rule"]: r for r in after["rules"]}
    assert drops["quality_classifier"]["dropped_bad"] > drops["quality_classifier"]["dropped_good"] * 5


def _wikipedia_docs(shared_data):
    paras = [json.loads(line) for line in (shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl").open(encoding="utf-8")]
    articles = OrderedDict()
    for p in paras:
        articles.setdefault(p["title"], []).append(p["text"])
    return [p["text"] for p in paras], ["\n".join(v) for v in articles.values()]


def test_wikipedia_paragraphs_are_kept(shared_data):
    # the default profile with the shipped model (trained on other Wikipedia text: article leads)
    rules, notes = build_rules(load_config(None).clean)
    assert "quality_classifier" in [r.rule for r in rules]
    paragraphs, articles = _wikipedia_docs(shared_data)
    for name, docs in (("paragraphs", paragraphs), ("articles", articles)):
        reasons = [run_chain(rules, t)[0] for t in docs]
        kept = sum(r is None for r in reasons) / len(docs)
        by_rule = {}
        for r in reasons:
            if r:
                by_rule[r.split(":")[0]] = by_rule.get(r.split(":")[0], 0) + 1
        print(f"\nWikipedia {name}: {len(docs)} documents, kept {kept:.1%}; dropped by {by_rule}")
        assert kept >= 0.97, by_rule


def test_pos_filters_change_the_result_on_a_real_case(shared_data):
    rows = read_labels(shared_data / GOLD)
    with_pos, _ = build_rules(load_config(None, {"clean": {"rules": {"quality_classifier": False}}}).clean)
    without, _ = build_rules(
        load_config(
            None, {"clean": {"rules": {"quality_classifier": False, "too_many_nouns": False, "word_repetition": False}}}
        ).clean
    )
    changed = []
    for d in group_labelled(rows, 1):
        a, b = run_chain(with_pos, d["text"])[0], run_chain(without, d["text"])[0]
        if a != b:
            changed.append((d, a, b))
    assert changed, "the POS filters decided no document"
    for d, a, b in changed:
        print(f"\nline {d['first']} ({d['label']}): with POS {a}, without POS kept: {d['text'][:120]}")
        assert b is None and a.split(":")[0] in {"too_many_nouns", "word_repetition"}
    # the real case: a blog navigation line, labelled bad, whose word 7-grams repeat
    assert any(d["label"] == "bad" and a.startswith("word_repetition") for d, a, _ in changed)
