"""The tokenize stage: documents to Megatron token shards, one folder per source.

    encode  (N tasks)  SentencePiece-encode each document (EOS appended) into per-task
                       files `_parts/<rank>/<source>.bin/.idx` + `<source>.ids.jsonl`
    merge   (1 task)   per source: hold out a validation split (by unique document id,
                       every repeat with it), shuffle the rest with a seeded hash of
                       (id, epoch), trim sources in surplus so that the real token shares
                       match mix/plan.json, copy the tokens into shards of
                       `shard_tokens` tokens and write manifest.json

Output (`<run_dir>/tokenize/`):

    <source>/train_00000.bin/.idx/.ids.jsonl, <source>/val_00000...
    manifest.json   tokenizer (path, sha256, vocab_size, eos_id), dtype, seed, shards
                    [{path, sha256, idx_sha256, documents, tokens, source, split, ids_path}],
                    per-source planned and realised shares
    rejected/       decoded documents left out: ratio_trim (surplus of the balance) and
                    val_repeat (repeats of a held-out document, never trained on)

The same input, config and seed give byte-identical shards and manifest whatever the
number of tasks; a killed run resumes (encode tasks are redone whole, the merge is
redone from the per-task files).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.config import Config
from shikomi.core.documents import column_batches, input_files
from shikomi.core.files import sha256_file, write_json_atomic
from shikomi.core.jobs import Job, Stage
from shikomi.core.sampling import first_fit, seeded_hash, seeded_hashes
from shikomi.core.schemas import MixPlan, TokenManifest
from shikomi.core.shards import ShardReader, ShardWriter, dtype_for_vocab
from shikomi.core.writers import DocWriter
from shikomi.errors import UserError

PARTS = "_parts"
MERGED = "MERGED"
TRIM = "ratio_trim"
VAL_REPEAT = "val_repeat"


def _safe_source(s) -> str:
    s = str(s or "default").replace("/", "_").replace("\\", "_")
    return s if s and not s.startswith(".") and s not in ("rejected", "logs", PARTS) else f"src_{s}"


def _load_sp(model: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model)


def _dumps(obj) -> str:
    try:
        import orjson

        return orjson.dumps(obj).decode("utf-8")
    except ImportError:  # pragma: no cover
        return json.dumps(obj, ensure_ascii=False)


def _loads(line: str):
    try:
        import orjson

        return orjson.loads(line)
    except ImportError:  # pragma: no cover
        return json.loads(line)


class EncodeToParts(PipelineStep):
    """Reads this task's share of the input files (file i goes to task i mod N) and
    encodes every document into per-source Megatron files under _parts/<rank>/.
    (Named "count in + encode": it is also the stage's count of what comes in.)"""

    name = "count in + encode"
    type = "🔢 - TOKENIZER"

    def __init__(self, out_dir: str, model: str, input_path: str, batch_docs: int = 256):
        super().__init__()
        self.out_dir = out_dir
        self.model = model
        self.input_path = input_path
        self.batch_docs = batch_docs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from itertools import chain

        sp = _load_sp(self.model)
        eos = sp.eos_id()
        dtype = dtype_for_vocab(sp.get_piece_size())
        part_dir = Path(self.out_dir) / PARTS / f"{rank:05d}"
        if part_dir.exists():
            shutil.rmtree(part_dir)  # a killed attempt of this task
        part_dir.mkdir(parents=True)
        writers: dict[str, ShardWriter] = {}
        sidecars: dict[str, object] = {}
        files = input_files(self.input_path)[rank::world_size]
        for ids, texts, sources, epochs in column_batches(files, self.batch_docs):
            self.stat_update("docs_in", value=len(texts))
            self.stat_update("chars_in", value=sum(map(len, texts)))
            with self.track_time():
                encoded = sp.encode(texts, num_threads=1)
            for x in encoded:
                x.append(eos)
            groups: dict[str, list[int]] = {}
            for i, s in enumerate(sources):
                groups.setdefault(_safe_source(s), []).append(i)
            for src, idx in groups.items():
                w = writers.get(src)
                if w is None:
                    w = writers[src] = ShardWriter(part_dir / src, dtype)
                    sidecars[src] = open(part_dir / f"{src}.ids.jsonl.tmp", "w", encoding="utf-8")
                seqs = [encoded[i] for i in idx]
                lengths = [len(x) for x in seqs]
                n_tok = sum(lengths)
                w.add_many(np.fromiter(chain.from_iterable(seqs), dtype=dtype, count=n_tok), lengths)
                sidecars[src].write("".join(_dumps([ids[i], epochs[i], len(texts[i])]) + "\n" for i in idx))
                self.stat_update("tokens_encoded", value=n_tok)
                self.stat_update(f"tokens_encoded/{src}", value=n_tok)
        for src, w in writers.items():
            w.close()
            sidecars[src].close()
            os.replace(part_dir / f"{src}.ids.jsonl.tmp", part_dir / f"{src}.ids.jsonl")
        write_json_atomic(part_dir / "DONE.json", {"sources": sorted(writers)})
        return
        yield


def plan_ratios(plan_path: Path | None) -> dict[str, float]:
    """The mix plan's target ratios (sources with a positive ratio); {} without a plan."""
    if plan_path is None:
        return {}
    plan = MixPlan.read(plan_path.parent, missing_ok=True)
    if plan is None:
        return {}
    return {k: float(v) for k, v in plan.ratios.items() if v > 0}


def _deviation(tokens: dict[str, int], p: dict[str, float]) -> float:
    total = sum(tokens[s] for s in p)
    if total <= 0:
        return float("inf")
    return max(abs(tokens[s] / total - p[s]) / p[s] for s in p)


def balance(
    lengths: dict[str, np.ndarray], planned: dict[str, float], tol: float, max_rounds: int = 8
) -> dict[str, np.ndarray | None]:
    """Masks of the documents (in shuffled order) kept per source so that each source's
    share of the tokens is within `tol` (relative) of the plan; None: keep all.

    The source with the least tokens for its share keeps everything; the others keep a
    first-fit prefix of their target. When a source's documents are too coarse to land
    on its target, the total is lowered to what it reached and the others refit."""
    tokens = {s: int(v.sum()) for s, v in lengths.items()}
    common = [s for s in tokens if s in planned and tokens[s] > 0]
    if len(common) < 2:
        return {s: None for s in lengths}
    psum = sum(planned[s] for s in common)
    p = {s: planned[s] / psum for s in common}
    if _deviation(tokens, p) <= tol:
        return {s: None for s in lengths}
    total = min(tokens[s] / p[s] for s in common)
    best: dict[str, np.ndarray | None] = {s: None for s in lengths}
    best_dev = _deviation(tokens, p)
    for _ in range(max_rounds):
        masks = dict(best)
        for s in common:
            masks[s] = first_fit(lengths[s], p[s] * total)
        got = {s: int(lengths[s][masks[s]].sum()) for s in common}
        if min(got.values()) <= 0:
            break  # documents too coarse for this total: keep the best so far
        dev = _deviation(got, p)
        if dev < best_dev:
            best, best_dev = masks, dev
        if dev <= tol:
            break
        total = min(got[s] / p[s] for s in common)
    return best


class MergeShards(PipelineStep):
    """One task: validation split, shuffle, balance and the final shards + manifest."""

    name = "shard write"
    type = "💽 - WRITER"

    def __init__(self, out_dir: str, model: str, tasks: int, seed: int, tc: dict, plan_path: str | None):
        super().__init__()
        self.out_dir = out_dir
        self.model = model
        self.tasks = tasks
        self.seed = seed
        self.tc = tc
        self.plan_path = plan_path

    # ---------------------------------------------------------------- helpers
    def _h(self, *parts) -> int:
        return seeded_hash(self.seed, *parts)

    def _load_parts(self):
        parts_root = Path(self.out_dir) / PARTS
        per_source: dict[str, list] = {}
        for r in range(self.tasks):
            d = parts_root / f"{r:05d}"
            done = d / "DONE.json"
            if not done.is_file():
                raise RuntimeError(f"{d}: encode task {r} did not finish; rerun the tokenize stage")
            for src in json.loads(done.read_text())["sources"]:
                reader = ShardReader(d / src)
                with open(d / f"{src}.ids.jsonl", encoding="utf-8") as f:
                    meta = [_loads(line) for line in f]
                if len(meta) != len(reader):
                    raise RuntimeError(f"{d / src}: {len(reader)} sequences but {len(meta)} ids")
                per_source.setdefault(src, []).append((reader, meta))
        return per_source

    def _split(self, src: str, parts: list):
        """(arrays, val positions, train positions in shuffled order)."""
        part_no, seq_no, lengths, ids, epochs, chars = [], [], [], [], [], []
        for p, (reader, meta) in enumerate(parts):
            n = len(reader)
            part_no.append(np.full(n, p, dtype=np.int32))
            seq_no.append(np.arange(n, dtype=np.int64))
            lengths.append(reader.lengths.astype(np.int64))
            ids.extend(m[0] for m in meta)
            epochs.extend(int(m[1]) for m in meta)
            chars.extend(int(m[2]) for m in meta)
        part_no = np.concatenate(part_no)
        seq_no = np.concatenate(seq_no)
        lengths = np.concatenate(lengths)
        # validation: unique ids, every repeat goes with it
        first: dict[str, int] = {}
        for i, (d, e) in enumerate(zip(ids, epochs)):
            j = first.get(d)
            if j is None or e < epochs[j]:
                first[d] = i
        uniq = sorted(first)
        n_u = len(uniq)
        n_val = max(self.tc["val_min_docs"], math.ceil(self.tc["val_fraction"] * n_u))
        # capped by val_max_fraction, but a source of 2+ documents always gets one
        n_val = min(n_val, max(int(self.tc["val_max_fraction"] * n_u), 1 if n_u >= 2 and n_val else 0))
        if n_val > 0:
            scored = sorted(uniq, key=lambda d: (self._h("val", src, d), d))
            val_ids = set(scored[:n_val])
            val_pos = np.asarray([first[d] for d in scored[:n_val]], dtype=np.int64)
        else:
            val_ids = set()
            val_pos = np.zeros(0, dtype=np.int64)
        train_pos = np.asarray([i for i, d in enumerate(ids) if d not in val_ids], dtype=np.int64)
        val_set = set(int(x) for x in val_pos)
        repeats = np.asarray([i for i, d in enumerate(ids) if d in val_ids and i not in val_set], dtype=np.int64)
        keys = seeded_hashes(self.seed, ("shuffle", src), ((ids[i], epochs[i]) for i in train_pos))
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        if sk.size > 1 and bool(np.any(sk[1:] == sk[:-1])):
            # equal hashes: order those by (id, epoch) so the order never depends on tasks
            order = np.asarray(
                sorted(range(train_pos.size), key=lambda k: (int(keys[k]), ids[train_pos[k]], epochs[train_pos[k]])),
                dtype=np.int64,
            )
        train_pos = train_pos[order]
        starts = np.concatenate([np.asarray(r.offsets, dtype=np.int64) // r.dtype.itemsize for r, _ in parts])
        arrays = {
            "part": part_no,
            "seq": seq_no,
            "start": starts,
            "len": lengths,
            "ids": ids,
            "epochs": epochs,
            "chars": np.asarray(chars, dtype=np.int64),
            "val_repeats": repeats,
        }
        return arrays, val_pos, train_pos

    def _write(self, src: str, split: str, parts: list, arr: dict, pos: np.ndarray, dtype) -> list[dict]:
        """Shards of `shard_tokens` tokens (a shard closes after the document that
        reaches it), tokens copied from the per-task files in the order of `pos`."""
        out = Path(self.out_dir)
        (out / src).mkdir(parents=True, exist_ok=True)
        tokens = [r.tokens.view(np.ndarray) if isinstance(r.tokens, np.memmap) else r.tokens for r, _ in parts]
        lens = arr["len"][pos]
        cum = np.cumsum(lens)
        bounds, a, base = [], 0, 0
        while a < pos.size:
            b = int(np.searchsorted(cum, base + self.tc["shard_tokens"], side="left"))
            b = min(b, pos.size - 1) + 1
            bounds.append((a, b))
            base = int(cum[b - 1])
            a = b
        shards = []
        for n, (a, b) in enumerate(bounds):
            rel = f"{src}/{split}_{n:05d}"
            sel = pos[a:b]
            w = ShardWriter(out / rel, dtype)
            chunks = [tokens[arr["part"][k]][arr["start"][k] : arr["start"][k] + arr["len"][k]] for k in sel]
            w.add_many(np.concatenate(chunks) if chunks else np.zeros(0, dtype), arr["len"][sel])
            w.close()
            with open(out / f"{rel}.ids.jsonl.tmp", "w", encoding="utf-8") as f:
                f.write("".join(_dumps(arr["ids"][k]) + "\n" for k in sel))
            os.replace(out / f"{rel}.ids.jsonl.tmp", out / f"{rel}.ids.jsonl")
            self.stat_update("docs_out", value=int(sel.size))
            self.stat_update("chars_out", value=int(arr["chars"][sel].sum()))
            self.stat_update("tokens_out", value=w.tokens)
            shards.append(
                {
                    "path": rel,
                    "sha256": sha256_file(out / f"{rel}.bin"),
                    "idx_sha256": sha256_file(out / f"{rel}.idx"),
                    "documents": w.documents,
                    "tokens": w.tokens,
                    "source": src,
                    "split": split,
                    "ids_path": f"{rel}.ids.jsonl",
                }
            )
        return shards

    # ---------------------------------------------------------------- run
    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if rank != 0:
            return
        out = Path(self.out_dir)
        parts_root = out / PARTS
        if (out / "manifest.json").is_file() and (parts_root / MERGED).is_file():
            self._cleanup(parts_root)
            return
        sp = _load_sp(self.model)
        dtype = dtype_for_vocab(sp.get_piece_size())
        per_source = self._load_parts()
        if not per_source:
            raise UserError(f"tokenize: no documents in the input of {out}")
        for src in per_source:
            if (out / src).exists():
                shutil.rmtree(out / src)  # an interrupted merge
        if (out / "rejected").exists():
            shutil.rmtree(out / "rejected")

        splits = {src: self._split(src, per_source[src]) for src in sorted(per_source)}
        planned = plan_ratios(Path(self.plan_path)) if self.plan_path else {}
        lengths = {src: a["len"][tp] for src, (a, _, tp) in splits.items()}
        masks = (
            balance(lengths, planned, self.tc["balance_tolerance"])
            if self.tc["balance"]
            else {s: None for s in lengths}
        )

        manifest_shards: list[dict] = []
        summary: dict[str, dict] = {}
        rejected = DocWriter(str(out / "rejected"))
        with rejected:
            for src, (arr, val_pos, train_pos) in splits.items():
                trimmed = np.zeros(0, dtype=np.int64)
                keep = masks.get(src)
                if keep is not None:
                    trimmed = train_pos[~keep]
                    train_pos = train_pos[keep]
                parts = per_source[src]
                manifest_shards += self._write(src, "train", parts, arr, train_pos, dtype)
                manifest_shards += self._write(src, "val", parts, arr, val_pos, dtype)
                # repeats of held-out documents must not be trained on; trimmed documents
                # are the surplus of the balance: both go to rejected/, decoded
                for reason, positions in ((VAL_REPEAT, arr["val_repeats"]), (TRIM, trimmed)):
                    for i in positions:
                        toks = parts[int(arr["part"][i])][0][int(arr["seq"][i])]
                        text = sp.decode([int(t) for t in toks[:-1]])
                        doc = Document(
                            text=text,
                            id=arr["ids"][i],
                            metadata={
                                "source": src,
                                "epoch": arr["epochs"][i],
                                "tokens": int(arr["len"][i]),
                                "reject_reason": reason,
                            },
                        )
                        rejected.write(doc, 0)
                        self.stat_update(f"dropped/{reason}")
                        self.stat_update(f"dropped_chars/{reason}", value=len(text))
                summary[src] = {
                    "train_documents": int(train_pos.size),
                    "train_tokens": int(arr["len"][train_pos].sum()),
                    "val_documents": int(val_pos.size),
                    "val_tokens": int(arr["len"][val_pos].sum()),
                    "trimmed_documents": int(trimmed.size),
                    "trimmed_tokens": int(arr["len"][trimmed].sum()),
                    "val_repeats_dropped": int(arr["val_repeats"].size),
                }
        total_train = sum(s["train_tokens"] for s in summary.values())
        psum = sum(planned.get(s, 0.0) for s in summary)
        for src, s in summary.items():
            s["realised_share"] = round(s["train_tokens"] / total_train, 6) if total_train else 0.0
            if psum and src in planned:
                s["planned_share"] = round(planned[src] / psum, 6)
                s["deviation"] = round(abs(s["realised_share"] - s["planned_share"]) / s["planned_share"], 6)

        model = Path(self.model)
        manifest = {
            "tokenizer": {
                "path": os.path.relpath(model.resolve(), out.resolve()),
                "sha256": sha256_file(model),
                "vocab_size": sp.get_piece_size(),
                "eos_id": sp.eos_id(),
            },
            "dtype": np.dtype(dtype).name,
            "seed": self.seed,
            "shards": manifest_shards,
            "sources": summary,
            "balance": {
                "enabled": bool(self.tc["balance"]),
                "tolerance": self.tc["balance_tolerance"],
                "trimmed": any(m is not None for m in masks.values()),
                "plan": os.path.relpath(Path(self.plan_path).resolve(), out.resolve())
                if self.plan_path and Path(self.plan_path).is_file()
                else None,
            },
        }
        TokenManifest.parse(manifest, out / TokenManifest.FILENAME).write(out)
        (parts_root / MERGED).write_text("ok\n")
        self._cleanup(parts_root)
        return
        yield

    def _cleanup(self, parts_root: Path) -> None:
        if not self.tc["keep_parts"] and parts_root.exists():
            shutil.rmtree(parts_root)


def _extras(out_dir: str) -> dict:
    m = TokenManifest.read(out_dir, missing_ok=True)
    if m is None:
        return {}
    return {
        "tokens_out": sum(s.tokens for s in m.shards),
        "dtype": m.dtype,
        "sources": {k: v.model_dump(exclude_unset=True) for k, v in (m.sources or {}).items()},
        "shards": len(m.shards),
    }


def build(cfg: Config, input_path: str | None = None) -> Stage:
    tc = cfg.tokenize
    src = input_path or tc.input
    if not src:
        raise UserError("tokenize: no input (pass --input or set tokenize.input)")
    if not Path(src).exists():
        raise UserError(f"tokenize: input not found: {src} (run the mix stage first, or pass --input)")
    model = tc.tokenizer or str(cfg.stage_dir("tokenizer") / "tokenizer.model")
    if not Path(model).is_file():
        raise UserError(
            f"tokenize: tokenizer not found: {model} (run `shikomi train-tokenizer`, or set tokenize.tokenizer)"
        )
    out_dir = str(cfg.stage_dir("tokenize"))
    tasks = tc.tasks or cfg.executor.tasks
    plan = Path(src) / "plan.json"
    if not input_files(src):
        raise UserError(f"tokenize: no documents in {src}")
    encode = Job("encode", [EncodeToParts(out_dir, model, src, tc.batch_docs)], tasks=tasks)
    merge = Job(
        "merge",
        [MergeShards(out_dir, model, tasks, cfg.seed, tc.model_dump(), str(plan) if plan.is_file() else None)],
        tasks=1,
    )
    return Stage("tokenize", out_dir, [encode, merge], extras=_extras)
