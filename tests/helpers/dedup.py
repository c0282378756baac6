"""Helpers for the dedup tests: corpora with realistic near-duplicates, running the
stage, reading its output, and the true n-gram Jaccard similarity."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import numpy as np

from shikomi.config import load_config
from shikomi.core.documents import read_documents
from shikomi.dedup.text import fold, normalize, shingle_hashes

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- text sources

_KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
_KANJI = "日本語文書研究開発情報処理技術社会経済政治歴史文化教育科学自然環境地域生活産業市場会社製品"


def synthetic_ja(rng: random.Random, sentences: int) -> str:
    """Japanese-looking text from a seeded vocabulary (for tests without ../shared/data)."""
    words = ["".join(rng.choice(_KANJI) for _ in range(2)) for _ in range(300)]
    parts = []
    for _ in range(sentences):
        n = rng.randint(3, 7)
        s = "".join(rng.choice(words) + rng.choice(["は", "が", "の", "を", "に", "で", "と"]) for _ in range(n))
        parts.append(s + rng.choice(["である。", "です。", "した。", "する。"]))
    return "".join(parts)


def strip_html(html: str) -> str:
    html = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</(p|div|h\d|li|tr|pre|dt|dd|title)>", "\n", html)
    text = unescape(re.sub(r"<[^>]+>", "", html))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


# ---------------------------------------------------------------- realistic edits


def edit_date(rng: random.Random, text: str) -> tuple[str, str]:
    """The same article with an 'updated on' line: two crawls, two dates."""
    d1 = f"更新日：{rng.randint(2015, 2019)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    d2 = f"更新日：{rng.randint(2020, 2024)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    return d1 + "\n" + text, d2 + "\n" + text


def edit_swap(rng: random.Random, text: str) -> str:
    sents = [s + "。" for s in text.split("。") if s]
    if len(sents) < 3:
        return text + "。"
    i = rng.randrange(len(sents) - 1)
    sents[i], sents[i + 1] = sents[i + 1], sents[i]
    return "".join(sents)


HEADERS = [
    ("ホーム > ニュース > 社会\n", "\nこのページの先頭へ戻る\n© 2021 Example News"),
    ("トップページ | サイトマップ | お問い合わせ\n", "\n関連記事\nプライバシーポリシー | 利用規約"),
    ("メニュー\nログイン\n", "\nシェアする\nツイート\nはてなブックマーク"),
]


def edit_header(rng: random.Random, text: str) -> tuple[str, str]:
    (h1, f1), (h2, f2) = rng.sample(HEADERS, 2)
    return h1 + text + f1, h2 + text + f2


def edit_chars(rng: random.Random, text: str, rate: float) -> str:
    """`rate` of the characters replaced, inserted or deleted (the bench's edit model)."""
    from bench import dedup

    return dedup.edit_chars(rng, text, rate)


def fullwidth_copy(text: str) -> str:
    """An exact duplicate after NFKC and whitespace folding (full-width digits, extra spaces)."""
    t = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    return "  " + t.replace("\n", " \n\n ") + "\n"


# ---------------------------------------------------------------- similarity


def shingle_set(text: str, n: int = 5) -> np.ndarray:
    return np.unique(shingle_hashes(normalize(fold(text)), n))


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingle_set(a, n), shingle_set(b, n)
    if not len(sa) and not len(sb):
        return 1.0
    inter = len(np.intersect1d(sa, sb, assume_unique=True))
    return inter / (len(sa) + len(sb) - inter)


# ---------------------------------------------------------------- running the stage


def write_jsonl(folder: Path, docs: list[dict], files: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        with open(folder / f"part-{k:02d}.jsonl", "w", encoding="utf-8") as f:
            for d in docs[k::files]:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return folder


def make_config(run_dir: Path, tasks: int = 2, workers: int = 1, **dedup):
    overrides = {"run_dir": str(run_dir), "executor": {"workers": workers, "tasks": tasks}, "dedup": dedup}
    return load_config(None, overrides)


def run_dedup(run_dir: Path, input_path: Path, tasks: int = 2, workers: int = 1, **dedup) -> dict:
    from shikomi.dedup.stage import build
    from shikomi.executor.run import run_stage

    cfg = make_config(run_dir, tasks, workers, **dedup)
    stage = build(cfg, str(input_path))
    return run_stage(stage, cfg, kind="local", workers=workers)


def run_cli(args: list[str], env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "shikomi.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def outputs(stage_dir: Path) -> tuple[dict, dict]:
    """(kept id -> text, rejected id -> metadata) of a dedup stage folder."""
    kept = (
        {d.id: d.text for d in read_documents(stage_dir / "data")}
        if any((stage_dir / "data").glob("*.parquet"))
        else {}
    )
    rej = {}
    if (stage_dir / "rejected").is_dir() and any((stage_dir / "rejected").glob("*.parquet")):
        rej = {d.id: dict(d.metadata) for d in read_documents(stage_dir / "rejected")}
    return kept, rej
