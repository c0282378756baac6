"""`shikomi clean-eval --labels FILE`: score the configured clean profile on labelled
JSONL (`text`, `label` good/bad).

Same-label lines are joined (`--group N`, in file order) into documents. Each document
runs through the rule chain as in the stage; the table shows, per rule, how many good
and bad documents reached it and how many it dropped, and what the rule alone would
drop; then overall keep rates, and precision/recall of "kept" (good = positive).

When the profile's `quality_classifier` has no model, it is trained on the labels
themselves with `--folds K` cross-validation (default 5): each document is scored by
a classifier trained on the lines of the other folds, so no document is judged by a
model that saw it. When it runs the shipped model on the labels it was built from, each
fold's model is rebuilt by the shipped recipe from the other folds (minutes); `--held-out`
instead scores only the lines the shipped model was never trained on, with the model as
shipped (seconds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datatrove.data import Document

from shikomi.errors import UserError
from shikomi.filters.classifier import CLASSIFIER_RULE, model_path, read_labels
from shikomi.filters.labelled import group_labelled, run_chain
from shikomi.filters.profile import build_rules, resolve_rules


def _classifier_params(clean) -> dict | None:
    """The profile's classifier parameters with the config's overrides, or None when
    the profile has no (enabled) classifier."""
    from shikomi.filters.profile import load_profile

    specs = dict(load_profile(clean.profile))
    ov = (clean.rules or {}).get(CLASSIFIER_RULE, True)
    if CLASSIFIER_RULE not in specs or ov is False:
        return None
    return {**specs[CLASSIFIER_RULE], **(ov if isinstance(ov, dict) else {})}


def _classifier_needs_cv(clean, labels_path: str) -> bool:
    """True when the profile's classifier would otherwise train on the labels being
    scored (or has nothing to train on)."""
    params = _classifier_params(clean)
    if params is None:
        return False
    if clean.quality_model or (params.get("model") and not clean.quality_labels):
        return False
    src = clean.quality_labels or params.get("labels")
    return src is None or Path(src).resolve() == Path(labels_path).resolve()


def _shipped_model_cv(clean, labels_path: str):
    """The shipped model's recipe and data folder when the profile runs the shipped
    model and `labels_path` is the labelled file it was trained on; else None."""
    from shikomi.filters import quality_model

    params = _classifier_params(clean)
    if params is None or clean.quality_model or clean.quality_labels or not params.get("model"):
        return None
    if model_path(params["model"]).resolve() != quality_model.MODEL.resolve():
        return None
    recipe = quality_model.load_recipe()
    p = Path(labels_path).resolve()
    tail = Path(recipe.gold)
    if p.parts[-len(tail.parts) :] != tail.parts:
        return None
    return recipe, Path(*p.parts[: -len(tail.parts)])


def labelled_rows(labels_path: str, held_out: bool = False) -> list[dict]:
    """The labelled lines; with `held_out`, only those the shipped model's recipe holds
    out of its training (the labels must be the file it was built from)."""
    rows = read_labels(labels_path)
    if not held_out:
        return rows
    from shikomi.filters import quality_model

    recipe = quality_model.load_recipe()
    tail = Path(recipe.gold).parts
    if Path(labels_path).resolve().parts[-len(tail) :] != tail:
        raise UserError(f"--held-out: only for the labels the shipped model was built from ({recipe.gold})")
    return [r for r in rows if quality_model.held_out(r["text"], recipe.holdout_mod)]


def _shipped_chains(clean, rows, docs, fold_of, folds, recipe, data_dir):
    """(fold, rules) with the classifier's model rebuilt by the shipped recipe from the
    other folds' lines (plus the recipe's reference lines when the data folder has them)."""
    from shikomi.filters import quality_model

    ref_path = data_dir / recipe.reference
    ref = [json.loads(x)["text"] for x in ref_path.open(encoding="utf-8")] if ref_path.is_file() else []
    rules, _ = build_rules(clean)
    g_lines = quality_model.gold_lines(rows, recipe)
    r_lines = quality_model.reference_lines(ref, recipe)
    for f in range(folds):
        lines = sorted({i for k, d in enumerate(docs) if fold_of[k] != f for i in d["lines"]})
        model = quality_model.train(quality_model.select_lines(g_lines, lines, r_lines, recipe), recipe)
        for r in rules:
            r.ensure_ready()
            if r.rule == CLASSIFIER_RULE:
                r._h_model = model
        yield f, rules


def evaluate(cfg, labels_path: str, group: int = 3, folds: int = 5, held_out: bool = False) -> dict:
    rows = labelled_rows(labels_path, held_out)
    docs = group_labelled(rows, group)
    clean = cfg.clean
    _, notes = resolve_rules(clean)
    want_cv = _classifier_needs_cv(clean, labels_path)
    shipped = None if held_out else _shipped_model_cv(clean, labels_path)
    if held_out and _shipped_model_cv(clean, labels_path):
        notes.append(f"{CLASSIFIER_RULE}: the shipped model as shipped, on the held-out lines it was never trained on")
    if (want_cv or shipped) and folds < 2:
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
    elif shipped:
        notes.append(
            f"{CLASSIFIER_RULE}: the shipped model was trained on these labels: {folds}-fold cross-validation, each "
            f"fold's model built by the shipped recipe from the other folds' lines (and {shipped[0].reference})"
        )
        for k in range(len(docs)):
            fold_of[k] = k % folds

    def chains():
        """Yield (fold, rules) once per fold (or once with fold None)."""
        if shipped:
            yield from _shipped_chains(clean, rows, docs, fold_of, folds, *shipped)
            return
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


# HojiChar's own chain: its Japanese document filters at HojiChar's default parameters,
# run by `hojichar.Compose` (no length limits: DocumentLengthFilter has no default).
HOJICHAR_ROW = "hojichar"
HOJICHAR_FILTERS = (
    "DocumentNormalizer",
    "AcceptJapanese",
    "DiscardRareKuten",
    "DiscardBBSComments",
    "DiscardAds",
    "DiscardAdultContentJa",
    "DiscardDiscriminationContentJa",
    "DiscardViolenceContentJa",
    "CharRepetitionRatioFilter",
    "SingleCharacterRepetitionFilter",
    "DiscardTooManySpecialToken",
    "DiscardTooManyEndingEllipsis",
    "DiscardTooShortLines",
    "DiscardTooManyNouns",
    "WordRepetitionRatioFilter",
)


def evaluate_hojichar(labels_path: str, group: int = 3, held_out: bool = False) -> dict:
    """HojiChar's default chain on the same documents, as `evaluate` reports it."""
    from hojichar import Compose
    from hojichar import Document as HDocument
    from hojichar.filters import document_filters

    rows = labelled_rows(labels_path, held_out)
    docs = group_labelled(rows, group)
    filters = [getattr(document_filters, name)() for name in HOJICHAR_FILTERS]
    compose = Compose(filters)
    n = {"good": 0, "bad": 0}
    reached = {f: {"good": 0, "bad": 0} for f in HOJICHAR_FILTERS}
    dropped = {f: {"good": 0, "bad": 0} for f in HOJICHAR_FILTERS}
    kept = {"good": 0, "bad": 0}
    for d in docs:
        label = d["label"]
        n[label] += 1
        doc = HDocument(d["text"])
        for name, f in zip(HOJICHAR_FILTERS, compose.filters):
            reached[name][label] += 1
            doc = f.apply(doc)
            if doc.is_rejected:
                dropped[name][label] += 1
                break
        else:
            kept[label] += 1
    per_rule = [
        {
            "rule": name,
            "reached_good": reached[name]["good"],
            "reached_bad": reached[name]["bad"],
            "dropped_good": dropped[name]["good"],
            "dropped_bad": dropped[name]["bad"],
        }
        for name in HOJICHAR_FILTERS
        if name != "DocumentNormalizer"
    ]
    return {
        "labels": str(labels_path),
        "group": group,
        "profile": HOJICHAR_ROW,
        "lines": len(rows),
        "notes": ["HojiChar's Japanese document filters at their default parameters, in hojichar.Compose"],
        "rules": per_rule,
        "overall": _overall(n, kept),
    }


