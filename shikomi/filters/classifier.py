"""A small fastText quality classifier (good/bad) on fugashi words.

HojiChar-style rules catch broken text, lists and repetition; they do not catch
fluent advertising and SEO copy, which is what hand-labelled "bad" Japanese web text
mostly is. This rule learns that from labelled lines: a JSONL with `text` and
`label` ("good"/"bad"), the same format `shikomi clean-eval --labels` reads. It is
trained in memory when the rule starts (one thread, fixed seed: the same labels give
the same model and the same output), or loaded from a fastText `.bin`/`.ftz`.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from pathlib import Path

from pydantic import Field

from shikomi.config.base import Section
from shikomi.errors import UserError
from shikomi.filters.base import CleanRule, register

CLASSIFIER_RULE = "quality_classifier"


class ClassifierParams(Section):
    threshold: float = Field(0.4, ge=0, le=1, description="drop when P(good) is below this")
    labels: str | None = Field(None, description="labelled JSONL (text, label good/bad) to train on")
    model: str | None = Field(None, description="a trained fastText model instead of labels")
    epoch: int = Field(50, ge=1)
    lr: float = Field(0.5, gt=0)
    dim: int = Field(20, ge=2)
    word_ngrams: int = Field(2, ge=1)
    seed: int = 1
    max_chars: int = Field(5000, ge=100, description="classify at most this many characters")


def read_labels(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"labels file not found: {p}")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{p}:{i}: not a JSON line") from None
        if not isinstance(r, dict) or "text" not in r or r.get("label") not in ("good", "bad"):
            raise UserError(f"{p}:{i}: each line needs 'text' and 'label' (good or bad)")
        rows.append(r)
    if not rows:
        raise UserError(f"{p}: no labelled lines")
    return rows


_TAGGER = None


def words(text: str) -> str:
    """NFKC text as space-separated fugashi (unidic-lite) surface forms, one line."""
    global _TAGGER
    if _TAGGER is None:
        from fugashi import Tagger

        _TAGGER = Tagger("-Owakati")
    return " ".join(w.surface for w in _TAGGER(unicodedata.normalize("NFKC", text)) if not w.surface.isspace())


def train_classifier(rows: list[dict], params: ClassifierParams):
    import fasttext

    labels = {r["label"] for r in rows}
    if labels != {"good", "bad"}:
        raise UserError(f"quality classifier: the labels need both good and bad lines, got {sorted(labels)}")
    fd, fn = tempfile.mkstemp(suffix=".txt", prefix="shikomi-quality-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(f"__label__{r['label']} {words(r['text'][: params.max_chars])}\n")
        return fasttext.train_supervised(
            fn,
            epoch=params.epoch,
            lr=params.lr,
            dim=params.dim,
            wordNgrams=params.word_ngrams,
            minCount=1,
            thread=1,
            seed=params.seed,
            verbose=0,
        )
    finally:
        os.unlink(fn)


@register
class QualityClassifier(CleanRule):
    """Drops documents the fastText classifier scores P(good) < `threshold`; value:
    P(good)."""

    rule = CLASSIFIER_RULE
    Params = ClassifierParams

    def setup(self):
        import fasttext

        if self.params.model:
            if not Path(self.params.model).is_file():
                raise UserError(f"quality_classifier: model not found: {self.params.model}")
            self._h_model = fasttext.load_model(self.params.model)
        elif self.params.labels:
            self._h_model = train_classifier(read_labels(self.params.labels), self.params)
        else:
            raise UserError("quality_classifier: set 'labels' (a labelled JSONL) or 'model'")

    def p_good(self, text: str) -> float:
        labels, probs = self._h_model.predict(words(text[: self.params.max_chars]), k=2)
        return float(dict(zip(labels, probs)).get("__label__good", 0.0))

    def check(self, doc):
        p = self.p_good(doc.text)
        if p < self.params.threshold:
            return self.rule, p
