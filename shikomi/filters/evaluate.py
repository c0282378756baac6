"""`shikomi clean-eval --labels FILE`: score the configured clean profile on labelled
JSONL (`text`, `label` good/bad).

Same-label lines are joined (`--group N`, in file order) into documents. Each document
runs through the rule chain as in the stage; the table shows, per rule, how many good
and bad documents reached it and how many it dropped, and what the rule alone would
drop; then overall keep rates, and precision/recall of "kept" (good = positive).

When the profile's `quality_classifier` has no model, it is trained on the labels
themselves with `--folds K` cross-validation (default 5): each document is scored by
a classifier trained on the lines of the other folds, so no document is judged by a
model that saw it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datatrove.data import Document

from shikomi.errors import UserError
from shikomi.filters.base import CleanRule
from shikomi.filters.classifier import CLASSIFIER_RULE, read_labels
from shikomi.filters.profile import build_rules, resolve_rules


def _classifier_needs_cv(clean, labels_path: str) -> bool:
    """True when the profile's classifier would otherwise train on the labels being
    scored (or has nothing to train on)."""
    from shikomi.filters.profile import load_profile

    specs = dict(load_profile(clean.profile))
    ov = (clean.rules or {}).get(CLASSIFIER_RULE, True)
    if CLASSIFIER_RULE not in specs or ov is False:
        return False
    params = {**specs[CLASSIFIER_RULE], **(ov if isinstance(ov, dict) else {})}
    if clean.quality_model or params.get("model"):
        return False
    src = clean.quality_labels or params.get("labels")
    return src is None or Path(src).resolve() == Path(labels_path).resolve()


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


def evaluate(cfg, labels_path: str, group: int = 3, folds: int = 5) -> dict:
    rows = read_labels(labels_path)
    docs = group_labelled(rows, group)
    clean = cfg.clean
    _, notes = resolve_rules(clean)
    want_cv = _classifier_needs_cv(clean, labels_path)
    if want_cv and folds < 2:
        raise UserError("the quality_classifier would be trained on the labels it is scored on; use --folds 2 or more")

    fold_of = {}
    if want_cv:
        notes = [n for n in notes if not n.startswith(CLASSIFIER_RULE)]
        notes.append(
            f"{CLASSIFIER_RULE}: {folds}-fold cross-validation on the labels (each document scored by a model "
            f"trained on the other folds)"
        )
        for k in range(len(docs)):
            fold_of[k] = k % folds

    def chains():
        """Yield (fold, rules) once per fold (or once with fold None)."""
        if not want_cv:
            rules, _ = build_rules(clean)
            yield None, rules
            return
        import tempfile

        for f in range(folds):
            train_lines = {i for k, d in enumerate(docs) if fold_of[k] != f for i in d["lines"]}
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as tmp:
                for i in sorted(train_lines):
                    tmp.write(
                        json.dumps({"text": rows[i]["text"], "label": rows[i]["label"]}, ensure_ascii=False) + "\n"
                    )
            c = clean.model_copy(update={"quality_labels": tmp.name, "quality_model": None})
            rules, _ = build_rules(c)
            for r in rules:
                r.ensure_ready()  # trains now, so the temp file can go
            Path(tmp.name).unlink()
            yield f, rules

    results: list[tuple[str, str | None, list]] = [None] * len(docs)  # type: ignore
    rule_names: list[str] = []
    alone: dict[str, dict[str, int]] = {}
    for f, rules in chains():
        rule_names = [r.rule for r in rules]
        for r in rules:
            r.ensure_ready()
        for k, d in enumerate(docs):
            if f is not None and fold_of[k] != f:
                continue
            reason, outcome = run_chain(rules, d["text"])
            results[k] = (d["label"], reason, outcome)
            # each filter alone, on the normalised text the chain's filters see
            text = d["text"]
            doc = Document(text=text, id="alone")
            for r in rules:
                if r.kind == "transform":
                    r.check(doc)
            for r in rules:
                if r.kind == "transform":
                    continue
                a = alone.setdefault(r.rule, {"good": 0, "bad": 0})
                res = r.check(Document(text=doc.text, id="alone"))
                if res is not None and res is not False:
                    a[d["label"]] += 1

    n = {"good": sum(d["label"] == "good" for d in docs), "bad": sum(d["label"] == "bad" for d in docs)}
    per_rule = []
    for idx, name in enumerate(rule_names):
        reached = {"good": 0, "bad": 0}
        dropped = {"good": 0, "bad": 0}
        for label, _reason, outcome in results:
            if len(outcome) > idx:
                reached[label] += 1
                if outcome[idx] is not None:
                    dropped[label] += 1
        if name not in alone:
            continue  # transforms
        per_rule.append(
            {
                "rule": name,
                "reached_good": reached["good"],
                "reached_bad": reached["bad"],
                "dropped_good": dropped["good"],
                "dropped_bad": dropped["bad"],
                "alone_drop_good": alone[name]["good"] / n["good"] if n["good"] else 0.0,
                "alone_drop_bad": alone[name]["bad"] / n["bad"] if n["bad"] else 0.0,
            }
        )
    kept_good = sum(1 for label, reason, _ in results if label == "good" and reason is None)
    kept_bad = sum(1 for label, reason, _ in results if label == "bad" and reason is None)
    kept = kept_good + kept_bad
    overall = {
        "documents_good": n["good"],
        "documents_bad": n["bad"],
        "keep_good": kept_good / n["good"] if n["good"] else 0.0,
        "keep_bad": kept_bad / n["bad"] if n["bad"] else 0.0,
        "drop_bad": 1 - kept_bad / n["bad"] if n["bad"] else 0.0,
        "precision_kept": kept_good / kept if kept else 0.0,
        "recall_kept": kept_good / n["good"] if n["good"] else 0.0,
    }
    return {
        "labels": str(labels_path),
        "group": group,
        "profile": clean.profile,
        "lines": len(rows),
        "notes": notes,
        "rules": per_rule,
        "overall": overall,
        "documents": [
            {"first_line": d["first"], "label": d["label"], "reject_reason": r[1]} for d, r in zip(docs, results)
        ],
    }


def format_table(res: dict) -> str:
    o = res["overall"]
    lines = [
        f"clean-eval: profile '{res['profile']}' on {res['labels']} ({res['lines']} lines, "
        f"groups of {res['group']}: {o['documents_good']} good / {o['documents_bad']} bad documents)"
    ]
    for n in res["notes"]:
        lines.append(f"  note: {n}")
    lines.append("")
    lines.append(
        f"| {'rule':<26} | good in | good dropped | bad in | bad dropped | alone: good drop | alone: bad drop |"
    )
    lines.append(f"|{'-' * 28}|---------|--------------|--------|-------------|------------------|-----------------|")
    for r in res["rules"]:
        lines.append(
            f"| {r['rule']:<26} | {r['reached_good']:>7} | {r['dropped_good']:>12} | {r['reached_bad']:>6} | "
            f"{r['dropped_bad']:>11} | {r['alone_drop_good']:>16.1%} | {r['alone_drop_bad']:>15.1%} |"
        )
    lines.append("")
    lines.append(
        f"good kept {o['keep_good']:.1%}, bad dropped {o['drop_bad']:.1%} "
        f"(bad kept {o['keep_bad']:.1%}); kept: precision {o['precision_kept']:.3f}, recall {o['recall_kept']:.3f}"
    )
    return "\n".join(lines)


def main(args, cfg) -> int:
    if cfg is None:
        from shikomi.config import load_config

        cfg = load_config(None)
    folds = getattr(args, "folds", None) or 5
    res = evaluate(cfg, args.labels, group=args.group, folds=folds)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "documents"}, ensure_ascii=False, indent=2))
    else:
        print(format_table(res))
    sys.stdout.flush()
    return 0