def _overall(n: dict, kept: dict) -> dict:
    k = kept["good"] + kept["bad"]
    return {
        "documents_good": n["good"],
        "documents_bad": n["bad"],
        "keep_good": kept["good"] / n["good"] if n["good"] else 0.0,
        "keep_bad": kept["bad"] / n["bad"] if n["bad"] else 0.0,
        "drop_bad": 1 - kept["bad"] / n["bad"] if n["bad"] else 0.0,
        "precision_kept": kept["good"] / k if k else 0.0,
        "recall_kept": kept["good"] / n["good"] if n["good"] else 0.0,
    }


def compare(
    cfg, labels_path: str, profiles: list[str], group: int = 3, folds: int = 5, hojichar: bool = True, held_out=False
) -> list:
    """`evaluate` once per profile (same config otherwise), plus HojiChar's chain."""
    out = []
    for name in profiles:
        c = cfg.model_copy(update={"clean": cfg.clean.model_copy(update={"profile": name})})
        out.append(evaluate(c, labels_path, group=group, folds=folds, held_out=held_out))
    if hojichar:
        out.append(evaluate_hojichar(labels_path, group=group, held_out=held_out))
    return out


def rule_quality(r: dict, n_bad: int) -> tuple[float | None, float]:
    """(precision, recall) of one rule's drops in the chain: the share of its drops
    that were bad documents, and the share of all bad documents it dropped."""
    drops = r["dropped_good"] + r["dropped_bad"]
    return (r["dropped_bad"] / drops if drops else None), (r["dropped_bad"] / n_bad if n_bad else 0.0)


