"""The shipped quality model: rebuilt byte for byte from the data, on in the default
profile at the cross-validated threshold, `quality_score` on every document (kept and
dropped) so that re-thresholding reproduces the stage; the FineWeb-2 profile's rules
on real Japanese text; `clean-eval --profile` side by side."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from shikomi.config import load_config
from shikomi.errors import UserError
from shikomi.filters import quality_model
from shikomi.filters.classifier import MODELS_DIR, SCORE_KEY, ClassifierParams
from shikomi.filters.evaluate import compare, format_compare, group_labelled, run_chain
from shikomi.filters.profile import PROFILES_DIR, build_rules
from shikomi.filters.registry import make_rule

ROOT = Path(__file__).resolve().parents[2]
GOLD = "gold/quality/mc4ja_good_bad.jsonl"
CARD = json.loads((MODELS_DIR / "quality_ja.json").read_text(encoding="utf-8"))


def _profile_rules(name: str) -> dict:
    data = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return {
        next(iter(r)) if isinstance(r, dict) else r: (r[next(iter(r))] if isinstance(r, dict) else {})
        for r in data["rules"]
    }


def test_shipped_model_is_small_and_on_by_default():
    model = MODELS_DIR / "quality_ja.ftz"
    assert model.stat().st_size < 5_000_000
    assert hashlib.sha256(model.read_bytes()).hexdigest() == CARD["sha256"]
    params = _profile_rules("default")["quality_classifier"]
    assert params["model"] == "quality_ja"
    assert params["threshold"] == CARD["threshold"]  # the CV-chosen threshold, not a hand-picked one
    rules, notes = build_rules(load_config(None).clean)
    clf = next(r for r in rules if r.rule == "quality_classifier")
    assert not any("quality_classifier" in n for n in notes)
    # a user's labels still train their own model
    cfg = load_config(None, {"clean": {"quality_labels": "x.jsonl"}})
    clf = next(r for r in build_rules(cfg.clean)[0] if r.rule == "quality_classifier")
    assert clf.params.labels == "x.jsonl" and clf.params.model is None
    # ...with the rule's default threshold, not the one calibrated for the shipped model, unless set
    assert clf.params.threshold == ClassifierParams().threshold != CARD["threshold"]
    cfg = load_config(None, {"clean": {"quality_model": "m.ftz", "rules": {"quality_classifier": {"threshold": 0.7}}}})
    clf = next(r for r in build_rules(cfg.clean)[0] if r.rule == "quality_classifier")
    assert clf.params.model == "m.ftz" and clf.params.threshold == 0.7


@pytest.mark.realdata
def test_make_quality_model_rebuilds_the_same_bytes(shared_data, tmp_path):
    """What `make quality-model` trains (without its CV) gives the shipped file's bytes."""
    digest = quality_model.build_model(shared_data, tmp_path / "m.ftz")
    assert digest == CARD["sha256"]
    assert (tmp_path / "m.ftz").read_bytes() == (MODELS_DIR / "quality_ja.ftz").read_bytes()


@pytest.mark.realdata
def test_held_out_split_is_not_trained_on(shared_data):
    recipe = quality_model.load_recipe()
    rows = [json.loads(x) for x in (shared_data / GOLD).open(encoding="utf-8")]
    train, test = quality_model.split_gold(rows, recipe)
    assert len(train) + len(test) == len(rows) and len(test) == CARD["held_out"]["lines"]
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    assert {r["label"] for r in test} == {"good", "bad"}
    # the fastText lines: the training lines only, the bad ones `bad_repeat` times
    lines = quality_model.training_lines(train, [], recipe)
    bad = sum(r["label"] == "bad" for r in train)
    assert set(lines) == set(quality_model.gold_lines(train, recipe))
    assert len(lines) == len(train) + (recipe.bad_repeat - 1) * bad
    assert sum(x.startswith("__label__bad ") for x in lines) == recipe.bad_repeat * bad


