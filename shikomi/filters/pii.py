"""Personal information in Japanese web text: one clean rule per kind.

    pii_email       e-mail addresses
    pii_ip          IPv4 / IPv6 addresses (global ones; private, loopback and
                    documentation ranges are kept by default)
    pii_card        payment card numbers: 14-19 digits, Luhn-valid, known issuer prefix
    pii_my_number   My Number (個人番号): 12 digits with a valid check digit
    pii_phone       Japanese phone numbers as they are written: 03-1234-5678,
                    (03)1234-5678, 03(1234)5678, 090-1234-5678, +81 3-1234-5678,
                    full-width digits, no separators; toll-free business numbers
                    (0120, 0800, 0570) are kept by default

Each rule's `action` is `mask` (replace each match by the kind's `placeholder`),
`drop` (drop the document; `reject_reason` is `rule:<matches>`) or `keep` (count
only). Masked matches are counted per rule in stats.json (`rules[].masked`,
`rules[].masked_docs`). Numbers that only look like these kinds (dates, prices,
postal codes, ISBNs, order numbers, times, version strings after "v"/"ver"/
"バージョン") are left alone: candidates are validated by digit count and grouping,
check digit or Luhn sum, and the words just before them.

Matching runs on a length-preserving fold of the text (full-width digits, letters
and hyphens to ASCII) so the spans replaced are those of the original text.
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Literal

from pydantic import Field

from shikomi.config.base import Section
from shikomi.filters.base import CleanRule, register

# one character for one character, so match offsets are offsets into the original text
_FOLD = {ord("０") + i: ord("0") + i for i in range(10)}
_FOLD.update({ord("Ａ") + i: ord("A") + i for i in range(26)})
_FOLD.update({ord("ａ") + i: ord("a") + i for i in range(26)})
_FOLD.update({ord(c): ord("-") for c in "－‐‑―−–—"})
_FOLD.update({ord("（"): ord("("), ord("）"): ord(")"), ord("＋"): ord("+"), ord("＠"): ord("@")})
_FOLD.update({ord("．"): ord("."), ord("："): ord(":"), ord("\u3000"): ord(" ")})


# the long-vowel mark is a hyphen only between digits (090ー1234ー5678, not マイナンバー)
_CHOON_DASH = re.compile(r"(?<=\d)[ーｰ](?=\d)")


def fold(text: str) -> str:
    """Full-width digits, letters and hyphen-like marks to ASCII, length kept."""
    return _CHOON_DASH.sub("-", text.translate(_FOLD))


_DIGIT = re.compile(r"\d")
_LAST_FOLD: tuple[str, str, int] = ("", "", 0)


def folded(text: str) -> tuple[str, int]:
    """`fold(text)` and its number of digits, kept for the last text: the rules run one
    after the other on the same document, and fold it once."""
    global _LAST_FOLD
    last = _LAST_FOLD
    if text is last[0] or text == last[0]:
        return last[1], last[2]
    f = fold(text)
    n = len(_DIGIT.findall(f))
    _LAST_FOLD = (text, f, n)
    return f, n


# words that say the number right after them (separators aside) is not personal
CONTEXT_CHARS = 12
NOT_PII_CONTEXT = re.compile(
    r"(?:(?:注文|受付|伝票|会員|管理|問合せ|問い合わせ|お問合せ|予約|商品|製品|部品|整理|登録|認証|追跡|口座|"
    r"型|品|型式|品目|シリアル|製造|ロット|請求|契約|発注|見積|取引|法人)(?:番号|No\.?|ID|コード)"
    r"|ISBN|ISSN|JAN(?:コード)?|ASIN|品番|型番|\bNo\.|version|ver\.?|バージョン|\bv)$",
    re.IGNORECASE,
)


def _context_says_not_pii(text: str, start: int) -> bool:
    before = text[max(0, start - CONTEXT_CHARS) : start]
    return bool(NOT_PII_CONTEXT.search(before.rstrip(" :=#(-")))


class PiiParams(Section):
    action: Literal["mask", "drop", "keep"] = Field(
        "mask", description="mask matches, drop the document, or count only"
    )
    placeholder: str = Field("", description="replacement text for each match (default: the kind's own)")


class PiiRule(CleanRule):
    """One kind of personal information: `spans(folded_text)` yields (start, end)."""

    kind_name: ClassVar[str] = ""
    default_placeholder: ClassVar[str] = ""
    Params = PiiParams

    @property
    def kind(self) -> str:  # a drop rule when the action is `drop`, a transform otherwise
        return "filter" if self.params.action == "drop" else "transform"

    @property
    def placeholder(self) -> str:
        return self.params.placeholder or self.default_placeholder

    def spans(self, folded: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def possible(self, folded: str, digits: int) -> bool:
        """False when the folded text cannot hold a match (too few digits, no @):
        most texts are decided without running the patterns."""
        return True

    def find(self, text: str) -> list[tuple[int, int]]:
        f, digits = folded(text)
        if not self.possible(f, digits):
            return []
        return list(self.spans(f))

    def check(self, doc):
        found = self.find(doc.text)
        if not found:
            return None
        self._h_found += len(found)
        self._h_found_docs += 1
        if self.params.action == "drop":
            return self.rule, len(found)
        if self.params.action == "mask":
            text, parts, pos = doc.text, [], 0
            for s, e in found:
                parts.append(text[pos:s])
                parts.append(self.placeholder)
                pos = e
            parts.append(text[pos:])
            doc.text = "".join(parts)
        return None

    def mask(self, text: str) -> str:
        """The text with every match replaced (whatever the action)."""
        out, pos = [], 0
        for s, e in self.find(text):
            out += [text[pos:s], self.placeholder]
            pos = e
        return "".join(out) + text[pos:]

    def setup(self) -> None:
        self._h_found = 0
        self._h_found_docs = 0

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.ensure_ready()
        try:
            yield from super().run(data, rank, world_size)
        finally:
            if self._h_found:
                key = "masked" if self.params.action == "mask" else "found"
                self.stat_update(key, value=self._h_found)
                self.stat_update(f"{key}_docs", value=self._h_found_docs)


# --- e-mail -----------------------------------------------------------------------

EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@"
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-@])"
)


@register
class PiiEmail(PiiRule):
    """E-mail addresses (`user@example.co.jp`, full-width ＠ too)."""

    rule = "pii_email"
    default_placeholder = "[EMAIL]"

    def possible(self, folded, digits):
        return "@" in folded

    def spans(self, folded):
        for m in EMAIL.finditer(folded):
            yield m.span()


# --- IP addresses -----------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.])(?<![A-Za-z]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d]|\.\d)")
SECTION_MARKS = set("項章節条版号")  # 8.2.4.1項 is a section number
IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![0-9A-Za-z:])")


class IpParams(PiiParams):
    keep_non_global: bool = Field(
        True, description="keep private, loopback, link-local and documentation addresses (not personal)"
    )


@register
class PiiIp(PiiRule):
    """IPv4 (`203.0.113.5`-shaped, each octet 0-255, no leading zeros) and IPv6
    addresses (validated by `ipaddress`). A dotted quad right after a letter or
    "version"/"ver."/"バージョン" is a version string, not an address."""

    rule = "pii_ip"
    default_placeholder = "[IP]"
    Params = IpParams

    def possible(self, folded, digits):  # a dotted quad, or two colons
        return (digits >= 4 and folded.count(".") >= 3) or folded.count(":") >= 2

    def spans(self, folded):
        out = []
        for pat in (IPV4, IPV6):
            for m in pat.finditer(folded):
                s = m.group()
                if pat is IPV6 and s.count(":") < 2:
                    continue
                try:
                    addr = ipaddress.ip_address(s)
                except ValueError:
                    continue
                if self.params.keep_non_global and not addr.is_global:
                    continue
                if pat is IPV4 and (
                    _context_says_not_pii(folded, m.start()) or folded[m.end() : m.end() + 1] in SECTION_MARKS
                ):
                    continue
                out.append(m.span())
        return sorted(out)


# --- payment cards ----------------------------------------------------------------

CARD = re.compile(
    r"(?<![\d\-])(?<!\d )(?:\d{4}(?:[ \-]\d{4}){3}(?:[ \-]?\d{1,3})?|\d{4}[ \-]\d{6}[ \-]\d{4,5}|\d{14,19})"
    r"(?![\d\-]|[ .,]\d)"
)
# issuer (IIN) prefixes: Visa, Mastercard, Amex, JCB, Diners, Discover, UnionPay
CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|35|30[0-5]|36|38|6011|64[4-9]|65|62)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class CardParams(PiiParams):
    known_issuer_only: bool = Field(
        True, description="require a Visa/Mastercard/Amex/JCB/Diners/Discover/UnionPay prefix"
    )


@register
class PiiCard(PiiRule):
    """Payment card numbers: 14-19 digits (4-4-4-4, Amex 4-6-5, or unbroken), Luhn
    check sum valid, with a known issuer prefix."""

    rule = "pii_card"
    default_placeholder = "[CARD]"
    Params = CardParams

    def possible(self, folded, digits):  # every form has at least 14 digits
        return digits >= 14

    def spans(self, folded):
        for m in CARD.finditer(folded):
            digits = re.sub(r"\D", "", m.group())
            if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
                continue
            if self.params.known_issuer_only and not CARD_PREFIX.match(digits):
                continue
            if _context_says_not_pii(folded, m.start()):
                continue
            yield m.span()


# --- My Number --------------------------------------------------------------------

MY_NUMBER = re.compile(r"(?<![\d\-.,])(?<!\d )(?:\d{4}([ \-]?)\d{4}\1\d{4})(?![\d\-]|[ .,]\d)")


def my_number_ok(digits: str) -> bool:
    """The check digit of a 12-digit 個人番号 (行政手続における特定の個人を識別するため
    の番号の利用等に関する法律施行令 第8条): with P(n) the n-th digit counted from the
    right of the first eleven and Q(n) = n + 1 for n <= 6, n - 5 for n >= 7, the check
    digit is 0 when sum(P*Q) mod 11 <= 1, else 11 - (sum mod 11)."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = digits[:11]
    s = 0
    for n in range(1, 12):
        p = ord(body[11 - n]) - 48
        q = n + 1 if n <= 6 else n - 5
        s += p * q
    r = s % 11
    return int(digits[11]) == (0 if r <= 1 else 11 - r)