def format_compare(results: list[dict]) -> str:
    first = results[0]
    o = first["overall"]
    lines = [
        f"clean-eval: {len(results)} chains on {first['labels']} ({first['lines']} lines, groups of {first['group']}: "
        f"{o['documents_good']} good / {o['documents_bad']} bad documents)",
        "",
        "| profile | good kept | bad dropped | precision of kept |",
        "|---------|----------:|------------:|------------------:|",
    ]
    for res in results:
        o = res["overall"]
        lines.append(f"| {res['profile']} | {o['keep_good']:.1%} | {o['drop_bad']:.1%} | {o['precision_kept']:.3f} |")
    lines += [
        "",
        "Per rule, in chain order (precision: share of its drops that were bad; recall: share of all bad "
        "documents it dropped):",
        "",
        "| profile | rule | good dropped | bad dropped | precision | recall |",
        "|---------|------|-------------:|------------:|----------:|-------:|",
    ]
    for res in results:
        for r in res["rules"]:
            prec, rec = rule_quality(r, res["overall"]["documents_bad"])
            if r["dropped_good"] + r["dropped_bad"] == 0:
                continue
            lines.append(
                f"| {res['profile']} | {r['rule']} | {r['dropped_good']} | {r['dropped_bad']} | "
                f"{prec:.2f} | {rec:.1%} |"
            )
    notes = [f"{res['profile']}: {n}" for res in results for n in res["notes"]]
    if notes:
        lines += ["", *[f"note: {n}" for n in notes]]
    return "\n".join(lines)


def plot_compare(results: list[dict], path: str) -> str:
    """Good kept against bad dropped, one point per chain (matplotlib PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for res in results:
        o = res["overall"]
        ax.scatter(o["drop_bad"] * 100, o["keep_good"] * 100, s=40)
        ax.annotate(
            res["profile"],
            (o["drop_bad"] * 100, o["keep_good"] * 100),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=9,
        )
    ax.set_xlabel("bad documents dropped (%)")
    ax.set_ylabel("good documents kept (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"clean-eval on {Path(results[0]['labels']).name}", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def main(args, cfg) -> int:
    if cfg is None:
        from shikomi.config import load_config

        cfg = load_config(None)
    folds = getattr(args, "folds", None) or 5
    held_out = getattr(args, "held_out", False)
    profiles = [p.strip() for p in (getattr(args, "profile", None) or "").split(",") if p.strip()]
    if profiles:
        results = compare(
            cfg,
            args.labels,
            profiles,
            group=args.group,
            folds=folds,
            hojichar=not getattr(args, "no_hojichar", False),
            held_out=held_out,
        )
        if args.json:
            print(
                json.dumps(
                    [{k: v for k, v in r.items() if k != "documents"} for r in results], ensure_ascii=False, indent=2
                )
            )
        else:
            print(format_compare(results))
        if getattr(args, "plot", None):
            print(f"plot: {plot_compare(results, args.plot)}")
        sys.stdout.flush()
        return 0
    res = evaluate(cfg, args.labels, group=args.group, folds=folds, held_out=held_out)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "documents"}, ensure_ascii=False, indent=2))
    else:
        print(format_table(res))
    sys.stdout.flush()
    return 0
