"""The shipped Japanese quality model: how `make quality-model` builds it.

    python -m shikomi.filters.quality_model --data ../shared/data [--cv]

Training data (all numbers in `models/quality_ja.recipe.yaml`):

- the labelled lines of `gold/quality/mc4ja_good_bad.jsonl` (good / bad mC4-ja lines),
  except a fixed held-out part (`sha256(text) % holdout_mod == 0`) kept for evaluation;
- Japanese Wikipedia article leads as extra "good" lines: reference-like text, as in
  GPT-3's reference classifier and Swallow v2's wiki-likeness;
- each gold "bad" line `bad_repeat` times, so that the bad class is not swamped by the
  reference lines.

fastText, one thread, fixed seed, then quantised, each model in a process of its own
(`classifier.train_quantized`): the same data gives the same bytes.
With `--cv` the build also chooses the threshold by k-fold cross-validation on the
training lines only (the highest threshold at which the default profile keeps at least
`target_keep_good` of the good documents) and measures the held-out part and JSQuAD's
Wikipedia paragraphs (never used in training); the results go to `quality_ja.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path

import yaml
from pydantic import Field

from shikomi.config.base import Section
from shikomi.errors import UserError
from shikomi.filters.classifier import train_quantized, train_supervised, words

MODELS_DIR = Path(__file__).parent / "models"
MODEL = MODELS_DIR / "quality_ja.ftz"
RECIPE = MODELS_DIR / "quality_ja.recipe.yaml"
CARD = MODELS_DIR / "quality_ja.json"


class Recipe(Section):
    gold: str = Field(description="labelled JSONL under the data folder")
    reference: str = Field(description="reference-like JSONL (text) under the data folder, used as good lines")
    reference_max: int = Field(ge=0, description="use at most this many reference lines (file order)")
    reference_eval: str = Field(description="Wikipedia paragraphs under the data folder, only for evaluation")
    holdout_mod: int = Field(ge=2, description="a gold line is held out when sha256(text) % holdout_mod == 0")
    epoch: int = Field(ge=1)
    lr: float = Field(gt=0)
    dim: int = Field(ge=2)
    word_ngrams: int = Field(ge=1)
    bucket: int = Field(ge=1000)
    min_count: int = Field(ge=1)
    seed: int
    max_chars: int = Field(ge=100)
    cutoff: int = Field(ge=0, description="quantisation: keep this many word/n-gram rows (0: all)")
    dsub: int = Field(ge=1)
    folds: int = Field(ge=2)
    group: int = Field(ge=1, description="join this many same-label lines into one evaluation document")
    target_keep_good: float = Field(gt=0, le=1, description="CV: keep at least this share of good documents")
    bad_repeat: int = Field(1, ge=1, description="each gold bad line appears this many times in training")


def load_recipe(path: Path = RECIPE) -> Recipe:
    return Recipe(**yaml.safe_load(path.read_text(encoding="utf-8")))


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"quality model: data file not found: {path}")
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def held_out(text: str, mod: int) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % mod == 0


def split_gold(rows: list[dict], recipe: Recipe) -> tuple[list[dict], list[dict]]:
    """(training lines, held-out lines), both in file order."""
    train = [r for r in rows if not held_out(r["text"], recipe.holdout_mod)]
    test = [r for r in rows if held_out(r["text"], recipe.holdout_mod)]
    return train, test


def gold_lines(rows: list[dict], recipe: Recipe) -> list[str]:
    return [f"__label__{r['label']} {words(r['text'][: recipe.max_chars])}" for r in rows]


def reference_lines(reference: list[str], recipe: Recipe) -> list[str]:
    return [f"__label__good {words(t[: recipe.max_chars])}" for t in reference[: recipe.reference_max]]


def select_lines(g_lines: list[str], rows: list[int], r_lines: list[str], recipe: Recipe) -> list[str]:
    """fastText lines of a model trained on the gold lines `rows` (indices into `g_lines`):
    those lines, the bad ones among them again `bad_repeat - 1` times, then the reference lines."""
    chosen = [g_lines[i] for i in rows]
    again = [x for x in chosen if x.startswith("__label__bad ")] * (recipe.bad_repeat - 1)
    return chosen + again + r_lines


def training_lines(gold_rows: list[dict], reference: list[str], recipe: Recipe) -> list[str]:
    """fastText lines: gold lines in file order, the bad ones repeated, then reference lines."""
    g = gold_lines(gold_rows, recipe)
    return select_lines(g, list(range(len(g))), reference_lines(reference, recipe), recipe)


def train(lines: list[str], recipe: Recipe, quantize: bool = True, out: Path | None = None):
    """The recipe's model of `lines`, quantised unless told not to; with `out` (quantised
    only) the model file is also written there, byte for byte as built."""
    fd, fn = tempfile.mkstemp(suffix=".txt", prefix="shikomi-quality-model-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        kw = dict(
            epoch=recipe.epoch,
            lr=recipe.lr,
            dim=recipe.dim,
            wordNgrams=recipe.word_ngrams,
            bucket=recipe.bucket,
            minCount=recipe.min_count,
            thread=1,
            seed=recipe.seed,
            verbose=0,
        )
        if not quantize:
            return train_supervised(fn, **kw)
        q = dict(cutoff=recipe.cutoff, dsub=recipe.dsub, qnorm=False, retrain=False, thread=1)
        return train_quantized(fn, q, out=None if out is None else str(out), **kw)
    finally:
        os.unlink(fn)


def p_good(model, text: str, max_chars: int) -> float:
    labels, probs = model.predict(words(text[:max_chars]), k=2)
    return float(dict(zip(labels, probs)).get("__label__good", 0.0))


def load_data(data: Path, recipe: Recipe) -> tuple[list[dict], list[str]]:
    gold = _jsonl(data / recipe.gold)
    ref = [r["text"] for r in _jsonl(data / recipe.reference)]
    return gold, ref


def build_model(data: Path, out: Path, recipe: Recipe | None = None) -> str:
    """Train on the training split and write the quantised model; returns its sha256."""
    recipe = recipe or load_recipe()
    gold, ref = load_data(data, recipe)
    train_rows, _ = split_gold(gold, recipe)
    out.parent.mkdir(parents=True, exist_ok=True)
    train(training_lines(train_rows, ref, recipe), recipe, out=out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _rules_reason(texts: list[str]) -> list[str | None]:
    """The default profile's reject reason for each text, without the classifier."""
    from shikomi.config import load_config
    from shikomi.filters.classifier import CLASSIFIER_RULE
    from shikomi.filters.labelled import run_chain
    from shikomi.filters.profile import build_rules

    cfg = load_config(None, {"clean": {"rules": {CLASSIFIER_RULE: False}}})
    rules, _ = build_rules(cfg.clean)
    return [run_chain(rules, t)[0] for t in texts]


