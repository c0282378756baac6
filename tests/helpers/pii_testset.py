"""A labelled PII test set built from real Japanese text: each case is one real
paragraph (JSQuAD Wikipedia paragraphs, Wikipedia article leads) with one sentence
planted at a sentence boundary. The sentence carries either a piece of personal
information of a known kind and written form, or a look-alike (a date, price,
postal code, ISBN, order number, time, version string, or a 12/16-digit number that
fails its check digit / Luhn sum) that must be left untouched.

Deterministic for a seed. Nothing is written to disk.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from shikomi.filters.pii import luhn_ok, my_number_ok

FULL = str.maketrans({**{chr(48 + i): chr(0xFF10 + i) for i in range(10)}, "-": "－", "(": "（", ")": "）"})


@dataclass
class Case:
    kind: str  # email, phone, my_number, ip, card, toll_free, or lookalike
    form: str  # the written form (or the look-alike's type)
    value: str  # the planted string
    base: str  # the real paragraph
    text: str  # the paragraph with the sentence planted


def paragraphs(shared_data: Path, limit: int | None = None) -> list[str]:
    out = []
    for name in ("ja/jsquad_wikipedia_paragraphs.jsonl", "ja/jawiki_annotated_corpus_leads.jsonl"):
        with (shared_data / name).open(encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line in f]
    return out[:limit] if limit else out


def _d(rng, n):
    return "".join(rng.choice("0123456789") for _ in range(n))


# --- personal information, by kind and form -----------------------------------------


def phone(rng) -> tuple[str, str]:
    area = rng.choice(["3", "6", "45", "52", "92", "466", "742", "985", "4992", "1267"])
    local = 8 - len(area) + 1  # 10 digits in all: 0 + area + local
    mid_len = max(1, local - 4)
    mid, last = _d(rng, mid_len), _d(rng, 4)
    mid = str(rng.randint(2, 9)) + mid[1:]
    mob = rng.choice(["90", "80", "70", "50"])
    m1, m2 = str(rng.randint(1, 9)) + _d(rng, 3), _d(rng, 4)  # 080-0... is 0800 (toll-free)
    forms = {
        "hyphen": f"0{area}-{mid}-{last}",
        "paren_area": f"(0{area}){mid}-{last}",
        "paren_mid": f"0{area}({mid}){last}",
        "mobile": f"0{mob}-{m1}-{m2}",
        "intl": f"+81-{area}-{mid}-{last}",
        "intl_mobile": f"+81 {mob}-{m1}-{m2}",
        "intl_zero": f"+81(0){area}-{mid}-{last}",
        "fullwidth": f"0{area}-{mid}-{last}".translate(FULL),
        "fullwidth_mobile": f"0{mob}-{m1}-{m2}".translate(FULL),
        "no_sep": f"0{area}{mid}{last}",
        "no_sep_mobile": f"0{mob}{m1}{m2}",
        "spaces": f"0{area} {mid} {last}",
    }
    form = rng.choice(sorted(forms))
    return form, forms[form]


PHONE_SENTENCES = [
    "お問い合わせは{}まで。",
    "ご予約・お問い合わせ：電話{}（平日9時〜17時）。",
    "詳しくは事務局（TEL {}）へお電話ください。",
    "連絡先 {}",
    "担当者の携帯電話は{}です。",
    "電話{}、受付は土日祝を除く。",
]


def email(rng) -> tuple[str, str]:
    user = rng.choice(["info", "taro.yamada", "h-suzuki", "kenji_07", "support", "sato+news", "y.tanaka"])
    dom = rng.choice(
        ["example.co.jp", "mail.example.com", "docomo.ne.jp", "gmail.com", "u-tokyo.ac.jp", "city.x.lg.jp"]
    )
    forms = {"plain": f"{user}@{dom}", "fullwidth_at": f"{user}＠{dom}", "upper": f"{user.upper()}@{dom.upper()}"}
    form = rng.choice(sorted(forms))
    return form, forms[form]


EMAIL_SENTENCES = [
    "メール：{}までご連絡ください。",
    "ご意見は{}へお寄せください。",
    "連絡先（{}）",
    "問い合わせ先 E-mail: {}",
]


def my_number(rng) -> tuple[str, str]:
    while True:
        n = _d(rng, 12)
        if my_number_ok(n):
            break
    forms = {"plain": n, "spaces": f"{n[:4]} {n[4:8]} {n[8:]}", "hyphen": f"{n[:4]}-{n[4:8]}-{n[8:]}"}
    forms["fullwidth"] = n.translate(FULL)
    form = rng.choice(sorted(forms))
    return form, forms[form]


MY_NUMBER_SENTENCES = ["マイナンバーは{}です。", "個人番号：{}", "申請書に個人番号（{}）を記入した。"]


def ip(rng) -> tuple[str, str]:
    if rng.random() < 0.6:
        while True:
            a = ipaddress.IPv4Address(rng.getrandbits(32))
            if a.is_global:
                return "ipv4", str(a)
    while True:
        a = ipaddress.IPv6Address((0x2400 + rng.randint(0, 0x2FF)) << 112 | rng.getrandbits(64))
        if a.is_global:
            return "ipv6", a.compressed


IP_SENTENCES = ["接続元IPアドレスは{}だった。", "サーバー（{}）に不正アクセスがあった。", "アクセス元: {}"]

ISSUERS = ["4", "51", "53", "55", "2221", "34", "37", "35", "36", "6011", "62"]


def card(rng) -> tuple[str, str]:
    pre = rng.choice(ISSUERS)
    n = 15 if pre in ("34", "37") else 14 if pre == "36" else 16
    while True:
        body = pre + _d(rng, n - len(pre))
        if luhn_ok(body):
            break
    if n == 15:
        return "amex", f"{body[:4]} {body[4:10]} {body[10:]}"
    if n == 14:
        return "diners", body
    forms = {"spaces": " ".join(body[i : i + 4] for i in range(0, 16, 4)), "plain": body}
    forms["hyphen"] = forms["spaces"].replace(" ", "-")
    forms["fullwidth"] = forms["hyphen"].translate(FULL)
    form = rng.choice(sorted(forms))
    return form, forms[form]


CARD_SENTENCES = ["カード番号{}で決済した。", "クレジットカード：{}", "番号（{}）の有効期限を確認した。"]


def toll_free(rng) -> tuple[str, str]:
    forms = {
        "0120": f"0120-{_d(rng, 3)}-{_d(rng, 3)}",
        "0800": f"0800-{_d(rng, 3)}-{_d(rng, 4)}",
        "0570": f"0570-{_d(rng, 3)}-{_d(rng, 3)}",
    }
    form = rng.choice(sorted(forms))
    return form, forms[form]


TOLL_FREE_SENTENCES = ["フリーダイヤル{}（通話料無料）。", "ナビダイヤル {} まで。"]

# --- look-alikes ---------------------------------------------------------------------


def lookalike(rng) -> tuple[str, str]:
    y, m, d = rng.randint(1900, 2030), rng.randint(1, 12), rng.randint(1, 28)
    while True:
        bad12 = _d(rng, 12)
        if not my_number_ok(bad12):
            break
    while True:
        pre = rng.choice(["4", "5", "35"])
        bad16 = pre + _d(rng, 16 - len(pre))
        if not luhn_ok(bad16):
            break
    isbn13 = "978" + "4" + _d(rng, 8)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(isbn13))
    isbn13 += str((10 - s % 10) % 10)
    forms = {
        "date_hyphen": f"{y}-{m:02d}-{d:02d}",
        "date_slash": f"{y}/{m}/{d}",
        "date_kanji": f"{y}年{m}月{d}日",
        "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "time_range": f"{rng.randint(6, 11):02d}:00-{rng.randint(12, 23):02d}:30",
        "price_yen": f"{rng.randint(1, 999)},{_d(rng, 3)},{_d(rng, 3)}円",
        "price_symbol": f"¥{rng.randint(1, 99)},{_d(rng, 3)}",
        "postal": f"〒{_d(rng, 3)}-{_d(rng, 4)}",
        "postal_zero": f"〒0{_d(rng, 2)}-{_d(rng, 4)}",
        "isbn13": f"ISBN{isbn13[:3]}-{isbn13[3]}-{isbn13[4:8]}-{isbn13[8:12]}-{isbn13[12]}",
        "isbn13_plain": f"ISBN {isbn13}",
        "isbn10": f"ISBN 4-{_d(rng, 2)}-{_d(rng, 6)}-{_d(rng, 1)}",
        "order_number": f"注文番号：{rng.randint(1, 9)}{_d(rng, 3)}-{_d(rng, 4)}-{_d(rng, 4)}",
        "order_number_zero": f"受付番号 0{_d(rng, 9)}",
        "product_number": f"型番 {rng.choice(['KJ', 'NW', 'SX'])}-{_d(rng, 4)}",
        "jan_code": f"JANコード 49{_d(rng, 11)}",
        "twelve_digits_bad_check": bad12,
        "sixteen_digits_bad_luhn": " ".join(bad16[i : i + 4] for i in range(0, 16, 4)),
        "version_kana": f"バージョン{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(1, 99)}",
        "version_v": f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(1, 99)}",
        "decimal": f"{rng.randint(1, 999)}.{_d(rng, 5)}",
        "coordinates": f"北緯{rng.randint(24, 45)}.{_d(rng, 4)}度、東経{rng.randint(123, 145)}.{_d(rng, 4)}度",
        "year_range": f"{y}-{y + rng.randint(1, 30)}",
        "population": f"{rng.randint(1, 99)},{_d(rng, 3)},{_d(rng, 3)}人",
        "phone_too_short": f"03-{_d(rng, 3)}-{_d(rng, 3)}",
        "section_number": f"{rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(1, 9)}項",
        "private_ip": f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    }
    form = rng.choice(sorted(forms))
    return form, forms[form]


LOOKALIKE_SENTENCES = [
    "この記録は{}のものである。",
    "資料によれば{}とされる。",
    "（{}）",
    "詳細は{}を参照。",
]

KINDS = {
    "email": (email, EMAIL_SENTENCES),
    "phone": (phone, PHONE_SENTENCES),
    "my_number": (my_number, MY_NUMBER_SENTENCES),
    "ip": (ip, IP_SENTENCES),
    "card": (card, CARD_SENTENCES),
    "toll_free": (toll_free, TOLL_FREE_SENTENCES),
    "lookalike": (lookalike, LOOKALIKE_SENTENCES),
}
# the rule and placeholder that should catch each kind
RULE_OF = {"email": "pii_email", "phone": "pii_phone", "my_number": "pii_my_number", "ip": "pii_ip", "card": "pii_card"}


def plant(base: str, sentence: str, rng) -> str:
    if not sentence.endswith(("。", "）")):
        sentence += "\n"  # a line of its own (a contact line, a caption)
    cuts = [0] + [m.end() for m in re.finditer(r"[。\n]", base)]
    at = rng.choice(cuts)
    return base[:at] + sentence + base[at:]


def build(shared_data: Path, per_kind: int = 200, seed: int = 0) -> list[Case]:
    """`per_kind` cases of each PII kind, toll-free numbers, and `3 * per_kind` look-alikes."""
    rng = random.Random(seed)
    paras = paragraphs(shared_data)
    cases = []
    for kind, (gen, sentences) in KINDS.items():
        for _ in range(per_kind * (3 if kind == "lookalike" else 1)):
            form, value = gen(rng)
            base = rng.choice(paras)
            cases.append(Case(kind, form, value, base, plant(base, rng.choice(sentences).format(value), rng)))
    return cases