@register
class PiiMyNumber(PiiRule):
    """My Number (個人番号): 12 digits, unbroken or 4-4-4 with one separator, whose
    last digit is the official check digit; after 注文番号/会員番号/ISBN/... it is not one."""

    rule = "pii_my_number"
    default_placeholder = "[MYNUMBER]"

    def possible(self, folded, digits):
        return digits >= 12

    def spans(self, folded):
        for m in MY_NUMBER.finditer(folded):
            digits = re.sub(r"\D", "", m.group())
            if my_number_ok(digits) and not _context_says_not_pii(folded, m.start()):
                yield m.span()


# --- phone numbers ----------------------------------------------------------------

_S = r"[ \-]"
PHONE = re.compile(
    r"(?<![\d\-+])(?<!\d[.,])(?:"
    r"\+\s?81[ \-]?(?:\(0\)[ \-]?)?\d{1,4}[ \-]?\d{1,4}[ \-]\d{3,4}"  # +81 3-1234-5678, +81(0)90 1234 5678
    r"|\+81\d{9,10}"  # +81312345678
    r"|\(0\d{1,4}\)[ \-]?\d{1,4}[ \-]?\d{3,4}"  # (03)1234-5678
    rf"|0\d{{1,4}}\(\d{{1,4}}\)\d{{3,4}}"  # 03(1234)5678
    rf"|0\d{{1,4}}{_S}\d{{1,4}}{_S}\d{{3,4}}"  # 03-1234-5678, 090 1234 5678
    r"|0\d{9,10}"  # 0312345678, 09012345678
    r")(?![\d\-]|[.,]\d)"
)
TOLL_FREE = ("0120", "0800", "0570")


