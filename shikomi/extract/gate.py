"""The Japanese gate: decide before extraction whether a record can hold Japanese text.

Extraction is the most expensive step of the extract stage and about 5% of a
CommonCrawl dump is Japanese, so a cheap look at the raw page saves most of the
work (Swallow's trick). A missed Japanese page is lost for good while a wrongly
passed one only costs an extraction, so the gate skips a record only on positive
evidence that it is not Japanese, and passes everything it cannot decide:

1. `lang`: `<html lang="ja…">` or a `content-language: ja` meta/HTTP header → pass.
2. `charset`: the bytes decode as a Japanese-only charset (Shift_JIS/CP932, EUC-JP,
   ISO-2022-JP; the decoder picks these only when the text has kana) → pass.
3. `kana`: at least `min_kana` kana letters making at least `min_kana_share` of the
   CJK-script letters (kana, kanji, hangul) in the first `scan_chars` characters of
   the page → pass. The page counts, not only its `<head>`: a Japanese blog without
   `lang`, with an ASCII title or no head at all still has kana in its body. Numeric
   character references (`&#x3042;`, `&#12354;`) count as the characters they stand
   for, so entity-escaped pages are read as what they say.
4. undecided → pass: the bytes did not decode cleanly (`lossy`), or the page has
   fewer than `min_letters` letters between its tags (`little_text`), or it has some
   kana but under the bar (`few_kana`).
5. otherwise skip, with the reason the page looked like: `lang_<xx>` when it declares
   another language, else `no_kana` (hangul/han/latin without kana).

WET conversion records are judged by their text the same way, after CommonCrawl's
`WARC-Identified-Content-Language` (a `jpn` there passes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shikomi.text.scripts import pattern

JAPANESE_CODECS = frozenset({"cp932", "shift_jis", "euc_jp", "iso2022_jp"})

_HTML_LANG_RE = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3})", re.I)
_META_LANG_RE = re.compile(
    r"<meta\b[^>]*?http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*?content\s*=\s*[\"']?\s*([A-Za-z]{2,3})", re.I
)
_META_LANG_RE2 = re.compile(
    r"<meta\b[^>]*?content\s*=\s*[\"']?\s*([A-Za-z]{2,3})[^>]*?http-equiv\s*=\s*[\"']?content-language", re.I
)
_KANA = re.compile(pattern("kana_letters").pattern + "+")
_HAN = re.compile(pattern("kanji").pattern + "+")
_HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e]+")
_LETTERS = re.compile(r"[^\W\d_]+")
_TEXT_RUN = re.compile(r"(?:^|>)([^<]+)")
_NCR = re.compile(r"&#([xX][0-9a-fA-F]{2,6}|[0-9]{2,7});")
_KANA_LEAD = re.compile(rb"\xe3[\x81-\x83]")  # UTF-8 lead bytes of U+3040..U+30FF
_NCR_LEAD = re.compile(rb"&#")
_RUN_CHUNK = 256  # characters of a text run counted at a time by _has_letters


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str  # pass: lang | charset | kana | undecided_<why>; skip: lang_<xx> | no_kana
    kana: int = 0
    cjk: int = 0


def _count(rx: re.Pattern, text: str) -> int:
    """Characters matched by a run pattern (one match per run: few objects)."""
    return sum(map(len, rx.findall(text)))


def _ncr_chars(text: str) -> str:
    """The characters numeric character references in `text` stand for."""
    out = []
    for m in _NCR.finditer(text):
        v = m.group(1)
        try:
            out.append(chr(int(v[1:], 16) if v[0] in "xX" else int(v)))
        except (ValueError, OverflowError):
            continue
    return "".join(out)


def _maybe_kana(body: bytes, scan_chars: int) -> bool:
    """Whether UTF-8 bytes may hold kana: a lead byte pair of U+3040..U+30FF, or a
    numeric character reference. No copy and no per-character Python work: a one-byte
    find (memchr) rules out most pages, and the byte patterns are searched in place
    (a regex with a literal prefix is several times faster than bytes.find of a
    two-byte needle)."""
    end = 3 * scan_chars if scan_chars else len(body)
    if body.find(b"\xe3", 0, end) >= 0 and _KANA_LEAD.search(body, 0, end) is not None:
        return True
    return _NCR_LEAD.search(body, 0, end) is not None


def _has_kana_bytes(t: str) -> bool:
    """Whether `t` may hold a kana letter (U+3041..U+30FA, UTF-8 E3 81..83 xx): a
    regex scan of the text is per character, its UTF-8 bytes are searched in C."""
    if t.isascii():  # O(1) for a str
        return False
    b = t.encode("utf-8", "surrogatepass")
    return b.find(b"\xe3") >= 0 and _KANA_LEAD.search(b) is not None


def _has_letters(html: str, n: int, markup: bool = True) -> bool:
    """Whether the text (between tags, when `markup`) holds at least `n` letters;
    stops as soon as it does."""
    if not markup:
        return _count(_LETTERS, html[: 64 * n]) >= n if n else True
    seen = 0
    for m in _TEXT_RUN.finditer(html):
        # a run can be a whole inline script or style sheet: count it a chunk at a
        # time and stop at the bar (letters are counted one by one, so chunking
        # does not change the sum)
        a, end = m.start(1), m.end(1)
        while a < end:
            seen += _count(_LETTERS, html[a : min(a + _RUN_CHUNK, end)])
            if seen >= n:
                return True
            a += _RUN_CHUNK
    return seen >= n


def declared_language(html_head: str, http_language: str | None = None) -> str | None:
    """The primary language subtag a page declares (`ja`, `en`, ...), or None."""
    for rx in (_HTML_LANG_RE, _META_LANG_RE, _META_LANG_RE2):
        m = rx.search(html_head)
        if m:
            return m.group(1).lower()
    if http_language:
        m = re.match(r"\s*([A-Za-z]{2,3})", http_language)
        if m:
            return m.group(1).lower()
    return None


class JapaneseGate:
    """decide_html(...) / decide_text(...) -> GateResult. Pure and deterministic."""

    def __init__(
        self,
        min_kana: int = 5,
        min_kana_share: float = 0.05,
        min_letters: int = 30,
        scan_chars: int = 200_000,
        head_chars: int = 16_384,
    ):
        self.min_kana = min_kana
        self.min_kana_share = min_kana_share
        self.min_letters = min_letters
        self.scan_chars = scan_chars
        self.head_chars = head_chars

    def _kana(self, t: str, markup: bool) -> tuple[int, int]:
        """(kana letters, kana + kanji + hangul) of `t`, character references resolved."""
        refs = _ncr_chars(t) if markup and "&#" in t else ""  # entity-escaped pages
        kana = (_count(_KANA, t) if _has_kana_bytes(t) else 0) + (_count(_KANA, refs) if refs else 0)
        if not kana:
            return 0, 0
        cjk = kana + _count(_HAN, t) + _count(_HANGUL, t)
        if refs:
            cjk += _count(_HAN, refs) + _count(_HANGUL, refs)
        return kana, cjk

    def _by_text(self, text: str, lang: str | None, markup: bool) -> GateResult:
        t = text[: self.scan_chars] if self.scan_chars else text
        # the first part decides most Japanese pages (title, navigation, lead); the
        # whole scan only the others
        parts = (t[: self.head_chars], t) if len(t) > 2 * self.head_chars else (t,)
        for part in parts:
            kana, cjk = self._kana(part, markup)
            if kana >= self.min_kana and kana / cjk >= self.min_kana_share:
                return GateResult(True, "kana", kana, cjk)
        if kana:
            return GateResult(True, "undecided_few_kana", kana, cjk)
        return self._no_kana(t, lang, markup)

    def _no_kana(self, text: str, lang: str | None, markup: bool) -> GateResult:
        if not _has_letters(text, self.min_letters, markup):
            return GateResult(True, "undecided_little_text")
        if lang and lang != "ja":
            return GateResult(False, f"lang_{lang}")
        return GateResult(False, "no_kana")

    def decide_html(
        self,
        text: str,
        charset: str | None,
        method: str = "",
        http_language: str | None = None,
        body: bytes | None = None,
    ) -> GateResult:
        """`text`: the decoded page; `charset`/`method`: what the decoder found
        (shikomi.text.charset.decode_html); `http_language`: a Content-Language header;
        `body`: the page's bytes, when given a UTF-8 page without any kana byte
        sequence (and no character reference) is known to have no kana without
        scanning its text."""
        lang = declared_language(text[: self.head_chars], http_language)
        if lang == "ja":
            return GateResult(True, "lang")
        if charset in JAPANESE_CODECS:
            return GateResult(True, "charset")
        if method == "lossy":
            return GateResult(True, "undecided_lossy")
        if body is not None and method in ("utf8", "ascii") and not _maybe_kana(body, self.scan_chars):
            return self._no_kana(text, lang, markup=True)
        return self._by_text(text, lang, markup=True)

    def decide_text(self, text: str, identified: str | None = None) -> GateResult:
        """Plain text (a WET conversion record); `identified`: its
        WARC-Identified-Content-Language (ISO 639-3 codes, comma-separated)."""
        if identified and "jpn" in identified.lower():
            return GateResult(True, "lang")
        lang = identified.split(",")[0].strip().lower()[:3] if identified else None
        return self._by_text(text, lang, markup=False)


def gate_extras(out_dir: str) -> dict:
    """stats.json `japanese_gate`: records judged, passed and skipped per reason."""
    from pathlib import Path

    from shikomi.core.stats import merge_task_stats, stat_total

    passed: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for step in merge_task_stats(Path(out_dir) / "logs" / "extract"):
        for k, v in (step.get("stats") or {}).items():
            if k.startswith("gate_pass/"):
                passed[k[10:]] = passed.get(k[10:], 0) + int(stat_total(v))
            elif k.startswith("skipped/japanese_gate:"):
                r = k[len("skipped/japanese_gate:") :]
                skipped[r] = skipped.get(r, 0) + int(stat_total(v))
    if not passed and not skipped:
        return {}
    n = sum(passed.values()) + sum(skipped.values())
    return {
        "japanese_gate": {
            "records": n,
            "passed": dict(sorted(passed.items())),
            "skipped": dict(sorted(skipped.items())),
            "skipped_share": round(sum(skipped.values()) / n, 4),
        }
    }
