"""Measuring extraction and the Japanese gate on real pages (`make bench`, tests).

- `realweb_pages`: the pages of a `realweb/` folder (Japanese pages with their
  original heads; Chinese and Korean negatives; legacy-encoded bytes) by role, from
  its `manifest.tsv`.
- `japanese_references`: the Japanese news/IT pages of `realweb/ja/postlight/` with a
  reference main text: the article body that postlight/parser's site-specific
  extractor selects (its `content.selectors`, minus its `clean` selectors; table
  below, from postlight/parser at e8ba7ec, Apache-2.0 OR MIT), as plain text.
- `char_bigram_f1`: F1 of character bigrams (NFKC, whitespace removed), the
  measure for Japanese, which has no spaces between words.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from pathlib import Path

# domain -> (content selectors: the first that matches wins, a list = all of them
# concatenated; clean selectors removed from the content)
POSTLIGHT_CONTENT: dict[str, tuple[list, list[str]]] = {
    "bookwalker.jp": (
        ["div.p-main__information", ["div.main-info", "div.main-cover-inner"]],
        [
            "span.label.label--trial",
            "dt.info-head.info-head--coin",
            "dd.info-contents.info-contents--coin",
            "div.info-notice.fn-toggleClass",
        ],
    ),
    "buzzap.jp": (["div.ctiframe"], []),
    "getnews.jp": (["div.post-bodycopy"], []),
    "japan.cnet.com": (["div.article_body"], []),
    "japan.zdnet.com": (["div.article_body"], []),
    "jvndb.jvn.jp": (["#news-list"], []),
    "news.mynavi.jp": (["div.article-body", "main article div"], []),
    "scan.netsecurity.ne.jp": (["div.arti-content.arti-content--thumbnail"], ["aside.arti-giga"]),
    "sect.iij.ad.jp": ([".entry-inner", "#article"], ["dl.entrydate"]),
    "takagi-hiromitsu.jp": (["div.body"], []),
    "techlog.iij.ad.jp": (["div.entry-content"], [".wp_social_bookmarking_light"]),
    "weekly.ascii.jp": (["div#contents_detail", "div.article"], []),
    "wired.jp": (
        ['div[data-attribute-verso-pattern="article-body"]', "article.article-detail"],
        [".post-category", "time", "h1.post-title", ".social-area-syncer"],
    ),
    "www.asahi.com": (["main"], ["div.AdMod", "div.LoginSelectArea", "time", "div.notPrint"]),
    "www.elecom.co.jp": (["td.TableMain2"], []),
    "www.gizmodo.jp": (["article.p-post"], ["h1.p-post-title", "ul.p-post-Assist"]),
    "www.ipa.go.jp": (["#ipar_main"], ["p.ipar_text_right"]),
    "www.itmedia.co.jp": (["#cmsBody"], ["#snsSharebox"]),
    "www.jnsa.org": (["#main_area"], ["#pankuzu", "#side"]),
    "www.lifehacker.jp": (
        ['div[class^="article_pArticle_Body__"]', "div.lh-entryDetail-body"],
        ["p.lh-entryDetailInner--credit"],
    ),
    "www.moongift.jp": (["#main"], ["ul.mg_service.cf"]),
    "www.oreilly.co.jp": (["section.detail", "#content"], [".social-tools"]),
    "www.ossnews.jp": (["#alpha-block .section:has(h1.hxnewstitle)"], []),
    "www.publickey1.jp": (["#maincol"], ["#breadcrumbs", "div.sbm", "div.ad_footer"]),
    "www.rbbtoday.com": ([".arti-content"], [".arti-giga"]),
    "www.sanwa.co.jp": (["#newsContent"], ["#smartphone", "div.sns_box", "div.contentFoot"]),
    "www.yomiuri.co.jp": (["div.p-main-contents"], []),
}
MIN_REFERENCE_CHARS = 50  # a selector that no longer matches the snapshot gives no reference

_WS = re.compile(r"\s+")


def _plain_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, main_content=False, alt_texts=False, links=False, form_fields=False, noscript=False)


def reference_text(html: str, selectors: list, clean: list[str]) -> str | None:
    """The text of the first selector (group) that matches, without `clean` nodes."""
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    for sel in selectors:
        group = sel if isinstance(sel, list) else [sel]
        try:
            nodes = [tree.document.query_selector(s) for s in group]
        except Exception:  # a selector resiliparse's engine does not support
            continue
        if not all(nodes):
            continue
        parts = []
        for node in nodes:
            for c in clean:
                try:
                    for x in node.query_selector_all(c):
                        x.decompose()
                except Exception:
                    continue
            parts.append(_plain_text(node.html))
        return "\n".join(parts)
    return None


def japanese_references(realweb: Path) -> list[tuple[str, bytes, str]]:
    """(file, raw bytes, reference text) of every postlight snapshot with a reference."""
    out = []
    from shikomi.text.charset import decode_html

    for snap in ("head", "pre2022"):
        for f in sorted((realweb / "ja" / "postlight" / snap).glob("*.html")):
            domain = f.name.split("__")[0].removesuffix(".html")
            if domain not in POSTLIGHT_CONTENT:
                continue
            raw = f.read_bytes()
            ref = reference_text(decode_html(raw).text, *POSTLIGHT_CONTENT[domain])
            if ref and len(ref.strip()) >= MIN_REFERENCE_CHARS:
                out.append((f"{snap}/{f.name}", raw, ref))
    return out


def _bigrams(text: str) -> Counter:
    t = _WS.sub("", unicodedata.normalize("NFKC", text))
    return Counter(t[i : i + 2] for i in range(len(t) - 1))


def char_bigram_f1(pred: str, gold: str) -> float:
    """F1 of character bigrams (whitespace removed, NFKC): the measure for Japanese."""
    return _f1(_bigrams(pred), _bigrams(gold))


def token_f1(pred: str, gold: str) -> float:
    """F1 of lower-cased word tokens: the measure for English."""
    return _f1(Counter(re.findall(r"\w+", pred.lower())), Counter(re.findall(r"\w+", gold.lower())))


def _f1(p: Counter, g: Counter) -> float:
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * prec * rec / (prec + rec)


def realweb_pages(realweb: Path, roles: tuple[str, ...] = ("ja", "neg_ko", "neg_zh")) -> list[tuple[str, str, bytes]]:
    """(file, role, raw bytes) of the manifest's pages with one of `roles`, in manifest order."""
    with open(realweb / "manifest.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["file"], r["role"], (realweb / r["file"]).read_bytes()) for r in rows if r["role"] in roles]
