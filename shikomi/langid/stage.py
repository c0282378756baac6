"""langid: score every document with fastText and route it to
`langid/<language>/data/` for the configured languages; everything else, and
documents below the score threshold (cc_net: 0.5), go to `langid/rejected/`."""

from __future__ import annotations

from pathlib import Path

from shikomi.config import Config
from shikomi.core.documents import reader_for
from shikomi.core.jobs import Job, Stage
from shikomi.core.rules import CountIn, Rule
from shikomi.core.writers import StageWriter
from shikomi.errors import UserError

N_BINS = 10


class LanguageRule(Rule):
    """Adds `language` and `language_score`; drops documents whose top language is
    not kept (`language:<lang>`) or whose score is under the threshold
    (`low_language_score:<score>`)."""

    name = "language id"
    rule = "language"

    def __init__(
        self,
        languages: list[str],
        threshold: float,
        thresholds: dict[str, float],
        model: str | None,
        max_chars: int = 10_000,
        kana_guard: bool = True,
    ):
        super().__init__()
        self.languages = list(languages)
        self.threshold = threshold
        self.thresholds = dict(thresholds)
        self.model_path = model
        self.max_chars = max_chars
        self.kana_guard = kana_guard
        self._lid = None

    def check(self, doc):
        if self._lid is None:
            from shikomi.text.lid import FastTextLID

            self._lid = FastTextLID(self.model_path, max_chars=self.max_chars, kana_guard=self.kana_guard)
        lang, score = self._lid.predict(doc.text)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 4)
        self.stat_update(f"lang/{lang}")
        self.stat_update(
            f"score_bin/{lang if lang in self.languages else 'other'}/{min(N_BINS - 1, int(score * N_BINS))}"
        )
        if lang not in self.languages:
            return "language", lang
        if score < self.thresholds.get(lang, self.threshold):
            return "low_language_score", f"{lang}={score:.3f}"
        return None


def document_language(doc) -> str:
    """The routing key of a kept document: its language (`<out>/<language>/data/`)."""
    return doc.metadata["language"]


def langid_extras(out_dir: str) -> dict:
    """Language distribution and score histograms for stats.json."""
    from shikomi.core.stats import merge_task_stats

    langs: dict[str, int] = {}
    kept: dict[str, dict] = {}
    hist: dict[str, list[int]] = {}
    for step in merge_task_stats(Path(out_dir) / "logs" / "langid"):
        for k, v in (step.get("stats") or {}).items():
            total = int(v.get("total", 0) if isinstance(v, dict) else v)
            if k.startswith("lang/"):
                langs[k[5:]] = langs.get(k[5:], 0) + total
            elif k.startswith("score_bin/"):
                _, lang, b = k.split("/")
                hist.setdefault(lang, [0] * N_BINS)[int(b)] += total
            elif k.startswith("docs_out/"):
                kept.setdefault(k[9:], {})["documents"] = total
            elif k.startswith("chars_out/"):
                kept.setdefault(k[10:], {})["chars"] = total
    return {
        "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])),
        "kept_by_language": kept,
        "score_histogram": {"bins": [i / N_BINS for i in range(N_BINS + 1)], "counts": hist},
    }


def build(cfg: Config, input_path: str | None = None) -> Stage:
    lc = cfg.langid
    src = input_path or lc.input
    if not src:
        raise UserError("langid: no input (pass --input or set langid.input)")
    out = str(cfg.stage_dir("langid"))
    tasks = lc.tasks or cfg.executor.tasks
    pipeline = [
        reader_for(src),
        CountIn(),
        LanguageRule(lc.languages, lc.threshold, lc.thresholds, lc.model, lc.max_chars, lc.kana_guard),
        StageWriter(out, "{route}/data", route=document_language, make_folder=False),
    ]
    return Stage("langid", out, [Job("langid", pipeline, tasks=tasks)], extras=langid_extras)
