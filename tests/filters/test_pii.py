"""PII rules: the labelled test set of tests/helpers/pii_testset.py (real Japanese
paragraphs with planted personal information and look-alikes), the check digits,
and the per-kind actions."""

from __future__ import annotations

from collections import Counter

import pytest

from shikomi.config import load_config
from shikomi.errors import UserError
from shikomi.filters.pii import luhn_ok, my_number_ok
from shikomi.filters.profile import build_rules
from shikomi.filters.registry import make_rule
from tests.helpers.pii_testset import RULE_OF, build, paragraphs


def _pii_rules(overrides=None):
    rules, _ = build_rules(load_config(None, {"clean": {"rules": overrides or {}}}).clean)
    return [r for r in rules if r.rule.startswith("pii_")]


def _mask(rules, text):
    for r in rules:
        text = r.apply_text(text)
    return text


def test_default_profile_runs_every_kind_in_place_of_hojichar():
    assert [r.rule for r in _pii_rules()] == ["pii_email", "pii_ip", "pii_card", "pii_my_number", "pii_phone"]


@pytest.mark.realdata
def test_labelled_set_recall_per_kind_and_lookalikes_untouched(shared_data):
    rules = _pii_rules()
    ph = {r.rule: r.placeholder for r in rules}
    cases = build(shared_data, per_kind=150, seed=1)
    total, ok, misses = Counter(), Counter(), []
    for c in cases:
        out, base_out = _mask(rules, c.text), _mask(rules, c.base)
        if c.kind in RULE_OF:
            p = ph[RULE_OF[c.kind]]
            good = c.value not in out and out.count(p) == base_out.count(p) + 1
        else:  # look-alikes and (kept by default) toll-free numbers stay verbatim
            good = c.value in out and out.count("[") == base_out.count("[") + c.text.count("[") - c.base.count("[")
        total[c.kind] += 1
        ok[c.kind] += good
        if not good:
            misses.append((c.kind, c.form, c.value))
    rates = {k: ok[k] / total[k] for k in total}
    print("\nPII recall / untouched per kind:", {k: f"{v:.3f}" for k, v in rates.items()}, "misses:", misses[:10])
    for kind in RULE_OF:
        assert rates[kind] >= 0.98, (kind, misses)
    assert rates["lookalike"] >= 0.99, misses
    assert rates["toll_free"] >= 0.99, misses
    forms = Counter(c.form for c in cases if c.kind == "phone")
    assert len(forms) >= 10  # every written form is in the set


@pytest.mark.realdata
def test_toll_free_numbers_masked_when_configured(shared_data):
    rules = _pii_rules({"pii_phone": {"keep_prefixes": []}})
    cases = [c for c in build(shared_data, per_kind=60, seed=2) if c.kind == "toll_free"]
    assert sum(c.value not in _mask(rules, c.text) for c in cases) == len(cases)


@pytest.mark.realdata
def test_real_wikipedia_text_is_almost_never_touched(shared_data):
    rules = _pii_rules()
    paras = paragraphs(shared_data)
    touched = [p for p in paras if _mask(rules, p) != p]
    # one lead quotes a public mailing-list address (debian-derivatives@lists.debian.org)
    assert len(touched) <= 2, [t[:80] for t in touched]


def test_check_digits():
    assert my_number_ok("123456789018")
    assert not my_number_ok("123456789012")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


@pytest.mark.parametrize(
    "text, expect",
    [
        ("お問い合わせは03-1234-5678まで", "お問い合わせは[PHONE]まで"),
        ("電話(03)1234-5678", "電話[PHONE]"),
        ("携帯０９０－１２３４－５６７８", "携帯[PHONE]"),
        ("+81 90-1234-5678へ", "[PHONE]へ"),
        ("フリーダイヤル0120-123-456", "フリーダイヤル0120-123-456"),
        ("〒060-0001 札幌市", "〒060-0001 札幌市"),
        ("注文番号 0312345678", "注文番号 0312345678"),
        ("注文番号123、電話03-1234-5678", "注文番号123、電話[PHONE]"),
        ("マイナンバー1234 5678 9018", "マイナンバー[MYNUMBER]"),
        ("番号123456789012", "番号123456789012"),
        ("mail: info@example.co.jpまで", "mail: [EMAIL]まで"),
        ("接続元 8.8.8.8 と 2404:6800:4004:80a::200e", "接続元 [IP] と [IP]"),
        ("バージョン1.2.3.4、192.168.0.1", "バージョン1.2.3.4、192.168.0.1"),
        ("カード4111 1111 1111 1111", "カード[CARD]"),
        ("カード4111 1111 1111 1112", "カード4111 1111 1111 1112"),
    ],
)
def test_default_rules_on_written_forms(text, expect):
    assert _mask(_pii_rules(), text) == expect


def test_actions_per_kind():
    drop = make_rule("pii_email", {"action": "drop"})
    assert drop.kind == "filter"
    assert drop.apply_text("連絡は a@example.com と b@example.org へ") == ("pii_email", 2)
    keep = make_rule("pii_phone", {"action": "keep"})
    assert keep.apply_text("03-1234-5678") == "03-1234-5678"
    custom = make_rule("pii_phone", {"placeholder": "<電話番号>"})
    assert custom.apply_text("電話03-1234-5678") == "電話<電話番号>"
    with pytest.raises(UserError, match="pii_ip.*action"):
        make_rule("pii_ip", {"action": "erase"})
