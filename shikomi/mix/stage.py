"""The mix stage: sources sampled to a token budget at fixed ratios (ja:en:code = 5:4:1).

datatrove, dolma and NeMo Curator mix files or documents; the realised ratio then
drifts with document length and tokenizer. Here the ratio is planned in tokens:

    count_<i>_<name>  (N tasks per input)  read, filter, count tokens of every document
                      (with the tokenizer when one exists, else characters / chars_per_token)
    plan              (1 task)  available tokens per source -> the anchor (the scarce
                      source, used in full), targets, epochs, which documents are taken
                      once more than the whole epochs, and a reserve -> plan.json
    write_<i>_<name>  (N tasks per input)  read again, write each document as many times
                      as the plan says (metadata.epoch = 0, 1, ...; the reserve once with
                      epoch -1) with metadata.source

Sampling is deterministic: documents are ranked by a seeded hash of their id; a source
with surplus takes a prefix of that ranking, one with too little repeats whole epochs
and then takes a prefix for the remainder; a first-fit pass over the rest closes the
gap to the target so the planned tokens land on it (to the smallest document left).
With rehydration a document weighs its tokens times its copies (by the size of its
duplicate cluster). The tokenize stage counts with the real tokenizer and sizes the
other sources from the anchor's real tokens (using the reserve when they fall short).
"""

from __future__ import annotations

import math
import os
from array import array
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.config import Config
from shikomi.core.files import sha256_file
from shikomi.core.jobs import Job, Stage
from shikomi.core.rules import REJECT_KEY, CountIn, reject
from shikomi.core.sampling import first_fit_groups, seeded_hash
from shikomi.core.schemas import MixPlan
from shikomi.core.writers import StageWriter
from shikomi.errors import UserError
from shikomi.mix.sources import (
    has_files,
    reader_for_source,
    resolve_source_path,
    rules_for_source,
    source_label,
    source_path_exists,
)

NOT_SAMPLED = "not_sampled"
RESERVE = "reserve"


def doc_key(seed: int, index: int, doc_id: str) -> int:
    """The seeded rank of a document inside its input (uint64)."""
    return seeded_hash(seed, index, doc_id)


class TokenCounter:
    """Tokens of a document, EOS included: exact with a SentencePiece model, else
    ceil(characters / chars_per_token) + 1."""

    def __init__(self, model: str | None, chars_per_token: float):
        self.model = model
        self.chars_per_token = chars_per_token
        self._sp = None

    def count(self, texts: list[str]) -> list[int]:
        if self.model is None:
            return [math.ceil(len(t) / self.chars_per_token) + 1 for t in texts]
        if self._sp is None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_file=self.model)
        return [len(x) + 1 for x in self._sp.encode(texts, num_threads=1)]


def rehydration_copies(metadata: dict, weights: dict | None) -> int:
    """Copies of a document per epoch: 1, or with rehydration the weight of the size of
    the duplicate cluster it survived (metadata.dup_cluster_size, 1 when absent)."""
    if not weights:
        return 1
    try:
        size = max(1, int(metadata.get("dup_cluster_size") or 1))
    except (TypeError, ValueError):
        size = 1
    w = 1
    for bound, copies in sorted((int(k), v) for k, v in weights.items()):
        if size >= bound:
            w = size if copies == "size" else int(copies)
    return w


