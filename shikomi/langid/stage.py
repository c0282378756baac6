"""langid: score every document with fastText and route it to
`langid/<language>/data/` for the configured languages; everything else, and
documents below the score threshold (cc_net: 0.5; per language, or `auto` from the
run's own scores: shikomi.langid.thresholds), go to `langid/rejected/`. Text with
enough kana is Japanese whatever the model's top label (shikomi.text.lid)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from shikomi.config import Config
from shikomi.core.documents import reader_for
from shikomi.core.jobs import Job, Stage
from shikomi.core.rules import CountIn, Rule
from shikomi.core.writers import StageWriter
from shikomi.errors import UserError
from shikomi.langid.thresholds import SampleThresholds, read_thresholds

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
        kana_min_share: float = 0.1,
        kana_min: int = 2,
        thresholds_from: str | None = None,
    ):
        super().__init__()
        self.languages = list(languages)
        self.threshold = threshold
        self.thresholds = dict(thresholds)
        self.model_path = model
        self.max_chars = max_chars
        self.kana_guard = kana_guard
        self.kana_min_share, self.kana_min = kana_min_share, kana_min
        self.thresholds_from = thresholds_from  # the folder of the pre-pass's thresholds.json
        self._lid = None

    def lid_args(self) -> dict:
        return {
            "model_path": self.model_path,
            "max_chars": self.max_chars,
            "kana_guard": self.kana_guard,
            "kana_min_share": self.kana_min_share,
            "kana_min": self.kana_min,
        }

    def check(self, doc):
        if self._lid is None:
            from shikomi.text.lid import FastTextLID

            self._lid = FastTextLID(**self.lid_args())
            if self.thresholds_from:
                derived = read_thresholds(self.thresholds_from)
                if derived is None:
                    raise RuntimeError(f"langid: {self.thresholds_from}/thresholds.json missing (pre-pass not run)")
                self.thresholds = {k: v["threshold"] for k, v in derived["languages"].items()}
        lang, score, how = self._lid.classify(doc.text)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 4)
        self.stat_update(f"lang/{lang}")
        if how != "fasttext":
            self.stat_update(f"lang_by/{how}")
        self.stat_update(
            f"score_bin/{lang if lang in self.languages else 'other'}/{min(N_BINS - 1, int(score * N_BINS))}"
        )
        if lang not in self.languages:
            return "language", lang
        if how != "kana" and score < self.thresholds.get(lang, self.threshold):  # kana: the bar is the kana share
            return "low_language_score", f"{lang}={score:.3f}"
        return None


def document_language(doc) -> str:
    """The routing key of a kept document: its language (`<out>/<language>/data/`)."""
    return doc.metadata["language"]


def langid_extras(out_dir: str, thresholds: dict | None = None) -> dict:
    """Language distribution, score histograms and the thresholds used (`thresholds`:
    the configured ones; `auto`: read from the pre-pass's thresholds.json) for stats.json."""
    from shikomi.core.stats import merge_task_stats

    langs: dict[str, int] = {}
    kept: dict[str, dict] = {}
    hist: dict[str, list[int]] = {}
    by: dict[str, int] = {}
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
            elif k.startswith("lang_by/"):
                by[k[8:]] = by.get(k[8:], 0) + total
    out = {
        "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])),
        "kept_by_language": kept,
        "score_histogram": {"bins": [i / N_BINS for i in range(N_BINS + 1)], "counts": hist},
    }
    derived = read_thresholds(out_dir) if thresholds is None else None
    if derived is not None:
        out["language_thresholds"] = {"source": "auto", **derived}
    elif thresholds is not None:
        out["language_thresholds"] = {"source": "config", "languages": thresholds}
    if by:
        # labels not from the model's top label: `kana` (Japanese by its kana), `no_kana`
        # (ja without kana: the second label)
        out["language_by"] = dict(sorted(by.items()))
    return out


def build(cfg: Config, input_path: str | None = None) -> Stage:
    lc = cfg.langid
    src = input_path or lc.input
    if not src:
        raise UserError("langid: no input (pass --input or set langid.input)")
    out = str(cfg.stage_dir("langid"))
    tasks = lc.tasks or cfg.executor.tasks
    auto = lc.thresholds == "auto"
    configured = {} if auto else dict(lc.thresholds)
    rule = LanguageRule(
        lc.languages,
        lc.threshold,
        configured,
        lc.model,
        lc.max_chars,
        lc.kana_guard,
        lc.kana_min_share,
        lc.kana_min,
        thresholds_from=out if auto else None,
    )
    pipeline = [
        reader_for(src),
        CountIn(),
        rule,
        StageWriter(out, "{route}/data", route=document_language, make_folder=False),
    ]
    jobs = [Job("langid", pipeline, tasks=tasks)]
    thresholds = None
    if auto:
        pre = SampleThresholds(src, out, lc.languages, lc.threshold, {}, rule.lid_args(), lc.auto_thresholds)
        jobs.insert(0, Job("langid-thresholds", [pre], tasks=1))
    else:
        thresholds = {lang: {"threshold": configured.get(lang, lc.threshold)} for lang in lc.languages}
    return Stage("langid", out, jobs, extras=partial(langid_extras, thresholds=thresholds))
