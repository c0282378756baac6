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
_LETTERS = re.compile(r"[^\W\d_]")


def has_kana(text: str) -> bool:
    """Whether the text holds a kana letter (not only ・ or ー)."""
    return _KANA_LETTERS.search(text) is not None


def cjk_count(text: str) -> int:
    """CJK unified ideographs in the text."""
    return len(_CJK.findall(text))


def kana_letter_share(text: str) -> tuple[int, float]:
    """(kana letters, their share of all letters) of the text."""
    kana = len(_KANA_LETTERS.findall(text))
    if not kana:
        return 0, 0.0
    return kana, kana / max(1, len(_LETTERS.findall(text)))


class FastTextLID:
    """predict(text) -> (language, score) on text normalised to one line."""

    def __init__(
        self,
        model_path: str | None = None,
        max_chars: int = 0,
        kana_guard: bool = True,
        kana_min_share: float = 0.1,
        kana_min: int = 2,
    ):
        import fasttext

        path = model_path or default_model_path()
        if not os.path.isfile(path):
            raise UserError(f"langid.model: file not found: {path}")
        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load warning
        self.model = fasttext.load_model(path)
        self.path = path
        self.max_chars = max_chars
        self.kana_guard = kana_guard
        self.kana_min_share = kana_min_share
        self.kana_min = kana_min

    @staticmethod
    def normalise(text: str) -> str:
        return _WS.sub(" ", text).strip()

    def predict(self, text: str) -> tuple[str, float]:
        lang, score, _ = self.classify(text)
        return lang, score

    def classify(self, text: str) -> tuple[str, float, str]:
        """(language, score, how): `how` is `fasttext` (the model's top label), `kana`
        (enough kana: Japanese whatever the model says; the score is the model's
        probability for ja) or `no_kana` (ja without kana: the model's second label)."""
        if self.max_chars:
            text = text[: self.max_chars]
        t = self.normalise(text)
        if not t:
            return "und", 0.0, "fasttext"
        labels, scores = self.model.predict(t, k=2)
        if not len(labels):
            return "und", 0.0, "fasttext"
        langs = [lab.replace("__label__", "") for lab in labels]
        lang, score = langs[0], float(min(1.0, scores[0]))
        if not self.kana_guard:
            return lang, score, "fasttext"
        if lang != "ja":
            # Only Japanese is written with kana: short casual sentences in kana are
            # labelled mk, ko or zh by lid.176 now and then.
            kana, share = kana_letter_share(t)
            if kana >= self.kana_min and share >= self.kana_min_share:
                return "ja", self.score_of(t, "ja"), "kana"
        elif not has_kana(t) and cjk_count(t) >= 4 and len(langs) > 1:
            # Japanese prose virtually always contains kana; kanji-only text labelled
            # ja by lid.176 is mostly Chinese. Fall back to the second label.
            return langs[1], float(min(1.0, scores[1])), "no_kana"
        return lang, score, "fasttext"

    def score_of(self, text: str, lang: str) -> float:
        """The model's probability of `lang` for normalised text."""
        labels, scores = self.model.predict(text, k=-1)
        for lab, sc in zip(labels, scores):
            if lab == f"__label__{lang}":
                return float(min(1.0, sc))
        return 0.0
