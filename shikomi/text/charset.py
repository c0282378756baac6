"""Decoding web page bytes, with Japanese encodings done right.

Japanese pages come in UTF-8, Shift_JIS/cp932, EUC-JP and ISO-2022-JP, and the
HTTP header or `<meta charset>` is often missing or wrong. datatrove tries UTF-8 and
then a chardet guess; we check the bytes:

1. a byte-order mark wins;
2. ISO-2022-JP is 7-bit with ESC sequences (``ESC $ B`` ...): recognised directly;
3. bytes that decode as strict UTF-8 (with non-ASCII in them) are UTF-8 — random
   legacy-encoded text practically never is valid UTF-8;
4. otherwise cp932 and EUC-JP are both tried strictly. Real Japanese text is full of
   full-width kana; the same bytes read in the wrong one of the two give half-width
   katakana or fail to decode. The reading with most kana wins when kana are at
   least `MIN_KANA_SHARE` of the non-ASCII characters — this overrides a wrong label;
5. else the declared charset (HTTP header, then `<meta>`), then a cchardet guess,
   each only if it decodes strictly;
6. else UTF-8 with replacement characters (counted by the caller as `lossy`).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from shikomi.text.scripts import pattern

MIN_KANA_SHARE = 0.05  # kanji-heavy encyclopedic Japanese still has > 10%
MIN_KANA_SHARE_JA_LABEL = 0.01  # when the page claims a Japanese charset
_META_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_ISO2022_ESC = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b$(D", b"\x1b(I")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

# label normalisation: supersets that decode everything the label's pages contain
_ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "s-jis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "ms932": "cp932",
    "csshiftjis": "cp932",
    "euc-jp": "euc_jp",
    "eucjp": "euc_jp",
    "x-euc-jp": "euc_jp",
    "euc_jp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "iso-2022-jp": "iso2022_jp",
    "csiso2022jp": "iso2022_jp",
    "iso2022jp": "iso2022_jp",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "gb18030": "gb18030",
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "unicode": "utf-8",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}
JAPANESE_CHARSETS = {"cp932", "euc_jp", "iso2022_jp"}


@dataclass
class Decoded:
    text: str
    charset: str  # the codec used
    declared: str | None  # what the header/meta said (normalised), if anything
    method: str  # bom | iso2022 | utf8 | japanese | declared | detected | lossy | ascii


def normalise_label(label: str | None) -> str | None:
    if not label:
        return None
    lab = label.strip().strip("\"'").lower()
    if lab in _ALIASES:
        return _ALIASES[lab]
    try:
        return codecs.lookup(lab).name
    except LookupError:
        return None


def meta_charset(body: bytes) -> str | None:
    m = _META_RE.search(body[:8192])
    return m.group(1).decode("ascii", "ignore") if m else None


def _strict(body: bytes, codec: str) -> str | None:
    """Strict decode; a multibyte sequence cut off at the very end (CommonCrawl
    truncates large payloads) is dropped rather than failing the whole page."""
    try:
        return body.decode(codec)
    except UnicodeDecodeError as e:
        if e.start >= len(body) - 4 and e.start > 0:
            try:
                return body[: e.start].decode(codec)
            except UnicodeDecodeError:
                return None
        return None
    except LookupError:
        return None


_KANA_RE = pattern("kana")
_HALF_KATA_RE = pattern("halfwidth_katakana")
_NON_ASCII_RE = re.compile("[^\x00-\x7f]")
SAMPLE_CHARS = 65536


def kana_share(text: str) -> float:
    """Full-width kana among non-ASCII characters, minus twice the half-width
    katakana (measured on the first SAMPLE_CHARS characters)."""
    t = text[:SAMPLE_CHARS]
    non_ascii = len(_NON_ASCII_RE.findall(t))
    if not non_ascii:
        return 0.0
    return (len(_KANA_RE.findall(t)) - 2 * len(_HALF_KATA_RE.findall(t))) / non_ascii


def decode_html(body: bytes, http_charset: str | None = None) -> Decoded:
    declared = normalise_label(http_charset) or normalise_label(meta_charset(body))
    for bom, codec in _BOMS:
        if body.startswith(bom):
            t = _strict(body, codec)
            if t is not None:
                return Decoded(t, codec, declared, "bom")
    if b"\x1b" in body and body.isascii() and any(e in body for e in _ISO2022_ESC):
        t = _strict(body, "iso2022_jp_ext") or _strict(body, "iso2022_jp_2")
        if t is not None:
            return Decoded(t, "iso2022_jp", declared, "iso2022")
    if body.isascii():
        # ASCII is a subset of every label we accept: report the label (or utf-8)
        cs = declared if declared in ("utf-8", "cp1252", "cp932", "euc_jp") else "utf-8"
        return Decoded(body.decode("ascii"), cs, declared, "ascii")
    t = _strict(body, "utf-8")
    if t is not None:
        return Decoded(t, "utf-8", declared, "utf8")
    best: tuple[float, str, str] | None = None
    for codec in ("cp932", "euc_jp"):
        t = _strict(body, codec)
        if t is None:
            continue
        s = kana_share(t)
        if best is None or s > best[0]:
            best = (s, codec, t)
    need = MIN_KANA_SHARE_JA_LABEL if declared in JAPANESE_CHARSETS else MIN_KANA_SHARE
    if best is not None and best[0] >= need:
        return Decoded(best[2], best[1], declared, "japanese")
    if declared and declared not in ("utf-8", "ascii"):
        t = _strict(body, declared)
        if t is not None:
            return Decoded(t, declared, declared, "declared")
    try:
        import cchardet

        guess = normalise_label((cchardet.detect(body[:65536]) or {}).get("encoding"))
    except Exception:  # pragma: no cover - cchardet is a datatrove dependency
        guess = None
    if guess:
        t = _strict(body, guess)
        if t is not None:
            return Decoded(t, guess, declared, "detected")
    return Decoded(body.decode("utf-8", errors="replace"), "utf-8", declared, "lossy")


def mojibake_per_1000(text: str) -> float:
    """U+FFFD replacement characters per 1,000 characters."""
    return 1000.0 * text.count("\ufffd") / max(1, len(text))
