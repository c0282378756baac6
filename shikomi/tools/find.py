"""`shikomi find TEXT RUN_DIR` and `shikomi batch STEP RUN_DIR`.

find: where a text occurs in the final token shards. Every sequence is decoded with
the run's SentencePiece model and searched for the exact substring; `--ngram` also
lists the documents that share most of the query's character n-grams. For each hit:
source, shard, sequence, document id, and the training steps whose global batch
held (part of) the document, from the trainer's deterministic sample order
(`shikomi.train.data`).

batch: the documents of one training step's global batch (spike forensics).

The train settings come from `<run_dir>/train/config.yaml` (the resolved config the
trainer ran with) when it exists, else from `--config` / the defaults.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from shikomi.core.schemas import MetricsLog
from shikomi.errors import UserError
from shikomi.pipeline.registry import FOLDERS
from shikomi.tools.inspect import TokenFolder, pipe_safe

# --------------------------------------------------------------------------- run folder


def token_dir_of(run_dir: str | Path) -> Path:
    p = Path(run_dir)
    if not p.exists():
        raise UserError(f"{p}: no such run folder")
    if (p / "manifest.json").is_file():
        return p
    if (p / "tokenize" / "manifest.json").is_file():
        return p / "tokenize"
    if p.is_dir() and any((p / s).is_dir() for s in FOLDERS if s != "tokenize"):
        raise UserError(
            f"{p}: the run has no token folder yet ({p}/tokenize/manifest.json); run `shikomi tokenize` first"
        )
    raise UserError(f"{p}: not a run folder or token folder (expected {p}/tokenize/manifest.json)")


def run_dir_of(token_dir: Path) -> Path:
    return token_dir.parent


def train_settings(run_dir: Path, cfg):
    """(the full config, where it came from): the trainer's resolved config.yaml
    when the run was trained, else the given config."""
    from shikomi.config import load_config

    resolved = run_dir / "train" / "config.yaml"
    if resolved.is_file():
        try:
            return load_config(resolved), str(resolved)
        except UserError:
            pass
    if cfg is None:
        cfg = load_config(None)
    return cfg, (cfg.source_path or "default config")


def trained_steps(run_dir: Path, full_cfg) -> tuple[int, str]:
    """Number of steps to search: report.find.max_steps, else the last logged step + 1,
    else train.max_steps (planned)."""
    if full_cfg.report.find.max_steps is not None:
        return full_cfg.report.find.max_steps, "report.find.max_steps"
    last = MetricsLog(run_dir / "train").last()
    if last is not None:
        return last.step + 1, "train/metrics.jsonl"
    return int(full_cfg.train.max_steps), "train.max_steps (not trained yet)"


# --------------------------------------------------------------------------- steps of a document


class StepIndex:
    """Which training steps read a given (shard, sequence), for steps [0, n_steps)."""

    def __init__(self, token_dir: Path, train_cfg, n_steps: int):
        from shikomi.train.data import TokenData, seq_len_at, tokens_before

        self.data = TokenData(token_dir, train_cfg.seed, train_cfg.shuffle_block_docs)
        self.tc = train_cfg
        self.n_steps = n_steps
        self._seq_len_at = seq_len_at
        self._tokens_before = tokens_before
        self.shard_index = {s.rel: i for i, s in enumerate(self.data.shards)}
        self.end_pos = tokens_before(train_cfg, n_steps) + 1 if n_steps > 0 else 0

    def _step_of_pos(self, pos: int) -> int:
        """The last step s with tokens_before(s) <= pos (binary search; tokens_before grows)."""
        lo, hi = 0, self.n_steps
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._tokens_before(self.tc, mid) <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def steps_of(self, shard: str, seq: int) -> list[dict]:
        if self.n_steps <= 0 or shard not in self.shard_index:
            return []
        si = self.shard_index[shard]
        if self.data.shards[si].split != "train":
            return []
        doc = self.data.doc_of(si, seq)
        if doc is None:
            return []
        E = self.data.epoch_tokens
        candidates: set[int] = set()
        epoch = 0
        while epoch * E < self.end_pos:
            a = epoch * E + self.data.doc_start(doc, epoch)
            b = a + self.data.doc_length(doc)
            if a < self.end_pos:
                # a window of step s reads [T(s) + i·L, T(s) + (i+1)·L + 1): its last token can be the
                # first token of the next step's range, hence a - 1
                first = self._step_of_pos(max(0, a - 1))
                last = self._step_of_pos(b - 1)
                candidates.update(range(first, min(last, self.n_steps - 1) + 1))
            epoch += 1
        out = []
        for s in sorted(candidates):
            pieces = [
                {"sample": d["sample"], "offset": d["offset"], "tokens": d["tokens"]}
                for d in self.data.documents(self.tc, s)
                if d["shard"] == shard and d["sequence"] == seq
            ]
            if pieces:
                out.append({"step": s, "samples": sorted({p["sample"] for p in pieces}), "pieces": pieces})
        return out


# --------------------------------------------------------------------------- search


def ngrams(text: str, n: int) -> set[str]:
    if len(text) < n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def search(tf: TokenFolder, text: str, ngram: bool, n: int, min_sim: float, top_k: int):
    """(exact hits, similar hits): exact hits are (shard dict, sequence, doc id,
    character offsets); similar hits (containment, shard, sequence, doc id)."""
    exact = []
    similar = []
    q = ngrams(text, n) if ngram else set()
    for shard, _reader, seq, decoded in tf.iter_decoded():
        if text in decoded:
            offs = []
            i = decoded.find(text)
            while i >= 0 and len(offs) < 20:
                offs.append(i)
                i = decoded.find(text, i + 1)
            exact.append((shard, seq, tf.doc_id(shard, seq), offs, decoded))
        elif q:
            g = ngrams(decoded, n)
            sim = len(q & g) / len(q)
            if sim >= min_sim:
                similar.append((sim, shard, seq, tf.doc_id(shard, seq), decoded))
    similar.sort(key=lambda x: (-x[0], x[1]["path"], x[2]))
    return exact, similar[:top_k]


def _snippet(text: str, at: int, width: int, qlen: int) -> str:
    a = max(0, at - width)
    b = min(len(text), at + qlen + width)
    return ("…" if a > 0 else "") + text[a:b].replace("\n", " ") + ("…" if b < len(text) else "")


def _steps_str(steps: list[dict], limit: int = 20) -> str:
    if not steps:
        return "none"
    parts = [f"{s['step']} (sample {', '.join(map(str, s['samples']))})" for s in steps[:limit]]
    if len(steps) > limit:
        parts.append(f"… {len(steps) - limit} more")
    return ", ".join(parts)


@pipe_safe
def main_find(args, cfg=None) -> int:
    text = args.text
    if not text:
        raise UserError("find: the text to search is empty")
    token_dir = token_dir_of(args.run_dir)
    run_dir = run_dir_of(token_dir)
    full_cfg, cfg_from = train_settings(run_dir, cfg)
    fc = full_cfg.report.find
    if cfg is not None:  # --config / --set values for find win over the trained run's copy
        fc = cfg.report.find
    tf = TokenFolder(token_dir)
    exact, similar = search(
        tf, text, bool(getattr(args, "ngram", False)), fc.ngram_n, fc.ngram_min_similarity, fc.top_k
    )
    n_steps, steps_from = trained_steps(run_dir, full_cfg)
    index = None
    if exact or similar:
        try:
            index = StepIndex(token_dir, full_cfg.train, n_steps)
        except UserError:
            index = None

    def steps(shard, seq):
        return index.steps_of(shard["path"], seq) if index is not None else []

    def with_text(shard, seq, steps_):
        """The steps whose windows hold the whole query (not only some of the document)."""
        reader = tf.reader(shard)
        toks = reader[seq]
        hit = []
        for st in steps_:
            samples = sorted(
                {p["sample"] for p in st["pieces"] if text in tf.decode(toks[p["offset"] : p["offset"] + p["tokens"]])}
            )
            if samples:
                hit.append({"step": st["step"], "samples": samples})
        return hit

    results = []
    for shard, seq, did, offs, decoded in exact:
        st = steps(shard, seq)
        results.append(
            {
                "match": "exact",
                "id": did,
                "source": shard.get("source"),
                "split": shard.get("split"),
                "shard": shard["path"],
                "sequence": seq,
                "char_offsets": offs,
                "steps": st,
                "text_steps": with_text(shard, seq, st),
                "snippet": _snippet(decoded, offs[0], 40, len(text)),
            }
        )
    for sim, shard, seq, did, decoded in similar:
        results.append(
            {
                "match": "ngram",
                "similarity": round(sim, 4),
                "id": did,
                "source": shard.get("source"),
                "split": shard.get("split"),
                "shard": shard["path"],
                "sequence": seq,
                "steps": steps(shard, seq),
                "snippet": decoded[:120].replace("\n", " "),
            }
        )
    head = {
        "type": "summary",
        "token_dir": str(token_dir),
        "query": text,
        "exact": len(exact),
        "similar": len(similar),
        "steps_searched": n_steps,
        "steps_from": steps_from,
        "train_config": cfg_from,
        "seed": full_cfg.train.seed,
    }
    out = sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(head, ensure_ascii=False) + "\n")
        for r in results:
            out.write(json.dumps({"type": "hit", **r}, ensure_ascii=False) + "\n")
        return 0 if results else 1
    out.write(
        f"{token_dir}: {len(exact)} exact match(es)"
        + (f", {len(similar)} similar" if getattr(args, "ngram", False) else "")
        + f"; steps 0..{n_steps - 1} searched ({steps_from}; train settings from {cfg_from})\n"
    )
    for r in results:
        tag = "exact" if r["match"] == "exact" else f"ngram {r['similarity']:.2f}"
        out.write(f"\n[{tag}] id {r['id']}  source {r['source']}  split {r['split']}\n")
        out.write(
            f"  shard {r['shard']}  sequence {r['sequence']}"
            + (f"  chars {', '.join(map(str, r['char_offsets']))}" if r.get("char_offsets") else "")
            + "\n"
        )
        if r["split"] == "val":
            out.write("  steps: none (validation shard, never trained on)\n")
        else:
            out.write(f"  document in steps: {_steps_str(r['steps'])}\n")
            if "text_steps" in r:
                out.write(f"  text in steps:     {_steps_str(r['text_steps'])}\n")
        out.write(f"  {r['snippet']}\n")
    if not results:
        out.write("not found\n")
    return 0 if results else 1


@pipe_safe
def main_batch(args, cfg=None) -> int:
    from shikomi.train.data import TokenData, seq_len_at

    step = int(args.step)
    if step < 0:
        raise UserError(f"batch: step must be 0 or more, got {step}")
    token_dir = token_dir_of(args.run_dir)
    run_dir = run_dir_of(token_dir)
    full_cfg, cfg_from = train_settings(run_dir, cfg)
    tc = full_cfg.train
    data = TokenData(token_dir, tc.seed, tc.shuffle_block_docs)
    docs = data.documents(tc, step)
    n_steps, steps_from = trained_steps(run_dir, full_cfg)
    tf = TokenFolder(token_dir)
    by_path = {s["path"]: s for s in tf.shards}
    readers: dict = {}

    def preview(d) -> str:
        sh = by_path.get(d["shard"])
        if sh is None:
            return ""
        r = readers.setdefault(d["shard"], tf.reader(sh))
        toks = r[d["sequence"]][d["offset"] : d["offset"] + d["tokens"]]
        return tf.decode(toks)

    note = "" if step < n_steps else f" (after the last trained step {n_steps - 1}: the step the run would read next)"
    per_source = Counter()
    for d in docs:
        per_source[d["source"]] += d["tokens"]
    out = sys.stdout
    if getattr(args, "json", False):
        out.write(
            json.dumps(
                {
                    "type": "summary",
                    "step": step,
                    "seq_len": seq_len_at(tc, step),
                    "global_batch_size": tc.global_batch_size,
                    "pieces": len(docs),
                    "documents": len({(d["shard"], d["sequence"]) for d in docs}),
                    "tokens_per_source": dict(per_source),
                    "train_config": cfg_from,
                    "trained_steps": n_steps,
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        for d in docs:
            out.write(json.dumps({"type": "document", **d, "text": preview(d)[:200]}, ensure_ascii=False) + "\n")
        return 0
    out.write(
        f"step {step}{note}: {tc.global_batch_size} samples of {seq_len_at(tc, step) + 1} tokens, "
        f"{len({(d['shard'], d['sequence']) for d in docs})} documents; tokens by source: "
        + ", ".join(f"{k}={v:,}" for k, v in sorted(per_source.items()))
        + f" (train settings from {cfg_from})\n"
    )
    out.write(f"{'sample':>6} {'source':<6} {'id':<40} {'shard#seq':<28} {'offset':>7} {'tokens':>6}  text\n")
    for d in docs:
        text = preview(d).replace("\n", " ")
        out.write(
            f"{d['sample']:>6} {d['source']:<6} {str(d['id'])[:40]:<40} {d['shard'] + '#' + str(d['sequence']):<28} "
            f"{d['offset']:>7} {d['tokens']:>6}  {text[:60]}\n"
        )
    return 0
