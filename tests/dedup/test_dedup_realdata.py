"""dedup stage on real Japanese text from ../shared/data, with near-duplicates made
by realistic edits and hard negatives; recall, precision and task-count independence."""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import defaultdict

import pytest
from helpers.dedup import (
    HEADERS,
    edit_chars,
    edit_date,
    edit_header,
    edit_swap,
    fullwidth_copy,
    jaccard,
    outputs,
    run_dedup,
    strip_html,
    write_jsonl,
)

pytestmark = pytest.mark.realdata

_JA = re.compile(r"[\u3040-\u30ff]")


def _debian_pages(data) -> dict[str, str]:
    pages = {}
    for f in sorted((data / "ja" / "debian").glob("*/*.html")):
        pages[f"{f.parent.name}/{f.name}"] = strip_html(f.read_text(encoding="utf-8"))
    return pages


def _book_section(page: str) -> str:
    """A chapter as it appears inside the single-page edition of the manual: the
    title once, no per-page table of contents, no previous/next navigation."""
    lines = page.splitlines()
    title = lines[0]
    body = [line for line in lines[1:] if line != title]
    if "目次" in body[:3]:
        i = body.index("目次")
        j = i + 1
        while j < len(body) and re.match(r"^[\dA-Z]+(\.\d+)*\.\s", body[j]):
            j += 1
        body = body[:i] + body[j:]
    return "\n".join([title] + body[:-2])


def build_corpus(data, seed: int = 0):
    rng = random.Random(seed)
    docs: list[dict] = []
    pairs: list[tuple[str, str, str]] = []  # (original id, copy id, kind)
    negatives: list[str] = []

    def add(did, text, date="2023-06-01T00:00:00Z", **meta):
        docs.append({"id": did, "text": text, "metadata": {"date": date, **meta}})

    # Wikipedia: JSQuAD paragraphs, three of the same article per document, and article leads
    by_title = defaultdict(list)
    for line in open(data / "ja" / "jsquad_wikipedia_paragraphs.jsonl", encoding="utf-8"):
        d = json.loads(line)
        by_title[d["title"]].append(d["text"])
    articles = [(t, "\n".join(ps[k : k + 3])) for t, ps in by_title.items() for k in range(0, len(ps), 3)]
    leads = [json.loads(line) for line in open(data / "ja" / "jawiki_annotated_corpus_leads.jsonl", encoding="utf-8")][
        :400
    ]
    for i, (title, text) in enumerate(articles):
        add(f"wiki-{i:04d}", text, date=f"2021-{1 + i % 12:02d}-01T00:00:00Z", title=title)
    for d in leads:
        add(f"lead-{d['id']}", d["text"])

    # CommonCrawl documents in Japanese
    with gzip.open(data / "cc_text" / "dolma_CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt") as f:
        cc = [json.loads(line) for line in f]
    cc_ja = [d for d in cc if len(_JA.findall(d["text"])) > 0.2 * len(d["text"])]
    for i, d in enumerate(cc_ja):
        add(f"cc-{i:03d}", d["text"], date="2019-07-17T12:00:00Z", url=d.get("metadata", {}).get("url"))

    # near-duplicates of the Wikipedia articles, one realistic edit each
    kinds = ["date", "swap", "header", "chars1", "chars2", "chars3", "chars5"]
    for i in range(0, min(len(articles), 420)):
        did, text = f"wiki-{i:04d}", articles[i][1]
        kind = kinds[i % len(kinds)]
        if kind == "date":
            a, b = edit_date(rng, text)
            docs[i]["text"] = a
        elif kind == "swap":
            b = edit_swap(rng, text)
        elif kind == "header":
            a, b = edit_header(rng, text)
            docs[i]["text"] = a
        else:
            b = edit_chars(rng, text, int(kind[-1]) / 100)  # 1-5 % of the characters
        add(f"dup-{kind}-{i:04d}", b, date="2024-02-01T00:00:00Z")
        pairs.append((did, f"dup-{kind}-{i:04d}", kind))
    # exact copies (full-width digits, other whitespace) of CommonCrawl pages, crawled later
    for i in range(0, len(cc_ja), 2):
        add(f"copy-cc-{i:03d}", fullwidth_copy(cc_ja[i]["text"]), date="2020-01-01T00:00:00Z")
        pairs.append((f"cc-{i:03d}", f"copy-cc-{i:03d}", "exact"))

    # Debian manuals: each chapter page and the same chapter in the single-page edition
    for name, page in _debian_pages(data).items():
        if name.endswith("index.ja.html"):
            add(f"debian-{name}", page, date="2022-10-08T00:00:00Z")
            continue
        add(f"debian-{name}", page, date="2022-10-08T00:00:00Z")
        add(f"debian-book-{name}", _book_section(page), date="2022-10-09T00:00:00Z")
        pairs.append((f"debian-{name}", f"debian-book-{name}", "debian"))

    # hard negatives: one listing template, different content (「…の一戸建てを売る」)
    cities = [
        "千葉市中央区",
        "船橋市",
        "市川市",
        "松戸市",
        "柏市",
        "市原市",
        "八千代市",
        "流山市",
        "習志野市",
        "浦安市",
        "佐倉市",
        "野田市",
        "木更津市",
        "成田市",
        "我孫子市",
        "鎌ケ谷市",
        "君津市",
        "四街道市",
        "印西市",
        "白井市",
    ]
    for i, city in enumerate(cities):
        body = leads[100 + i]["text"] + "\n" + leads[250 + i]["text"]
        text = (
            f"千葉県{city}の一戸建てを売る\n{HEADERS[0][0]}千葉県{city}の不動産売却なら無料一括査定。"
            f"最短60秒で複数の不動産会社に査定を依頼できます。\n{body}\n"
            f"千葉県{city}の一戸建てを売るならお任せください。{HEADERS[0][1]}"
        )
        add(f"tmpl-{i:02d}", text)
        negatives.append(f"tmpl-{i:02d}")
    rng.shuffle(docs)
    return docs, pairs, negatives


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    docs, pairs, negatives = build_corpus(shared_data)
    folder = write_jsonl(tmp_path_factory.mktemp("dedup_real_in") / "in", docs, files=4)
    runs = {}
    for tasks in (1, 2, 4):
        run = tmp_path_factory.mktemp(f"dedup_real_{tasks}")
        stats = run_dedup(run, folder, tasks=tasks, workers=min(tasks, 2))
        runs[tasks] = (run / "dedup", stats)
    return docs, pairs, negatives, runs


