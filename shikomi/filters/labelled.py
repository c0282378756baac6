"""Labelled lines as documents, and one text through a rule chain: what
`clean-eval` and the quality model's cross-validation both score."""

from __future__ import annotations

from datatrove.data import Document

from shikomi.errors import UserError
from shikomi.filters.base import CleanRule


def group_labelled(rows: list[dict], n: int) -> list[dict]:
    """Join consecutive same-label lines (file order per label) into documents of n lines."""
    if n < 1:
        raise UserError("--group must be at least 1")
    docs = []
    for label in ("good", "bad"):
        same = [(i, r) for i, r in enumerate(rows) if r["label"] == label]
        for k in range(0, len(same), n):
            chunk = same[k : k + n]
            docs.append(
                {
                    "label": label,
                    "text": "\n".join(r["text"] for _, r in chunk),
                    "first": chunk[0][0],
                    "lines": [i for i, _ in chunk],
                }
            )
    docs.sort(key=lambda d: d["first"])
    return docs


def run_chain(rules: list[CleanRule], text: str) -> tuple[str | None, list]:
    """(reject_reason or None, per-rule outcome list) for one text through the chain."""
    doc = Document(text=text, id="eval")
    outcome = []
    for r in rules:
        r.ensure_ready()
        if r.kind == "transform":
            r.check(doc)
            outcome.append(None)
            continue
        res = r.check(doc)
        if res is not None and res is not False:
            rule, value = res if isinstance(res, tuple) else (r.rule, None)
            reason = rule if value is None else f"{rule}:{round(value, 4) if isinstance(value, float) else value}"
            outcome.append(reason)
            return reason, outcome
        outcome.append(None)
    return None, outcome
