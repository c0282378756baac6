"""The clean stage on the project's own fixtures: rules, profiles, errors, the stage
(rejected/ with reasons, stats.json per rule), parallel runs and kill -9 resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shikomi.config import load_config
from shikomi.errors import UserError
from shikomi.filters.evaluate import group_labelled, run_chain
from shikomi.filters.profile import build_rules
from shikomi.filters.registry import make_rule

ROOT = Path(__file__).resolve().parents[2]

GOOD = (
    "今日は朝から雨が降っていたので、近所の図書館で本を読んで過ごしました。"
    "久しぶりに小説を一冊読み終えて、とても満足しています。\n"
    "午後には雨もやんだので、少しだけ散歩に出かけました。公園の桜はもう散り始めていました。"
)
CHIBA = " ".join(
    f"{p}の一戸建てを売る"
    for p in [
        "千葉県船橋市",
        "千葉県千葉市中央区",
        "千葉市花見川区",
        "千葉市稲毛区",
        "千葉市若葉区",
        "千葉市緑区",
        "千葉市美浜区",
        "千葉県市川市",
        "千葉県松戸市",
        "千葉県柏市",
    ]
)


def rule(name, **params):
    return make_rule(name, params)


@pytest.mark.parametrize(
    "name,params,text,expect",
    [
        (
            "hiragana_fraction",
            {},
            "東京都千代田区丸の内一丁目 東京駅 新幹線 山手線 中央線 京浜東北線",
            "hiragana_fraction",
        ),
        ("katakana_fraction", {}, "アイテムカテゴリーランキングショッピングセールクーポン", "katakana_fraction"),
        ("japanese_fraction", {}, "This is mostly English text with は one kana.", "japanese_fraction"),
        ("average_sentence_length", {}, "はい。\nいいえ。\nそう。\nです。", "average_sentence_length"),
        ("max_sentence_length", {"max": 50}, "あ" * 30 + "い" * 30 + "。", "max_sentence_length"),
        ("ellipsis_sentences", {}, "これは途中で…\nあれも途中で...\nそれは最後まで書いた。", "ellipsis_sentences"),
        ("duplicate_lines", {}, "同じ行です。\n同じ行です。\n同じ行です。\n違う行です。", "duplicate_lines"),
        ("zlib_ratio", {}, "あいうえお" * 200, "zlib_ratio"),
        (
            "accept_japanese",
            {},
            "English only text here, nothing Japanese at all in the first fifty chars.",
            "accept_japanese",
        ),
        ("document_length", {"min_chars": 100}, "短い。", "document_length"),
        ("single_char_repetition", {"threshold": 20}, "あ" * 30, "single_char_repetition"),
        ("char_repetition", {}, CHIBA, "char_repetition"),
        ("too_many_nouns", {}, "リンゴ・オレンジ・ミカン・バナナ セール中", "too_many_nouns"),
    ],
)
def test_rule_drops_with_its_name_and_value(name, params, text, expect):
    res = rule(name, **params).apply_text(text)
    assert res is not None and res[0] == expect
    assert rule(name, **params).apply_text(GOOD) is None


def test_transforms_rewrite_text():
    assert rule("normalize").apply_text("ＡＢＣ１２３ｶﾀｶﾅ") == "ABC123カタカナ"
    assert "XXXX" in rule("mask_personal_information").apply_text("連絡は075-123-4567まで")
    out = rule("header_footer_lines").apply_text("カテゴリー 日記\n" + GOOD)
    assert out == GOOD


def test_unknown_rule_and_bad_parameter_are_one_line_errors():
    with pytest.raises(UserError, match="unknown rule 'nope'"):
        make_rule("nope", {})
    with pytest.raises(UserError, match="has no parameter 'maximum'; allowed: max"):
        make_rule("katakana_fraction", {"maximum": 0.3})
    with pytest.raises(UserError, match="bad value for 'min'"):
        make_rule("hiragana_fraction", {"min": 3})
    cfg = load_config(None, {"clean": {"profile": "nonexistent"}})
    with pytest.raises(UserError, match="unknown clean profile"):
        build_rules(cfg.clean)
    cfg = load_config(None, {"clean": {"rules": {"not_a_rule": {"x": 1}}}})
    with pytest.raises(UserError, match="unknown rule 'not_a_rule'"):
        build_rules(cfg.clean)
    cfg = load_config(None, {"clean": {"rules": {"rare_kuten": {"min": 1}}}})  # a rule, not in the default profile
    with pytest.raises(UserError, match="not in profile"):
        build_rules(cfg.clean)


def test_profile_overrides_and_classifier_note():
    cfg = load_config(None, {"clean": {"rules": {"hiragana_fraction": {"min": 0.3}, "ads": False}}})
    rules, notes = build_rules(cfg.clean)
    names = [r.rule for r in rules]
    assert "ads" not in names and "quality_classifier" in names  # the shipped model runs by default
    assert "too_many_nouns" in names and "word_repetition" in names  # POS filters run by default
    assert next(r for r in rules if r.rule == "hiragana_fraction").params.min == 0.3
    assert not any("quality_classifier" in n for n in notes)
    rules, notes = build_rules(load_config(None, {"clean": {"rules": {"quality_classifier": False}}}).clean)
    assert "quality_classifier" not in [r.rule for r in rules]
    assert any("quality_classifier: turned off" in n for n in notes)


def test_templated_seo_lines_are_dropped_with_reason():
    rules, _ = build_rules(load_config(None).clean)
    reason, _ = run_chain(rules, CHIBA)
    assert reason is not None and reason.split(":")[0] in {
        "average_sentence_length",
        "char_repetition",
        "duplicate_char_ngrams",
        "word_repetition",
    }
    reason, _ = run_chain(rules, CHIBA.replace(" ", "\n"))
    assert reason is not None
    assert run_chain(rules, GOOD)[0] is None


def test_group_labelled_joins_same_label_lines_in_order():
    rows = [{"text": f"t{i}", "label": "good" if i % 3 else "bad"} for i in range(9)]
    docs = group_labelled(rows, 3)
    assert [d["label"] for d in docs] == ["bad", "good", "good"]
    assert docs[0]["text"] == "t0\nt3\nt6"
    assert docs[1]["text"] == "t1\nt2\nt4"


def _classifier_labels(path: Path) -> Path:
    good = [
        "今日は家族で公園に行き、お弁当を食べました。",
        "新しい本を読み始めたところ、とても面白いです。",
        "週末は友人と映画を見に行く予定です。",
        "祖母の家で季節の野菜をたくさんもらいました。",
    ]
    bad = [
        "激安セール実施中!今すぐクリック!送料無料!",
        "最安値保証!人気ランキング1位の商品を今すぐ購入!",
        "今なら半額!キャンペーン実施中!お申し込みはこちら!",
        "口コミ評判No.1!今すぐ無料でお試し!",
    ]
    with path.open("w", encoding="utf-8") as f:
        for _ in range(5):
            for t in good:
                f.write(json.dumps({"text": t, "label": "good"}, ensure_ascii=False) + "\n")
            for t in bad:
                f.write(json.dumps({"text": t, "label": "bad"}, ensure_ascii=False) + "\n")
    return path


def test_quality_classifier_is_deterministic(tmp_path):
    labels = _classifier_labels(tmp_path / "labels.jsonl")
    a = make_rule("quality_classifier", {"labels": str(labels)})
    b = make_rule("quality_classifier", {"labels": str(labels)})
    a.ensure_ready(), b.ensure_ready()
    text = "激安セール実施中!送料無料!今すぐクリック!"
    assert a.p_good(text) == b.p_good(text)
    assert a.p_good(text) < a.p_good("週末は家族で公園に行きました。")
    with pytest.raises(UserError, match="labels file not found"):
        make_rule("quality_classifier", {"labels": str(tmp_path / "missing.jsonl")}).ensure_ready()


# --- the stage, end to end ---------------------------------------------------------


def _fixture_input(path: Path, n: int = 120) -> Path:
    texts = []
    for i in range(n):
        k = i % 4
        if k == 0:
            texts.append(f"{i}番目の記事です。" + GOOD)
        elif k == 1:
            texts.append(CHIBA + f" {i}")
        elif k == 2:
            texts.append(f"English document number {i} without any Japanese characters at all in the opening.")
        else:
            texts.append(f"{i}日目の日記。" + GOOD.replace("図書館", "喫茶店") + "\n連絡先は03-1234-5678です。")
    with path.open("w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(
                json.dumps(
                    {"id": f"doc-{i:04d}", "text": t, "metadata": {"url": f"https://example.jp/{i}"}},
                    ensure_ascii=False,
                )
                + "\n"
            )
    return path


def _run_cli(args: list[str], **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, **kw
    )


def _docs(stage_dir: Path, sub: str) -> list[dict]:
    rows = []
    for f in sorted((stage_dir / sub).glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def _bytes(stage_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(stage_dir)): p.read_bytes()
        for sub in ("data", "rejected")
        for p in sorted((stage_dir / sub).glob("*.parquet"))
    }


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("clean")
    inp = _fixture_input(base / "in.jsonl")
    runs = {}
    for name, tasks, workers in [("t2w2", 2, 2), ("t2w1", 2, 1), ("t1w1", 1, 1)]:
        out = base / name
        r = _run_cli(
            ["clean", "--input", str(inp), "--output", str(out), "--tasks", str(tasks), "--workers", str(workers)]
        )
        assert r.returncode == 0, r.stderr + r.stdout
        runs[name] = out / "clean"
    return inp, runs


def test_stage_keeps_drops_and_explains(clean_runs):
    _, runs = clean_runs
    stage = runs["t2w2"]
    kept, rejected = _docs(stage, "data"), _docs(stage, "rejected")
    assert len(kept) + len(rejected) == 120
    kept_ids = {r["id"] for r in kept}
    assert all(f"doc-{i:04d}" in kept_ids for i in range(0, 120, 4))
    reasons = {r["id"]: r["metadata"]["reject_reason"] for r in rejected}
    assert reasons["doc-0002"].startswith("accept_japanese")
    assert reasons["doc-0001"].split(":")[0] in {"average_sentence_length", "char_repetition", "duplicate_char_ngrams"}
    assert ":" in reasons["doc-0001"]  # the value that tripped it
    masked = next(r for r in kept if r["id"] == "doc-0003")
    assert "連絡先は[PHONE]です。" in masked["text"] and "03-1234-5678" not in masked["text"]
    assert masked["metadata"]["url"] == "https://example.jp/3"
    stats = json.loads((stage / "stats.json").read_text())
    assert stats["documents_in"] == 120 and stats["documents_out"] == len(kept)
    assert sum(d["documents"] for d in stats["dropped"].values()) == len(rejected)
    steps = {s["step"].split(": ", 1)[-1]: s for s in stats["rules"]}
    for name in ("hiragana_fraction", "too_many_nouns", "word_repetition", "pii_phone"):
        assert name in steps and "time_s" in steps[name] and "chars_in" in steps[name]
    assert steps["accept_japanese"]["dropped"] == {"accept_japanese": 30}
    assert steps["pii_phone"]["masked"] == steps["pii_phone"]["masked_docs"] == 30  # one number in each
    assert steps["pii_email"].get("masked") is None
    assert stats["clean_profile"]["profile"] == "default"


def test_parallel_runs_match_one_worker(clean_runs):
    _, runs = clean_runs
    assert _bytes(runs["t2w2"]) == _bytes(runs["t2w1"])
    strip = lambda rows: [(r["id"], r["text"], json.dumps(r["metadata"], sort_keys=True)) for r in rows]  # noqa: E731
    for sub in ("data", "rejected"):
        assert strip(_docs(runs["t2w2"], sub)) == strip(_docs(runs["t1w1"], sub))


def test_kill_and_rerun_gives_identical_output(clean_runs, tmp_path):
    inp, runs = clean_runs
    out = tmp_path / "killed"
    args = ["clean", "--input", str(inp), "--output", str(out), "--tasks", "2", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-m", "shikomi.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    done = out / "clean" / "logs" / "clean" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if done.is_dir() and any(done.iterdir()):
            break
        time.sleep(0.05)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    r = _run_cli(args)
    assert r.returncode == 0, r.stderr
    assert _bytes(out / "clean") == _bytes(runs["t2w1"])


def test_bad_config_is_one_line_error(tmp_path):
    inp = _fixture_input(tmp_path / "in.jsonl", n=4)
    r = _run_cli(
        [
            "clean",
            "--input",
            str(inp),
            "--output",
            str(tmp_path / "o"),
            "--set",
            "clean.rules={katakana_fraction: {maximum: 2}}",
        ]
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "has no parameter 'maximum'" in r.stderr