def test_recall_and_precision_on_realistic_edits(real):
    docs, pairs, negatives, runs = real
    text = {d["id"]: d["text"] for d in docs}
    out, stats = runs[2]
    kept, rej = outputs(out)
    assert len(kept) + len(rej) == len(docs)

    sims = {(a, b): jaccard(text[a], text[b]) for a, b, _ in pairs}
    target = [(a, b) for (a, b), s in sims.items() if s >= 0.85]
    found = [(a, b) for a, b in target if a in rej or b in rej]
    recall = len(found) / len(target)
    assert len(target) >= 150
    print(f"recall {recall:.4f} on {len(target)} pairs at Jaccard >= 0.85")
    assert recall >= 0.95, [(a, b, round(sims[a, b], 3)) for a, b in target if (a, b) not in found]

    # every dropped document is similar to the one kept in its place
    removed_sims = {r: jaccard(text[r], text[m["duplicate_of"]]) for r, m in rej.items()}
    assert min(removed_sims.values()) >= 0.6, sorted(removed_sims.items(), key=lambda kv: kv[1])[:5]
    precision = sum(s >= 0.8 for s in removed_sims.values()) / len(removed_sims)
    assert precision >= 0.99
    # same template, different content: all kept
    assert all(n in kept for n in negatives)
    # pairs well below the threshold are kept
    for (a, b), s in sims.items():
        if s < 0.6:
            assert a in kept and b in kept

    # exact copies are exact_duplicate of the earlier crawl; edits are near_duplicate
    for a, b, kind in pairs:
        if kind == "exact":
            assert rej[b]["reject_reason"] == "exact_duplicate" and rej[b]["duplicate_of"] == a
        elif b in rej and a in kept:  # the later crawl goes, naming the earlier one
            assert rej[b]["reject_reason"] == "near_duplicate" and rej[b]["duplicate_of"] == a

    # the Debian chapter pages and their single-page-edition sections
    debian = [(a, b) for a, b, k in pairs if k == "debian"]
    assert sum(a in rej or b in rej for a, b in debian) >= 0.95 * len(debian)

    d = stats["dedup"]
    assert d["lsh"]["bands"] * d["lsh"]["rows"] <= 128
    assert d["exact_duplicates"] == stats["dropped"]["exact_duplicate"]["documents"]
    assert d["near_duplicates"] == stats["dropped"]["near_duplicate"]["documents"]
    assert sum(d["cluster_sizes"].values()) == d["clusters"]
    assert d["verified_pairs"] > 0


def test_same_documents_kept_for_1_2_4_tasks(real):
    _, _, _, runs = real
    results = {t: outputs(out) for t, (out, _) in runs.items()}
    kept1, rej1 = results[1]
    for t in (2, 4):
        kept, rej = results[t]
        assert kept == kept1
        assert {k: (m["reject_reason"], m["duplicate_of"]) for k, m in rej.items()} == {
            k: (m["reject_reason"], m["duplicate_of"]) for k, m in rej1.items()
        }
