"""fastText language identification (lid.176 by default, GlotLID or any fastText
model by path). The quantised `lid.176.ftz` shipped in shikomi/text/models/ loads
offline; nothing is downloaded."""

from __future__ import annotations

import os
import re
from pathlib import Path

from shikomi.errors import UserError
from shikomi.text.scripts import pattern

_WS = re.compile(r"\s+")


def default_model_path() -> str:
    """lid.176.ftz, shipped in the package (shikomi/text/models/, see NOTICE there)."""
    p = Path(__file__).with_name("models") / "lid.176.ftz"
    if not p.is_file():  # pragma: no cover
        raise UserError(f"{p} is missing; reinstall shikomi or set langid.model")
    return str(p)


_KANA_LETTERS = pattern("kana_letters")
_CJK = pattern("cjk_unified")


def has_kana(text: str) -> bool:
    """Whether the text holds a kana letter (not only ・ or ー)."""
    return _KANA_LETTERS.search(text) is not None


def cjk_count(text: str) -> int:
    """CJK unified ideographs in the text."""
    return len(_CJK.findall(text))


class FastTextLID:
    """predict(text) -> (language, score) on text normalised to one line."""

    def __init__(self, model_path: str | None = None, max_chars: int = 0, kana_guard: bool = True):
        import fasttext

        path = model_path or default_model_path()
        if not os.path.isfile(path):
            raise UserError(f"langid.model: file not found: {path}")
        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load warning
        self.model = fasttext.load_model(path)
        self.path = path
        self.max_chars = max_chars
        self.kana_guard = kana_guard

    @staticmethod
    def normalise(text: str) -> str:
        return _WS.sub(" ", text).strip()

    def predict(self, text: str) -> tuple[str, float]:
        if self.max_chars:
            text = text[: self.max_chars]
        t = self.normalise(text)
        if not t:
            return "und", 0.0
        labels, scores = self.model.predict(t, k=2)
        if not len(labels):
            return "und", 0.0
        langs = [lab.replace("__label__", "") for lab in labels]
        lang, score = langs[0], float(min(1.0, scores[0]))
        if lang == "ja" and self.kana_guard and not has_kana(t) and cjk_count(t) >= 4 and len(langs) > 1:
            # Japanese prose virtually always contains kana; kanji-only text labelled
            # ja by lid.176 is mostly Chinese. Fall back to the second label.
            return langs[1], float(min(1.0, scores[1]))
        return lang, score