def _classifier_inputs(texts: list[str]) -> list[str]:
    """Each text as the default profile's classifier sees it: after the transforms that
    run before it (normalisation, header/footer lines)."""
    from datatrove.data import Document

    from shikomi.config import load_config
    from shikomi.filters.classifier import CLASSIFIER_RULE
    from shikomi.filters.profile import build_rules

    rules, _ = build_rules(load_config(None).clean)
    names = [r.rule for r in rules]
    pre = [r for r in rules[: names.index(CLASSIFIER_RULE)] if r.kind == "transform"]
    out = []
    for t in texts:
        doc = Document(text=t, id="x")
        for r in pre:
            r.ensure_ready()
            r.check(doc)
        out.append(doc.text)
    return out


def _rates(docs: list[dict], t: float) -> tuple[float, float]:
    """(good kept, bad dropped) of the chain with the classifier at threshold t."""
    good = [d for d in docs if d["label"] == "good"]
    bad = [d for d in docs if d["label"] == "bad"]
    kept = lambda d: d["rules"] is None and d["score"] >= t  # noqa: E731
    return sum(map(kept, good)) / max(len(good), 1), 1 - sum(map(kept, bad)) / max(len(bad), 1)


def cross_validate(data: Path, recipe: Recipe | None = None, log=print) -> dict:
    """Threshold by CV on the training split; held-out and Wikipedia numbers of the
    final model (trained on the whole training split) at that threshold."""
    from shikomi.filters.labelled import group_labelled

    recipe = recipe or load_recipe()
    gold, ref = load_data(data, recipe)
    train_rows, test_rows = split_gold(gold, recipe)
    docs = group_labelled(train_rows, recipe.group)
    for d, reason, x in zip(
        docs, _rules_reason([d["text"] for d in docs]), _classifier_inputs([d["text"] for d in docs])
    ):
        d["rules"], d["input"] = reason, x
    g_lines, r_lines = gold_lines(train_rows, recipe), reference_lines(ref, recipe)
    for f in range(recipe.folds):
        fold_lines = {i for k, d in enumerate(docs) if k % recipe.folds != f for i in d["lines"]}
        model = train(select_lines(g_lines, sorted(fold_lines), r_lines, recipe), recipe)
        for k, d in enumerate(docs):
            if k % recipe.folds == f:
                d["score"] = p_good(model, d["input"], recipe.max_chars)
        log(f"[quality-model] fold {f + 1}/{recipe.folds} scored")
    grid = [round(x * 0.01, 2) for x in range(1, 100)]
    ok = [t for t in grid if _rates(docs, t)[0] >= recipe.target_keep_good]
    threshold = max(ok) if ok else grid[0]
    cv_keep, cv_drop = _rates(docs, threshold)
    cv_rules_only = _rates(docs, 0.0)

    model = train(select_lines(g_lines, list(range(len(g_lines))), r_lines, recipe), recipe)
    test_docs = group_labelled(test_rows, recipe.group)
    texts = [d["text"] for d in test_docs]
    for d, reason, x in zip(test_docs, _rules_reason(texts), _classifier_inputs(texts)):
        d["rules"] = reason
        d["score"] = p_good(model, x, recipe.max_chars)
    ho_keep, ho_drop = _rates(test_docs, threshold)
    ho_rules = _rates(test_docs, 0.0)
    wiki = [r["text"] for r in _jsonl(data / recipe.reference_eval)]
    wiki_docs = [
        {"label": "good", "rules": reason, "score": p_good(model, x, recipe.max_chars)}
        for x, reason in zip(_classifier_inputs(wiki), _rules_reason(wiki))
    ]
    wiki_keep, _ = _rates(wiki_docs, threshold)
    wiki_model_keep = sum(d["score"] >= threshold for d in wiki_docs) / len(wiki_docs)
    n = lambda ds, lab: sum(d["label"] == lab for d in ds)  # noqa: E731
    return {
        "threshold": threshold,
        "cv": {
            "folds": recipe.folds,
            "documents_good": n(docs, "good"),
            "documents_bad": n(docs, "bad"),
            "good_kept": round(cv_keep, 4),
            "bad_dropped": round(cv_drop, 4),
            "rules_only_good_kept": round(cv_rules_only[0], 4),
            "rules_only_bad_dropped": round(cv_rules_only[1], 4),
        },
        "held_out": {
            "lines": len(test_rows),
            "documents_good": n(test_docs, "good"),
            "documents_bad": n(test_docs, "bad"),
            "good_kept": round(ho_keep, 4),
            "bad_dropped": round(ho_drop, 4),
            "rules_only_good_kept": round(ho_rules[0], 4),
            "rules_only_bad_dropped": round(ho_rules[1], 4),
        },
        "wikipedia_paragraphs": {
            "source": recipe.reference_eval,
            "paragraphs": len(wiki_docs),
            "kept_default_profile": round(wiki_keep, 4),
            "kept_by_model": round(wiki_model_keep, 4),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shikomi.filters.quality_model", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="the data folder (gold/quality, ja/)")
    ap.add_argument("--out", default=str(MODEL))
    ap.add_argument("--cv", action="store_true", help="also choose the threshold by CV and write the model card JSON")
    args = ap.parse_args(argv)
    recipe = load_recipe()
    digest = build_model(Path(args.data), Path(args.out), recipe)
    print(f"[quality-model] {args.out}: {Path(args.out).stat().st_size:,} bytes, sha256 {digest}")
    if args.cv:
        res = {
            "model": Path(args.out).name,
            "sha256": digest,
            "recipe": recipe.model_dump(),
            **cross_validate(Path(args.data), recipe),
        }
        CARD.write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(json.dumps({k: res[k] for k in ("threshold", "cv", "held_out", "wikipedia_paragraphs")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
