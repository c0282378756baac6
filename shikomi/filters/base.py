"""The clean stage's rule base: one small class per rule, thresholds from config.

Every rule is a `shikomi.core.jobs.Rule` (a datatrove pipeline step) with a `Params`
model holding its thresholds. A profile (YAML) lists rules by name with their
parameters; unknown parameters are one-line errors. Rules register themselves in
`RULES` under their name, which is also the `reject_reason` prefix and the step
name in `stats.json`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from shikomi.config.base import Section
from shikomi.core.rules import Rule

RULES: dict[str, type[CleanRule]] = {}


class NoParams(Section):
    pass


class CleanRule(Rule):
    """A rule with its parameters. Subclasses set `rule`, `Params` and `check`.

    `kind` is "filter" (drops documents) or "transform" (rewrites the text and never
    drops). Heavy objects (taggers, HojiChar filters, compiled dictionaries) are made
    lazily in `setup()` on first use, so steps pickle cheaply to Slurm/Ray workers.
    """

    rule: ClassVar[str] = "rule"
    kind: ClassVar[str] = "filter"
    Params: ClassVar[type[Section]] = NoParams

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.name = cls.rule  # the step name in datatrove stats and stats.json

    def __init__(self, **params: Any):
        super().__init__()
        self.params = self.Params(**params)
        self._ready = False

    def setup(self) -> None:
        """Build heavy objects; called once per process before the first check."""

    def ensure_ready(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def __getstate__(self):
        state = dict(self.__dict__)
        # drop lazily built objects (fugashi taggers do not pickle)
        for k in [k for k in state if k.startswith("_h_")]:
            del state[k]
        state["_ready"] = False
        return state

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.ensure_ready()
        yield from super().run(data, rank, world_size)

    def apply_text(self, text: str):
        """Apply to one text outside a pipeline: filters return (rule, value) when
        they drop it, else None; transforms return the new text."""
        from datatrove.data import Document

        self.ensure_ready()
        doc = Document(text=text, id="x")
        res = self.check(doc)
        if self.kind == "transform":
            return doc.text
        return _normalise_result(self.rule, res)


def char_ngram_counts(text: str, n: int) -> Counter:
    """How often each overlapping character n-gram of `text` occurs, counted in C
    (`Counter` over slices made by `map`, no Python loop per position)."""
    return Counter(map(text.__getitem__, map(slice, range(len(text) - n + 1), range(n, len(text) + 1))))


def _normalise_result(rule: str, res):
    if res is None or res is False:
        return None
    if isinstance(res, tuple):
        return res
    if res is True:
        return (rule, None)
    return (res, None)


def register(cls: type[CleanRule]) -> type[CleanRule]:
    if cls.rule in RULES and RULES[cls.rule] is not cls:
        raise RuntimeError(f"duplicate clean rule name {cls.rule}")
    RULES[cls.rule] = cls
    return cls