class CountTokens(PipelineStep):
    """Writes (key, tokens, chars) of every kept document of this task to
    `<counts_dir>/<rank>.npz`; rejected documents are only counted in."""

    name = "count tokens"
    type = "📊 - STATS"

    def __init__(
        self,
        counts_dir: str,
        index: int,
        seed: int,
        counter: TokenCounter,
        batch: int = 256,
        rehydration: dict | None = None,
    ):
        super().__init__()
        self.counts_dir = counts_dir
        self.index = index
        self.seed = seed
        self.counter = counter
        self.batch = batch
        self.rehydration = rehydration

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # 8 bytes a number per document (a list of Python ints takes about 40)
        keys, tokens, chars, weights = array("Q"), array("q"), array("q"), array("q")
        docs_in = chars_in = 0
        pending: list = []

        def flush():
            if not pending:
                return
            n = self.counter.count([d.text for d in pending])
            for d, t in zip(pending, n):
                keys.append(doc_key(self.seed, self.index, d.id))
                tokens.append(t)
                chars.append(len(d.text))
                weights.append(rehydration_copies(d.metadata, self.rehydration))
                self.stat_update("tokens_counted", value=t)
            pending.clear()

        for doc in data:
            docs_in += 1
            chars_in += len(doc.text)
            if REJECT_KEY not in doc.metadata:
                pending.append(doc)
                if len(pending) >= self.batch:
                    with self.track_time():
                        flush()
        with self.track_time():
            flush()
        out = Path(self.counts_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f"{rank:05d}.tmp.npz"
        np.savez(
            tmp,
            keys=np.frombuffer(keys, dtype=np.uint64),
            tokens=np.frombuffer(tokens, dtype=np.int64),
            chars=np.frombuffer(chars, dtype=np.int64),
            weights=np.frombuffer(weights, dtype=np.int64),
            docs_in=np.int64(docs_in),
            chars_in=np.int64(chars_in),
        )
        os.replace(tmp, out / f"{rank:05d}.npz")
        return
        yield


def select(keys: np.ndarray, tokens: np.ndarray, target: float, max_fill: int = 100_000, reserve: float = 0.0):
    """Which documents of one input to take: (base_epochs, threshold_key, fill_keys,
    expected_units, expected_documents, reserve_key, reserve_units). `tokens` are the
    units one epoch of a document weighs (its tokens times its copies per epoch). A
    document is written base_epochs times, plus once more when its key <= threshold_key
    or is in fill_keys; a document not taken whose key <= reserve_key is written once
    as a reserve (the next ones in key order, `reserve` x target units of them)."""
    avail = int(tokens.sum())
    if avail <= 0 or target <= 0:
        return 0, None, np.zeros(0, np.uint64), 0, 0, None, 0
    base = int(target // avail)
    rem = target - base * avail
    order = np.argsort(keys, kind="stable")
    sk, st = keys[order], tokens[order]
    # a prefix of the key order, then first-fit over the rest in key order; equal
    # keys (the same id) go together
    taken, k, fill_at = first_fit_groups(st, rem, sk, max_fill)
    threshold = int(sk[k - 1]) if k > 0 else None
    acc = int(st[taken].sum())
    fill = [int(sk[j]) for j in fill_at]
    fill_keys = np.unique(np.asarray(fill, dtype=np.uint64))
    expected_tokens = base * avail + acc
    expected_docs = base * int(sk.size) + int(taken.sum())
    reserve_key, reserve_units = None, 0
    if base == 0 and reserve > 0:
        rest = np.nonzero(~taken)[0]
        if rest.size:
            cum = np.cumsum(st[rest])
            n = min(int(np.searchsorted(cum, reserve * target, side="left")) + 1, rest.size)
            reserve_key = int(sk[rest[n - 1]])
            # equal keys go together: every not-taken document up to that key
            inres = rest[sk[rest] <= reserve_key]
            reserve_units = int(st[inres].sum())
    return base, threshold, fill_keys, int(expected_tokens), int(expected_docs), reserve_key, reserve_units


class PlanMix(PipelineStep):
    """One task: reads every input's counts, writes plan.json and the selection files."""

    name = "plan mix"
    type = "🧮 - PLAN"

    def __init__(
        self,
        out_dir: str,
        inputs: list[dict],
        ratios: dict[str, float],
        total_tokens: int | None,
        counted_with: dict,
        max_epochs: float,
        seed: int,
        tasks: int,
        anchor: str | None = None,
        reserve: float = 0.0,
        rehydration: dict | None = None,
    ):
        super().__init__()
        self.out_dir = out_dir
        self.inputs = inputs
        self.ratios = ratios
        self.total_tokens = total_tokens
        self.counted_with = counted_with
        self.max_epochs = max_epochs
        self.seed = seed
        self.tasks = tasks
        self.anchor = anchor
        self.reserve = reserve
        self.rehydration = rehydration

    def _load(self, i: int) -> dict:
        d = Path(self.out_dir) / "_counts" / f"{i:02d}"
        keys, tokens, chars, weights = [], [], [], []
        docs_in = chars_in = 0
        for r in range(self.tasks):
            f = d / f"{r:05d}.npz"
            if not f.exists():
                raise RuntimeError(f"missing token counts {f}: rerun the mix stage")
            z = np.load(f)
            keys.append(z["keys"])
            tokens.append(z["tokens"])
            chars.append(z["chars"])
            weights.append(z["weights"] if "weights" in z.files else np.ones(z["tokens"].size, np.int64))
            docs_in += int(z["docs_in"])
            chars_in += int(z["chars_in"])
        return {
            "keys": np.concatenate(keys),
            "tokens": np.concatenate(tokens),
            "chars": np.concatenate(chars),
            "weights": np.concatenate(weights),
            "docs_in": docs_in,
            "chars_in": chars_in,
        }

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if rank != 0:
            return
        plan = make_plan(
            self.inputs,
            [self._load(i) for i in range(len(self.inputs))],
            self.ratios,
            self.total_tokens,
            self.max_epochs,
            anchor=self.anchor,
            reserve=self.reserve,
        )
        plan = {"seed": self.seed, "counted_with": self.counted_with, **plan}
        if self.rehydration:
            plan["rehydration"] = {str(k): v for k, v in self.rehydration.items()}
        sel_dir = Path(self.out_dir) / "_plan"
        sel_dir.mkdir(parents=True, exist_ok=True)
        for inp in plan.pop("_selections"):
            tmp = sel_dir / f"{inp['index']:02d}.tmp.npz"
            np.savez(
                tmp,
                base=np.int64(inp["base"]),
                threshold=np.uint64(inp["threshold"] or 0),
                has_threshold=np.bool_(inp["threshold"] is not None),
                fill=inp["fill"],
                reserve=np.uint64(inp["reserve"] or 0),
                has_reserve=np.bool_(inp["reserve"] is not None),
            )
            os.replace(tmp, sel_dir / f"{inp['index']:02d}.npz")
        MixPlan.parse(plan, Path(self.out_dir) / MixPlan.FILENAME).write(self.out_dir)
        for w in plan["warnings"]:
            self.stat_update("warnings")
            from loguru import logger

            logger.warning(w)
        return
        yield


def choose_anchor(avail: dict[str, int], norm: dict[str, float], anchor: str | None) -> str:
    """The source that sets the budget: the configured one, else the one with the
    fewest available tokens for its share (ja in the seeds' recipes)."""
    active = [g for g in norm if norm[g] > 0]
    if anchor is not None:
        if anchor not in active:
            raise UserError(f"mix.anchor '{anchor}' is not a source with a ratio ({', '.join(active)})")
        return anchor
    return min(active, key=lambda g: (avail[g] / norm[g], g))


def make_plan(
    inputs: list[dict],
    counts: list[dict],
    ratios: dict[str, float],
    total_tokens: int | None,
    max_epochs: float,
    anchor: str | None = None,
    reserve: float = 0.0,
) -> dict:
    """The plan from per-input counts (pure: unit-tested on its own).

    The anchor (the scarce source) is used in full, once, and the others are sized from
    it; with `total_tokens` every source gets its share of the total, repeating or
    subsampling (the anchor only shrinks when the total asks for fewer tokens than it
    has). A document weighs its tokens times its rehydration copies (`weights`)."""
    norm = {k: v / sum(ratios.values()) for k, v in ratios.items()}
    groups: dict[str, list[int]] = {}
    for i, inp in enumerate(inputs):
        groups.setdefault(inp["name"], []).append(i)

    def units(c: dict) -> np.ndarray:
        w = c.get("weights")
        return c["tokens"] * w if w is not None else c["tokens"]

    avail = {g: sum(int(units(counts[i]).sum()) for i in idx) for g, idx in groups.items()}
    unique = {g: sum(int(counts[i]["tokens"].sum()) for i in idx) for g, idx in groups.items()}
    active = [g for g in norm if norm[g] > 0]
    for g in active:
        if avail.get(g, 0) <= 0:
            raise UserError(f"mix source '{g}' has no documents (ratio {ratios[g]}): check its inputs")
    anchor_g = choose_anchor(avail, norm, anchor)
    if total_tokens is None:
        total = avail[anchor_g] / norm[anchor_g]
    else:
        total = float(total_tokens)
    warnings: list[str] = []
    notes: list[str] = []
    out_sources: dict[str, dict] = {}
    selections = []
    for g in groups:
        r = norm.get(g, 0.0)
        target_g = r * total
        ins = []
        exp_tokens = exp_docs = 0
        repeat_tokens = rehydration_tokens = reserve_tokens = 0
        carry = 0.0  # what an input with coarse documents could not place goes to the next
        # coarse inputs (long documents) first: the finest one absorbs the remainder
        by_grain = sorted(
            groups[g], key=lambda i: (-(counts[i]["tokens"].mean() if counts[i]["tokens"].size else 0), i)
        )
        for i in by_grain:
            c = counts[i]
            u = units(c)
            a = int(u.sum())
            target = target_g * (a / avail[g]) + carry if avail[g] else 0.0
            res = reserve if g != anchor_g else 0.0
            base, thr, fill, et, ed, rkey, runits = select(c["keys"], u, target, reserve=res)
            carry = target - et
            selections.append({"index": i, "base": base, "threshold": thr, "fill": fill, "reserve": rkey})
            # copies per document: (base + extra) x weight; repeats are the copies beyond the first
            w = c.get("weights")
            w = w if w is not None else np.ones(c["tokens"].size, np.int64)
            extra = np.zeros(c["tokens"].size, np.int64)
            if thr is not None:
                extra |= (c["keys"] <= np.uint64(thr)).astype(np.int64)
            if fill.size:
                extra |= np.isin(c["keys"], fill).astype(np.int64)
            ep = base + extra
            copies = ep * w
            doc_copies = int(copies.sum())
            used_unique = int(c["tokens"][copies > 0].sum())
            repeat_tokens += et - used_unique
            rehydration_tokens += int((ep * (w - 1) * c["tokens"]).sum())
            reserve_docs = 0
            if rkey is not None:
                inres = (copies == 0) & (c["keys"] <= np.uint64(rkey))
                reserve_docs = int(inres.sum())
                runits = int(c["tokens"][inres].sum())
                reserve_tokens += runits
            exp_tokens += et
            exp_docs += doc_copies
            ins.append(
                {
                    "index": i,
                    "label": inputs[i]["label"],
                    "path": inputs[i]["path"],
                    "format": inputs[i]["format"],
                    "documents_read": c["docs_in"],
                    "chars_read": c["chars_in"],
                    "available_documents": int(c["tokens"].size),
                    "available_chars": int(c["chars"].sum()),
                    "available_tokens": int(c["tokens"].sum()),
                    "target_tokens": round(target, 1),
                    "base_epochs": base,
                    "epochs": round(et / a, 4) if a else 0.0,
                    "expected_tokens": et,
                    "expected_documents": doc_copies,
                    "reserve_documents": reserve_docs,
                    "reserve_tokens": int(runits) if rkey is not None else 0,
                }
            )
        ins.sort(key=lambda x: x["index"])
        epochs = exp_tokens / avail[g] if avail[g] else 0.0
        if epochs > max_epochs:
            warnings.append(
                f"mix source '{g}' is repeated {epochs:.2f} times (> {max_epochs:g} epochs: repeated data loses "
                f"value, Muennighoff et al. 2023); add data or lower its ratio"
            )
        if g != anchor_g and r > 0 and avail[g] < r * avail[anchor_g] / norm[anchor_g]:
            warnings.append(
                f"mix source '{g}' is too small for its share: {avail[g]:,} tokens where its share of the "
                f"anchor '{anchor_g}' needs {r * avail[anchor_g] / norm[anchor_g]:,.0f}; it is repeated"
            )
        elif epochs > 1.0 + 1e-9:
            notes.append(f"{g} repeated {epochs:.2f} times")
        out_sources[g] = {
            "weight": round(r, 6),
            "available_tokens": unique[g],
            "available_documents": sum(x["available_documents"] for x in ins),
            "target_tokens": round(target_g, 1),
            "expected_tokens": exp_tokens,
            "expected_documents": exp_docs,
            "epochs": round(epochs, 4),
            "inputs": ins,
            "repeat_tokens": repeat_tokens,
            "rehydration_tokens": rehydration_tokens,
            "reserve_tokens": reserve_tokens,
            "anchor": g == anchor_g,
        }
    total_exp = sum(s["expected_tokens"] for s in out_sources.values())
    for s in out_sources.values():
        s["expected_share"] = round(s["expected_tokens"] / total_exp, 6) if total_exp else 0.0
    if total_tokens is not None and notes:
        warnings.append(f"total_tokens={total_tokens:,} is more than the data gives once: " + ", ".join(notes))
    return {
        "ratios": {g: round(v, 6) for g, v in norm.items()},
        "total_tokens_target": round(total, 1),
        "total_tokens_expected": total_exp,
        "sources": out_sources,
        "warnings": warnings,
        "anchor": anchor_g,
        "max_epochs": max_epochs,
        "_selections": selections,
    }


def in_sorted(arr: np.ndarray, key: int) -> bool:
    """Whether `key` is in the sorted uint64 array `arr`."""
    i = int(np.searchsorted(arr, np.uint64(key)))
    return i < arr.size and int(arr[i]) == key


class SampleCopies(PipelineStep):
    """Repeats each document as many times as the plan says (metadata.epoch), times its
    rehydration copies; documents the plan leaves out are marked not_sampled, except
    the reserve, written once with metadata.epoch = -1."""

    name = "sample"
    type = "🎲 - SAMPLER"

    def __init__(self, out_dir: str, index: int, seed: int, rehydration: dict | None = None):
        super().__init__()
        self.out_dir = out_dir
        self.index = index
        self.seed = seed
        self.rehydration = rehydration

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        z = np.load(Path(self.out_dir) / "_plan" / f"{self.index:02d}.npz")
        base = int(z["base"])
        thr = int(z["threshold"]) if bool(z["has_threshold"]) else None
        fill = np.unique(z["fill"].astype(np.uint64))  # sorted: looked up by bisection
        rkey = int(z["reserve"]) if "has_reserve" in z.files and bool(z["has_reserve"]) else None
        for doc in data:
            if REJECT_KEY in doc.metadata:
                yield doc
                continue
            k = doc_key(self.seed, self.index, doc.id)
            copies = base + (1 if ((thr is not None and k <= thr) or in_sorted(fill, k)) else 0)
            copies *= rehydration_copies(doc.metadata, self.rehydration)
            if copies == 0:
                if rkey is not None and k <= rkey:
                    self.stat_update(RESERVE)
                    doc.metadata["epoch"] = -1
                    yield doc
                    continue
                self.stat_update(NOT_SAMPLED)
                yield reject(doc, NOT_SAMPLED)
                continue
            self.stat_update("documents_sampled")
            for e in range(copies):
                self.stat_update("copies")
                d = doc if e == copies - 1 else type(doc)(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
                d.metadata["epoch"] = e
                yield d


def mix_writer(out_dir: str, source: str, index: int, write_unsampled: bool) -> StageWriter:
    """Writes sampled documents to data/<source>/ and rejected ones to rejected/;
    not_sampled documents are counted, and written only with mix.write_unsampled."""
    return StageWriter(
        out_dir,
        f"data/{source}",
        unwritten_rules=() if write_unsampled else (NOT_SAMPLED,),
        output_filename=f"{index:02d}_${{rank}}.parquet",
        make_folder=False,
    )


def _stats_extras(out_dir: str) -> dict:
    plan = MixPlan.read(out_dir, missing_ok=True)
    if plan is None:
        return {}
    ins = [x for s in plan.sources.values() for x in s.inputs]
    return {
        "documents_in": sum(x.documents_read for x in ins),
        "chars_in": sum(x.chars_read for x in ins),
        "tokens_out": plan.total_tokens_expected,
        "tokens_counted_with": plan.counted_with.method,
        "mix": {
            g: {
                "weight": s.weight,
                "epochs": s.epochs,
                "expected_tokens": s.expected_tokens,
                "expected_share": s.expected_share,
                "available_tokens": s.available_tokens,
                "repeat_tokens": s.repeat_tokens or 0,
                "rehydration_tokens": s.rehydration_tokens or 0,
                "reserve_tokens": s.reserve_tokens or 0,
                "anchor": bool(s.anchor),
            }
            for g, s in plan.sources.items()
        },
        "warnings": plan.warnings,
    }


def build(cfg: Config, input_path: str | None = None) -> Stage:
    mc = cfg.mix
    out_dir = str(cfg.stage_dir("mix"))
    tasks = mc.tasks or cfg.executor.tasks
    default_ja = input_path or mc.input
    if input_path and not any(s.name == "ja" for s in mc.sources):
        raise UserError("--input sets the path of the `ja` mix source, but mix.sources has no `ja` entry")

    names = {s.name for s in mc.sources}
    missing = [g for g, r in mc.ratios.items() if r > 0 and g not in names]
    if missing:
        raise UserError(
            f"mix.ratios gives a share to {', '.join(missing)} but mix.sources declares no input for "
            f"{'it' if len(missing) == 1 else 'them'}: add sources (name, path, format) or drop the ratio"
        )
    unknown = sorted(names - set(mc.ratios))
    if unknown:
        raise UserError(
            f"mix.sources names {', '.join(unknown)} without a ratio in mix.ratios (ratios: {', '.join(mc.ratios)})"
        )

    # how tokens are counted
    model = None
    if mc.count_with in ("auto", "tokenizer"):
        cand = mc.tokenizer or str(cfg.stage_dir("tokenizer") / "tokenizer.model")
        if Path(cand).is_file():
            model = cand
        elif mc.count_with == "tokenizer" or mc.tokenizer:
            raise UserError(
                f"mix.count_with=tokenizer but the tokenizer {cand} does not exist "
                f"(train it with `shikomi train-tokenizer`, or use count_with: estimate)"
            )
    if model:
        counted_with = {"method": "tokenizer", "path": model, "sha256": sha256_file(model)}
    else:
        counted_with = {
            "method": "estimate",
            "chars_per_token": {s.name: mc.chars_per_token.get(s.name, mc.default_chars_per_token) for s in mc.sources},
        }

    inputs: list[dict] = []
    count_jobs, write_jobs = [], []
    for i, src in enumerate(mc.sources):
        path = resolve_source_path(src, default_ja if src.name == "ja" else None, str(cfg.run_dir))
        if not source_path_exists(path):
            raise UserError(
                f"mix source '{src.name}': input not found: {path}"
                + (" (run the clean stage first, or set mix.input)" if src.name == "ja" and not src.path else "")
            )
        label = source_label(src, path)
        if not has_files(reader_for_source(src, path)):
            raise UserError(
                f"mix source '{src.name}': no documents in {path}"
                + (" (did the clean stage keep any?)" if src.name == "ja" and not src.path else "")
            )
        inputs.append({"name": src.name, "label": label, "path": path, "format": src.format})
        cpt = mc.chars_per_token.get(src.name, mc.default_chars_per_token)
        counter = TokenCounter(model, cpt)
        rehydration = dict(mc.rehydration.weights) if mc.rehydration.enabled else None
        jn = f"{i:02d}_{src.name}"
        count_jobs.append(
            Job(
                f"count_{jn}",
                [
                    reader_for_source(src, path),
                    CountIn(),
                    *rules_for_source(src),
                    CountTokens(
                        str(Path(out_dir) / "_counts" / f"{i:02d}"), i, cfg.seed, counter, rehydration=rehydration
                    ),
                ],
                tasks=tasks,
            )
        )
        write_jobs.append(
            Job(
                f"write_{jn}",
                [
                    reader_for_source(src, path),
                    *rules_for_source(src),
                    SampleCopies(out_dir, i, cfg.seed, rehydration),
                    mix_writer(out_dir, src.name, i, mc.write_unsampled),
                ],
                tasks=tasks,
            )
        )
    plan_job = Job(
        "plan",
        [
            PlanMix(
                out_dir,
                inputs,
                dict(mc.ratios),
                mc.total_tokens,
                counted_with,
                mc.max_epochs,
                cfg.seed,
                tasks,
                anchor=mc.anchor,
                reserve=mc.reserve,
                rehydration=dict(mc.rehydration.weights) if mc.rehydration.enabled else None,
            )
        ],
        tasks=1,
    )
    return Stage("mix", out_dir, [*count_jobs, plan_job, *write_jobs], extras=_stats_extras)
