"""A small fastText quality classifier (good/bad) on fugashi words.

HojiChar-style rules catch broken text, lists and repetition; they do not catch
fluent advertising and SEO copy, which is what hand-labelled "bad" Japanese web text
mostly is. This rule learns that from labelled lines: a JSONL with `text` and
`label` ("good"/"bad"), the same format `shikomi clean-eval --labels` reads. It is
trained in memory when the rule starts (one thread, fixed seed: the same labels give
the same model and the same output), or loaded from a fastText `.bin`/`.ftz`; the
name of a model shipped in `shikomi/filters/models/` (`quality_ja`, built by
`make quality-model`, see `quality_model.py`) loads that one. Nothing is downloaded.

Every document that reaches the rule's place in the chain gets
`metadata.quality_score` = P(good), kept or dropped, and so do documents an earlier
rule dropped (`score_rejected`): re-thresholding later from the Parquet needs no rerun.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from pathlib import Path

from pydantic import Field

from shikomi.config.base import Section
from shikomi.core.rules import REJECT_KEY
from shikomi.errors import UserError
from shikomi.filters.base import CleanRule, register
from shikomi.filters.ja_words import wakati

CLASSIFIER_RULE = "quality_classifier"
SCORE_KEY = "quality_score"
MODELS_DIR = Path(__file__).parent / "models"


def model_path(model: str) -> Path:
    """A model file, or the name of a shipped model (`quality_ja`)."""
    shipped = MODELS_DIR / f"{model}.ftz"
    if "/" not in model and "\\" not in model and not Path(model).suffix and shipped.is_file():
        return shipped
    return Path(model)


class ClassifierParams(Section):
    threshold: float = Field(0.4, ge=0, le=1, description="drop when P(good) is below this")
    labels: str | None = Field(None, description="labelled JSONL (text, label good/bad) to train on")
    model: str | None = Field(None, description="a trained fastText model (path or shipped name) instead of labels")
    epoch: int = Field(50, ge=1)
    lr: float = Field(0.5, gt=0)
    dim: int = Field(20, ge=2)
    word_ngrams: int = Field(2, ge=1)
    seed: int = 1
    max_chars: int = Field(5000, ge=100, description="classify at most this many characters")
    score_rejected: bool = Field(True, description="also score documents an earlier rule dropped")


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


def words(text: str) -> str:
    """NFKC text as space-separated fugashi (unidic-lite) surface forms, one line."""
    return wakati(unicodedata.normalize("NFKC", text))


_TRAIN_CHILD = (
    "import json, sys, fasttext; "
    "m = fasttext.train_supervised(sys.argv[1], **json.loads(sys.argv[3])); "
    "q = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None; "
    "q is None or m.quantize(input=sys.argv[1], **q); "
    "m.save_model(sys.argv[2])"
)


def train_supervised(path: str, attempts: int = 10, **kw):
    """`fasttext.train_supervised`, again in a fresh process when it reports NaN.

    fastText 0.9.2 now and then stops a one-thread run with "Encountered NaN" that
    depends on the process, not the data: a fresh process trains the same file to the
    same bytes (one thread, fixed seed), and the saved model loads back unchanged."""
    import subprocess
    import sys

    import fasttext

    try:
        return fasttext.train_supervised(path, **kw)
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
    for _ in range(attempts):
        fd, out = tempfile.mkstemp(suffix=".bin", prefix="shikomi-quality-")
        os.close(fd)
        try:
            r = subprocess.run([sys.executable, "-c", _TRAIN_CHILD, path, out, json.dumps(kw)], capture_output=True)
            if r.returncode == 0:
                return fasttext.load_model(out)
        finally:
            os.unlink(out)
    raise UserError(f"quality classifier: fastText training stopped with NaN {attempts + 1} times")


def train_quantized(path: str, quantize: dict, out: str | None = None, attempts: int = 10, **kw):
    """`train_supervised` then `quantize`, in a fresh process each time.

    fastText 0.9.2's quantisation depends on what the process quantised before (the
    second model quantised in one process differs from the first), so each model is
    trained and quantised in a process of its own: the same file gives the same bytes
    however many models were built before. NaN stops are retried as above. With `out`
    the model file is written there as the child saved it (a model loaded and saved again
    does not keep its bytes)."""
    import subprocess
    import sys

    import fasttext

    for _ in range(attempts + 1):
        fd, tmp = tempfile.mkstemp(suffix=".ftz", prefix="shikomi-quality-")
        os.close(fd)
        try:
            r = subprocess.run(
                [sys.executable, "-c", _TRAIN_CHILD, path, tmp, json.dumps(kw), json.dumps(quantize)],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                if out is not None:
                    Path(out).write_bytes(Path(tmp).read_bytes())
                return fasttext.load_model(tmp)
            if "NaN" not in r.stderr:
                raise UserError(f"quality classifier: fastText failed: {r.stderr.strip().splitlines()[-1:]}")
        finally:
            os.unlink(tmp)
    raise UserError(f"quality classifier: fastText training stopped with NaN {attempts + 1} times")


def train_classifier(rows: list[dict], params: ClassifierParams):
    labels = {r["label"] for r in rows}
    if labels != {"good", "bad"}:
        raise UserError(f"quality classifier: the labels need both good and bad lines, got {sorted(labels)}")
    fd, fn = tempfile.mkstemp(suffix=".txt", prefix="shikomi-quality-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(f"__label__{r['label']} {words(r['text'][: params.max_chars])}\n")
        return train_supervised(
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
            path = model_path(self.params.model)
            if not path.is_file():
                raise UserError(f"quality_classifier: model not found: {self.params.model}")
            self._h_model = fasttext.load_model(str(path))
        elif self.params.labels:
            self._h_model = train_classifier(read_labels(self.params.labels), self.params)
        else:
            raise UserError("quality_classifier: set 'labels' (a labelled JSONL) or 'model'")

    def p_good(self, text: str) -> float:
        labels, probs = self._h_model.predict(words(text[: self.params.max_chars]), k=2)
        return float(dict(zip(labels, probs)).get("__label__good", 0.0))

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.ensure_ready()
        yield from super().run(self._score_rejected(data) if self.params.score_rejected else data, rank, world_size)

    def _score_rejected(self, data):
        for doc in data:
            if REJECT_KEY in doc.metadata:
                doc.metadata[SCORE_KEY] = self.p_good(doc.text)
            yield doc

    def check(self, doc):
        p = self.p_good(doc.text)
        doc.metadata[SCORE_KEY] = p
        if p < self.params.threshold:
            return self.rule, p