class PhoneParams(PiiParams):
    keep_prefixes: list[str] = Field(
        list(TOLL_FREE), description="business numbers to keep (toll-free 0120/0800, Navi Dial 0570); [] masks them"
    )


def phone_national(s: str) -> tuple[str, list[str]] | None:
    """(national digits, digit groups) of a candidate, or None if it cannot be a
    Japanese number: 10 digits (0 + area + local) or 11 (0X0 mobile/IP, 0800)."""
    groups = re.findall(r"\d+", s)
    if s.lstrip().startswith("+"):
        groups[0] = groups[0].lstrip()[2:]  # the 81
        groups = [g for g in groups if g]
        if groups and groups[0] == "0":  # +81(0)3...
            groups = groups[1:]
        if not groups or groups[0].startswith("0"):
            return None
        groups[0] = "0" + groups[0]
    digits = "".join(groups)
    if not digits.startswith("0") or digits.startswith("00"):
        return None
    if len(digits) == 10:
        if re.match(r"0[5789]0", digits) and not digits.startswith(("0570",)):
            return None  # 0X0 numbers have 11 digits
    elif len(digits) == 11:
        if not re.match(r"0[5789]0|0800", digits):
            return None
    else:
        return None
    if len(groups) > 1:
        if len(groups[0]) > 5 or len(groups[-1]) not in (3, 4):
            return None
        if len(groups[-1]) == 3 and not digits.startswith(("0120", "0570", "0990")):
            return None
    return digits, groups


@register
class PiiPhone(PiiRule):
    """Japanese phone numbers in their written forms: 03-1234-5678, (03)1234-5678,
    03(1234)5678, 090-1234-5678, 050 mobiles/IP phones, +81 forms, full-width digits
    and no separators; 10 digits for fixed lines, 11 for 0X0 and 0800. Numbers after
    注文番号/会員番号/品番/... are not phone numbers. Business prefixes in
    `keep_prefixes` are kept."""

    rule = "pii_phone"
    default_placeholder = "[PHONE]"
    Params = PhoneParams

    def possible(self, folded, digits):  # the shortest form, (03)1-234 shaped, has 6 digits
        return digits >= 6

    def spans(self, folded):
        keep = tuple(self.params.keep_prefixes)
        for m in PHONE.finditer(folded):
            nat = phone_national(m.group())
            if nat is None:
                continue
            digits, _ = nat
            if keep and digits.startswith(keep):
                continue
            if _context_says_not_pii(folded, m.start()):
                continue
            yield m.span()


PII_RULES = [PiiEmail, PiiIp, PiiCard, PiiMyNumber, PiiPhone]
