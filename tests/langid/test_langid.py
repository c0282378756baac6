"""langid: fastText lid.176 routing, on the project's sample and on labelled gold sentences."""

import json
from pathlib import Path

import pytest

from shikomi.config import load_config
from shikomi.core.documents import read_documents
from shikomi.executor.run import run_stage
from shikomi.extract.demo_data import ja_paragraphs
from shikomi.langid.stage import build
from shikomi.langid.thresholds import derive_thresholds
from shikomi.text.lid import FastTextLID


def _write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


def test_routing_by_language_and_threshold(tmp_path):
    docs = [{"id": f"ja{i}", "text": p} for i, p in enumerate(ja_paragraphs()[:5])]
    docs += [
        {"id": "en0", "text": "The quick brown fox jumps over the lazy dog. " * 5},
        {"id": "de0", "text": "Der schnelle braune Fuchs springt über den faulen Hund. " * 5},
        {"id": "zh0", "text": "中华人民共和国是世界上人口最多的国家之一，首都是北京。"},
    ]
    _write_jsonl(tmp_path / "in" / "docs.jsonl", docs)
    cfg = load_config(None, {"run_dir": str(tmp_path / "run"), "executor": {"tasks": 1}})
    stats = run_stage(build(cfg, str(tmp_path / "in")), cfg)
    ja = {d.id: d for d in read_documents(tmp_path / "run" / "langid" / "ja")}
    en = {d.id: d for d in read_documents(tmp_path / "run" / "langid" / "en")}
    rej = {d.id: d for d in read_documents(tmp_path / "run" / "langid" / "rejected")}
    assert set(ja) == {f"ja{i}" for i in range(5)}
    assert set(en) == {"en0"}
    assert rej["de0"].metadata["reject_reason"] == "language:de"
    assert rej["zh0"].metadata["reject_reason"] == "language:zh"
    assert all(d.metadata["language_score"] >= 0.5 for d in ja.values())
    assert stats["documents_in"] == 8 and stats["documents_out"] == 6
    assert stats["kept_by_language"]["ja"]["documents"] == 5
    assert sum(stats["score_histogram"]["counts"]["ja"]) == 5


def test_threshold_rejects_low_scores(tmp_path):
    _write_jsonl(tmp_path / "in" / "d.jsonl", [{"id": "en", "text": "Hello there, see you soon at the station."}])
    cfg = load_config(
        None, {"run_dir": str(tmp_path / "run"), "executor": {"tasks": 1}, "langid": {"thresholds": {"en": 0.99999}}}
    )
    stats = run_stage(build(cfg, str(tmp_path / "in")), cfg)
    (d,) = read_documents(tmp_path / "run" / "langid" / "rejected")
    assert d.metadata["reject_reason"].startswith("low_language_score:en=")
    assert stats["dropped"]["low_language_score"]["documents"] == 1


def test_newlines_are_joined():
    lid = FastTextLID()
    text = "\n".join(ja_paragraphs()[:2])
    assert lid.predict(text)[0] == "ja"
    assert FastTextLID.normalise("a\nb\t c") == "a b c"


def _gold_sentences(shared_data) -> dict[str, list[str]]:
    from shikomi.langid.evaluation import gold_sentences

    return gold_sentences(shared_data)


def _kept(lid: FastTextLID, text: str, thresholds: dict, default: float) -> str | None:
    """The language a document is routed to by LanguageRule's logic, or None (rejected)."""
    lang, score, how = lid.classify(text)
    if lang not in ("ja", "en"):
        return None
    return lang if how == "kana" or score >= thresholds.get(lang, default) else None


@pytest.mark.realdata
def test_gold_sentences_kept_with_default_thresholds(shared_data):
    """lingua's gold sentences through the default config: >= 99% of Japanese and of
    English kept, zh/ko labelled ja <= 1%."""
    lc = load_config(None, {}).langid
    lid = FastTextLID(kana_min_share=lc.kana_min_share, kana_min=lc.kana_min)
    rows = _gold_sentences(shared_data)
    kept = {
        g: sum(_kept(lid, t, lc.thresholds, lc.threshold) == g for t in rows[g]) / len(rows[g]) for g in ("ja", "en")
    }
    false_ja = {g: sum(lid.predict(t)[0] == "ja" for t in rows[g]) / len(rows[g]) for g in ("zh", "ko")}
    print(
        f"langid gold sentences, default thresholds {lc.thresholds} (else {lc.threshold}): ja kept {kept['ja']:.4f} "
        f"(n={len(rows['ja'])}), en kept {kept['en']:.4f} (n={len(rows['en'])}); "
        f"zh->ja {false_ja['zh']:.4f}, ko->ja {false_ja['ko']:.4f}"
    )
    assert kept["ja"] >= 0.99 and kept["en"] >= 0.99
    assert false_ja["zh"] <= 0.01 and false_ja["ko"] <= 0.01
    # lid.176 labels these real Japanese sentences zh; their kana make them ja
    for t in ("京橋創生館で1日とめても安い駐車場！", "届出者数は26％増の51万5168人。"):
        assert lid.model.predict(t)[0][0] != "__label__ja"
        assert lid.classify(t)[::2] == ("ja", "kana")
    # without the kana rule they are lost
    raw = FastTextLID(kana_guard=False)
    assert sum(raw.predict(t)[0] == "ja" for t in rows["ja"]) < len(rows["ja"])