def _run_cli(args: list[str]):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.realdata
def test_quality_score_on_every_document_and_rethresholding_reproduces_the_stage(shared_data, tmp_path):
    rows = [json.loads(x) for x in (shared_data / GOLD).open(encoding="utf-8")]
    docs = group_labelled(rows, 3)[:60]
    wiki = [
        json.loads(x)["text"] for x in (shared_data / "ja/jsquad_wikipedia_paragraphs.jsonl").open(encoding="utf-8")
    ]
    texts = [d["text"] for d in docs] + wiki[:20] + ["English only text with no Japanese at all, dropped early."]
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(json.dumps({"id": f"d{i:03d}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    r = _run_cli(["clean", "--input", str(inp), "--output", str(tmp_path / "run")])
    assert r.returncode == 0, r.stderr + r.stdout
    stage = tmp_path / "run" / "clean"
    kept = [x for f in sorted((stage / "data").glob("*.parquet")) for x in pq.read_table(f).to_pylist()]
    rejected = [x for f in sorted((stage / "rejected").glob("*.parquet")) for x in pq.read_table(f).to_pylist()]
    assert len(kept) + len(rejected) == len(texts)
    assert all(isinstance(x["metadata"].get(SCORE_KEY), float) for x in kept + rejected)
    reasons = [x["metadata"]["reject_reason"].split(":")[0] for x in rejected]
    assert "quality_classifier" in reasons and "accept_japanese" in reasons  # scored even when dropped earlier
    # re-thresholding from the Parquet (as pandas would): same decisions at the stage's threshold
    import pandas as pd

    frame = pd.DataFrame(
        [{"id": x["id"], "kept": True, **x["metadata"]} for x in kept]
        + [{"id": x["id"], "kept": False, **x["metadata"]} for x in rejected]
    )
    t = CARD["threshold"]
    by_other_rule = frame["reject_reason"].notna() & ~frame["reject_reason"].fillna("").str.startswith("quality_")
    again = ~by_other_rule & (frame[SCORE_KEY] >= t)
    assert (again == frame["kept"]).all()
    # a stricter threshold from the same column drops more, without rerunning
    stricter = frame.loc[frame["kept"], SCORE_KEY].median()
    assert 0 < (~by_other_rule & (frame[SCORE_KEY] > stricter)).sum() < frame["kept"].sum()


@pytest.mark.realdata
def test_fineweb2_rules_on_real_text(shared_data):
    wiki = [
        json.loads(x)["text"] for x in (shared_data / "ja/jawiki_annotated_corpus_leads.jsonl").open(encoding="utf-8")
    ]
    long_wiki = next(t for t in wiki if len(t) > 400)
    gq = make_rule("gopher_quality", _profile_rules("fineweb2")["gopher_quality"])
    assert gq.apply_text(long_wiki) is None  # prose has の, に, を ... and 50+ words
    # a short menu-like text: too few words, then too few stop words
    assert gq.apply_text("ホーム 会社概要 お問い合わせ")[1].startswith("short_doc=")
    no_stop = " ".join(["東京都", "大阪府", "京都府", "北海道", "沖縄県"] * 12)
    assert gq.apply_text(no_stop)[1].startswith(("stop_words=", "below_avg_word_length", "above_avg"))
    rep = make_rule("gopher_repetition", _profile_rules("fineweb2")["gopher_repetition"])
    assert rep.apply_text(long_wiki) is None
    assert rep.apply_text("\n".join([long_wiki[:60]] * 5 + [long_wiki]))[1].startswith("dup_line_frac=")
    fq = make_rule("fineweb_quality", _profile_rules("fineweb2")["fineweb_quality"])
    assert fq.apply_text(long_wiki) is None
    assert fq.apply_text("トップページ\nカテゴリー一覧\n新着情報\nお問い合わせ")[1].startswith("line_punct_ratio=")
    rules, _ = build_rules(load_config(None, {"clean": {"profile": "fineweb2"}}).clean)
    assert [r.rule for r in rules] == [
        "normalize",
        "language_score",
        "gopher_repetition",
        "fineweb_quality",
        "gopher_quality",
    ]
    assert run_chain(rules, long_wiki)[0] is None
    assert run_chain(rules, "This is an English sentence, not Japanese at all.")[0].startswith("language_score:")


@pytest.mark.realdata
def test_clean_eval_compares_profiles_side_by_side(shared_data, tmp_path):
    rows = [json.loads(x) for x in (shared_data / GOLD).open(encoding="utf-8")][:90]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    res = compare(load_config(None), str(labels), ["default", "fineweb2", "swallow"], group=3)
    assert [r["profile"] for r in res] == ["default", "fineweb2", "swallow", "hojichar"]
    table = format_compare(res)
    for name in ("default", "fineweb2", "swallow", "hojichar", "quality_classifier", "precision", "recall"):
        assert name in table
    for r in res:
        o = r["overall"]
        n = o["documents_good"] + o["documents_bad"]
        assert n == len(group_labelled(rows, 3))
        kept_docs = round(o["keep_good"] * o["documents_good"]) + round(o["keep_bad"] * o["documents_bad"])
        dropped = sum(x["dropped_good"] + x["dropped_bad"] for x in r["rules"])
        assert kept_docs + dropped == n  # every document is kept or dropped by exactly one rule


@pytest.mark.realdata
def test_clean_eval_held_out_scores_only_lines_the_model_never_saw(shared_data, tmp_path):
    """`--held-out`: the shipped model as shipped, on its recipe's held-out lines only (the
    numbers `quality_ja.json` records), no retraining."""
    res = compare(load_config(None), str(shared_data / GOLD), ["default"], group=3, held_out=True, hojichar=False)[0]
    assert res["lines"] == CARD["held_out"]["lines"]
    o = res["overall"]
    assert (o["documents_good"], o["documents_bad"]) == (
        CARD["held_out"]["documents_good"],
        CARD["held_out"]["documents_bad"],
    )
    assert round(o["keep_good"], 4) == CARD["held_out"]["good_kept"]
    assert round(o["drop_bad"], 4) == CARD["held_out"]["bad_dropped"]
    assert any("never trained on" in n for n in res["notes"])
    other = tmp_path / "labels.jsonl"  # not the file the shipped model was built from
    other.write_text((shared_data / GOLD).read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(UserError, match="--held-out"):
        compare(load_config(None), str(other), ["default"], held_out=True)


@pytest.mark.realdata
def test_word_rules_share_one_parse_and_decide_as_with_their_own(shared_data):
    """too_many_nouns, word_repetition and the classifier's words come from one fugashi
    parse per document; every value equals what each gets from its own tagger."""
    from fugashi import Tagger
    from hojichar import Document as HDocument
    from hojichar.filters.document_filters import DiscardTooManyNouns, WordRepetitionRatioFilter

    from shikomi.filters import ja_words
    from shikomi.filters.classifier import words

    rows = [json.loads(x) for x in (shared_data / GOLD).open(encoding="utf-8")]
    texts = [d["text"] for d in group_labelled(rows, 3)][:120]
    norm = make_rule("normalize", {})
    texts = [norm.apply_text(t) for t in texts]
    nouns, rep = make_rule("too_many_nouns", {}), make_rule("word_repetition", {})
    for r in (nouns, rep):
        r.ensure_ready()
    own_nouns, own_rep, own = DiscardTooManyNouns(), WordRepetitionRatioFilter(ngram_size=7), Tagger("-Owakati")
    dropped = 0
    for t in texts:
        got = (nouns.apply_text(t), rep._h_filter.compute_word_repetition_ratio(t, 7), words(t))
        assert ja_words._NODES[0] == t  # one parse served all three
        want_nouns = own_nouns.apply(HDocument(t)).is_rejected
        assert (got[0] is not None) == want_nouns
        if got[0] is not None:
            assert got[0][1] >= 0.8
            dropped += 1
        assert got[1] == own_rep.compute_word_repetition_ratio(t, 7)
        assert got[2] == " ".join(own.parse(t).split())
    assert dropped  # the set has keyword lists and ad copy that too_many_nouns drops
    # a node's features are read at parse time: a later parse does not change them
    a = ja_words.nodes("今日は良い天気です")
    ja_words.wakati("東京都の人口を調べる")
    ja_words.word_list("全く別の文章です")
    assert [w.feature.pos1 for w in a] == ["名詞", "助詞", "形容詞", "名詞", "助動詞"]