@pytest.mark.realdata
def test_auto_thresholds_from_the_gold_distribution(shared_data):
    """FineWeb-2's rule (median - std, clipped to [0.3, 0.9]) on the gold sentences'
    own scores: the thresholds it gives, and what they keep."""
    lid = FastTextLID()
    rows = _gold_sentences(shared_data)
    scores: dict[str, list[float]] = {}
    for g in ("ja", "en", "zh", "ko"):
        for t in rows[g]:
            lang, score, how = lid.classify(t)
            if how == "fasttext":
                scores.setdefault(lang, []).append(score)
    derived = derive_thresholds(scores, ["ja", "en"], 0.5, {})
    thr = {g: v["threshold"] for g, v in derived.items()}
    kept = {g: sum(_kept(lid, t, thr, 0.5) == g for t in rows[g]) / len(rows[g]) for g in ("ja", "en")}
    print(f"auto thresholds on the gold sentences: {derived}; kept ja {kept['ja']:.4f}, en {kept['en']:.4f}")
    # Japanese scores sit at ~1.0 (clipped to 0.9); English sentences spread wider
    assert thr["ja"] == 0.9 and derived["ja"]["source"] == "auto"
    assert 0.8 <= thr["en"] <= 0.87
    # the tighter thresholds cost recall on short sentences (hence not the default):
    # little for Japanese (kana rescue what the model mislabels), more for English
    assert 0.99 <= kept["ja"] < 1.0
    assert 0.8 <= kept["en"] < 0.99
    # too few documents of a language: its configured threshold stays
    few = derive_thresholds({"ja": [0.99] * 5}, ["ja", "en"], 0.5, {"en": 0.4})
    assert few == {
        "ja": {"threshold": 0.5, "source": "config", "n": 5},
        "en": {"threshold": 0.4, "source": "config", "n": 0},
    }


@pytest.mark.realdata
def test_auto_thresholds_stage_on_real_cc_text(shared_data, tmp_path):
    """`langid.thresholds: auto` on the real CommonCrawl segment: a pre-pass derives
    the thresholds from the run's own scores, stats.json reports them, and documents
    under them are rejected with their score."""
    cfg = load_config(
        None, {"run_dir": str(tmp_path / "run"), "executor": {"tasks": 2}, "langid": {"thresholds": "auto"}}
    )
    stats = run_stage(build(cfg, str(shared_data / "cc_text")), cfg)
    lt = stats["language_thresholds"]
    assert lt["source"] == "auto" and lt["sample_documents"] == 670
    en = lt["languages"]["en"]
    assert en["source"] == "auto" and 0.3 <= en["threshold"] <= 0.9 and en["n"] > 250
    assert en["threshold"] == round(min(0.9, max(0.3, en["median"] - en["std"])), 4)
    assert lt["languages"]["ja"]["source"] == "config"  # 12 Japanese documents: too few to derive
    low = [
        d
        for d in read_documents(tmp_path / "run" / "langid" / "rejected")
        if d.metadata["reject_reason"].startswith("low_language_score:en=")
    ]
    assert low and all(d.metadata["language_score"] < en["threshold"] for d in low)
    kept_en = list(read_documents(tmp_path / "run" / "langid" / "en"))
    assert all(d.metadata["language_score"] >= en["threshold"] for d in kept_en)
    assert stats["documents_in"] == stats["documents_out"] + stats["documents_dropped"]
    assert stats["skipped"] == {"empty_text": 27}  # the pre-pass's reading is not counted twice
    # the configured thresholds are reported too
    cfg2 = load_config(None, {"run_dir": str(tmp_path / "run2"), "executor": {"tasks": 1}})
    stats2 = run_stage(build(cfg2, str(shared_data / "cc_text")), cfg2)
    assert stats2["language_thresholds"] == {
        "source": "config",
        "languages": {"ja": {"threshold": 0.5}, "en": {"threshold": 0.4}},
    }


@pytest.mark.realdata
def test_real_cc_text_routing(shared_data, tmp_path):
    """The dolma CommonCrawl segment: Japanese documents go to ja, Chinese/Korean do not."""
    cfg = load_config(None, {"run_dir": str(tmp_path / "run"), "executor": {"tasks": 2}})
    stats = run_stage(build(cfg, str(shared_data / "cc_text")), cfg)
    ja = list(read_documents(tmp_path / "run" / "langid" / "ja"))
    # 27 records of that file have empty text: counted, not silently lost
    assert stats["skipped"] == {"empty_text": 27}
    assert stats["documents_in"] + stats["skipped"]["empty_text"] == 697
    assert stats["documents_in"] == stats["documents_out"] + stats["documents_dropped"]
    assert 8 <= len(ja) <= 14
    kana = sum(any("\u3040" <= c <= "\u30ff" for c in d.text) for d in ja)
    assert kana == len(ja)
    assert stats["languages"]["en"] > 250
