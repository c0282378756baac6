"""The tokenize stage: documents to Megatron token shards, one folder per source.

    encode  (N tasks)  SentencePiece-encode each document (EOS appended) into per-task
                       files `_parts/<rank>/<source>.bin/.idx` + `<source>.ids.jsonl`
    merge   (1 task)   per source: hold out a validation split (by unique document id,
                       every repeat with it, at most val_max_fraction of its tokens);
                       keep every copy of the plan's anchor and size the other sources
                       from its real train tokens (trim, take from the mix's reserve,
                       repeat) so that the real token shares match mix/plan.json;
                       shuffle with a seeded hash of (id, epoch), copy the tokens into
                       shards of `shard_tokens` tokens and write manifest.json

Output (`<run_dir>/tokenize/`):

    <source>/train_00000.bin/.idx/.ids.jsonl, <source>/val_00000...
    manifest.json   tokenizer (path, sha256, vocab_size, eos_id), dtype, seed, shards
                    [{path, sha256, idx_sha256, documents, tokens, source, split, ids_path}],
                    per-source planned and realised shares
    rejected/       decoded documents left out: ratio_trim (surplus of a source sized
                    from the anchor; never the anchor) and val_repeat (repeats of a
                    held-out document, never trained on); unused reserve documents are
                    counted (reserve_unused), not written

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
from shikomi.core.sampling import first_fit, seeded_hashes_str
from shikomi.core.schemas import MixPlan, TokenManifest
from shikomi.core.shards import ShardReader, ShardWriter, dtype_for_vocab
from shikomi.core.writers import DocWriter
from shikomi.errors import UserError
from shikomi.tokenize.spm import encode_flat

try:
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

PARTS = "_parts"
MERGED = "MERGED"
TRIM = "ratio_trim"
VAL_REPEAT = "val_repeat"
RESERVE_UNUSED = "reserve_unused"
COLS = ".cols.arrow"  # per part file: its ids, epochs and chars as Arrow columns (when every id is a string)
GATHER_TOKENS = 1 << 22  # tokens copied into a shard at a time (memory granularity, not a setting)
READ_DOCS = 2048  # rows per Parquet read batch of an encode task (I/O granularity, not a setting)


def _safe_source(s) -> str:
    s = str(s or "default").replace("/", "_").replace("\\", "_")
    return s if s and not s.startswith(".") and s not in ("rejected", "logs", PARTS) else f"src_{s}"


def _load_sp(model: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model)


def _dumpb(obj) -> bytes:
    """`obj` as one line of JSON (UTF-8, newline-terminated)."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")  # pragma: no cover


def _loads(line):
    return orjson.loads(line) if orjson is not None else json.loads(line)


class _Sidecar:
    """The id sidecar of one part file (`[id, epoch, chars]` lines) as columns: ids (a
    list, and an Arrow array when the encode task wrote the columns file `COLS`),
    epochs and chars (arrays), and where each id's JSON lies in `raw` (its bytes with
    the comma after each id made a newline), so the merge copies ids without
    serialising them again."""

    def __init__(self, path: Path):
        data = path.read_bytes()
        cols = path.with_name(path.name[: -len(".ids.jsonl")] + COLS)
        self.ids_arrow = None
        if cols.is_file():  # the same columns, without parsing JSON
            import pyarrow as pa

            t = pa.ipc.open_file(pa.BufferReader(cols.read_bytes())).read_all()
            self.ids_arrow = t.column("id").combine_chunks()
            self.ids = self.ids_arrow.to_pylist()
            self.epochs = t.column("epoch").to_numpy().astype(np.int64)
            self.chars = t.column("chars").to_numpy().astype(np.int64)
        else:
            rows = _loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]") if data.strip() else []
            self.ids = [r[0] for r in rows]
            self.epochs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            self.chars = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
        raw = np.frombuffer(data, dtype=np.uint8).copy()
        ends = np.flatnonzero(raw == 10)
        commas = np.flatnonzero(raw == 44)
        # epoch and chars are integers: the second-to-last comma of a line ends its id
        cut = commas[np.searchsorted(commas, ends) - 2] if ends.size else ends
        raw[cut] = 10
        self.raw = raw
        self.id_start = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) + 1 if ends.size else ends
        self.id_len = cut + 1 - self.id_start

    def __len__(self) -> int:
        return len(self.ids)


_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'  # what JSON escapes in a string (orjson leaves the rest as UTF-8)


class _IdLines:
    """The sidecar lines `[id,epoch,chars]` of one read batch, one per document, in the
    bytes `_dumpb` gives: built by Arrow in one pass when every id is a string JSON
    writes as it is (no quote, backslash or control character), else one `_dumpb` per
    document."""

    def __init__(self, ids: list, epochs: list, chars: np.ndarray):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.ids, self.epochs, self.chars = ids, epochs, chars
        self.arrow = self.columns = None
        try:
            arr = pa.array(ids)
        except (pa.ArrowException, TypeError, ValueError):
            return
        if not pa.types.is_string(arr.type) or arr.null_count:
            return
        ep = pa.array(epochs, type=pa.int64())
        # the columns file of the merge: every id a string
        self.columns = pa.record_batch([arr, ep, pa.array(chars, type=pa.int64())], names=["id", "epoch", "chars"])
        if orjson is None or pc.any(pc.match_substring_regex(arr, _NEEDS_ESCAPE)).as_py():
            return
        self.arrow = pc.binary_join_element_wise(
            '["', arr, '",', ep.cast(pa.string()), ",", pa.array(chars).cast(pa.string()), "]\n", ""
        )

    def columns_of(self, idx):
        """The columns of the documents `idx` (None: all), or None when an id is not a string."""
        if self.columns is None or idx is None:
            return self.columns
        import pyarrow as pa

        return self.columns.take(pa.array(idx, type=pa.int64()))

    @staticmethod
    def _bytes(a) -> memoryview | bytes:
        """The characters of a string array back to back (a view of its data buffer)."""
        if not len(a):
            return b""
        offsets = np.frombuffer(a.buffers()[1], dtype=np.int32, count=len(a) + 1, offset=4 * a.offset)
        return memoryview(a.buffers()[2])[int(offsets[0]) : int(offsets[-1])]

    def all(self) -> memoryview | bytes:
        if self.arrow is not None:
            return self._bytes(self.arrow)
        return self.some(range(len(self.ids)))

    def some(self, idx) -> memoryview | bytes:
        if self.arrow is not None:
            import pyarrow as pa

            return self._bytes(self.arrow.take(pa.array(idx, type=pa.int64())))
        return b"".join(_dumpb([self.ids[i], self.epochs[i], int(self.chars[i])]) for i in idx)


def _codes(ids: list, arrow: list | None = None) -> tuple[np.ndarray, int]:
    """Each id as a number, first seen first (Arrow's hash table when every id is a
    string: `arrow`, the ids as string arrays, or checked here; else a dict), and how
    many ids there are."""
    if ids and (arrow is not None or all(type(d) is str for d in ids)):
        import pyarrow as pa

        arr = pa.concat_arrays(arrow) if arrow is not None else pa.array(ids, type=pa.string())
        enc = arr.dictionary_encode()
        return enc.indices.to_numpy().astype(np.int64), len(enc.dictionary)
    code_of: dict = {}
    codes = np.fromiter((code_of.setdefault(d, len(code_of)) for d in ids), dtype=np.int64, count=len(ids))
    return codes, len(code_of)


def _hashes(seed, prefix: tuple, ids: list, epochs: list | None = None) -> np.ndarray:
    """`seeded_hash(seed, *prefix, id)` (or `(..., id, epoch)`) of every id, as uint64."""
    if epochs is None:
        return seeded_hashes_str(seed, prefix, [f"{d}" for d in ids])
    return seeded_hashes_str(seed, prefix, [f"{d}\x00{e}" for d, e in zip(ids, epochs)])


def _spans(lengths: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Consecutive ranges (a, b) of the documents with these token counts, each about
    `size` tokens (and at least one document)."""
    n = int(lengths.size)
    if n == 0:
        return []
    ends = np.cumsum(lengths)
    cuts = np.unique(np.searchsorted(ends, np.arange(size, int(ends[-1]), size), side="right")).tolist()
    b = [0, *[c for c in cuts if 0 < c < n], n]
    return list(zip(b[:-1], b[1:]))


def _gather(tokens: list, part: np.ndarray, start: np.ndarray, length: np.ndarray, dtype) -> np.ndarray:
    """The token ranges `tokens[part[k]][start[k]:start[k] + length[k]]` back to back: one
    slice (a view) per range, then one copy (cheaper than index arrays per token)."""
    length = np.asarray(length, dtype=np.int64)
    if length.size == 0:
        return np.zeros(0, dtype=dtype)
    start = np.asarray(start, dtype=np.int64)
    ends = (start + length).tolist()
    if len(tokens) == 1 or bool(np.all(part == part[0])):
        t = tokens[int(part[0])]
        views = [t[a:b] for a, b in zip(start.tolist(), ends)]
    else:
        views = [tokens[q][a:b] for q, a, b in zip(part.tolist(), start.tolist(), ends)]
    return np.concatenate(views).astype(dtype, copy=False)


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
        import pyarrow as pa
        import pyarrow.compute as pc

        sp = _load_sp(self.model)
        eos = sp.eos_id()
        dtype = dtype_for_vocab(sp.get_piece_size())
        part_dir = Path(self.out_dir) / PARTS / f"{rank:05d}"
        if part_dir.exists():
            shutil.rmtree(part_dir)  # a killed attempt of this task
        part_dir.mkdir(parents=True)
        writers: dict[str, ShardWriter] = {}
        sidecars: dict[str, object] = {}
        columns: dict[str, object] = {}  # source -> Arrow file writer, or None once an id is not a string
        files = input_files(self.input_path)[rank::world_size]
        safe: dict = {}
        bd = self.batch_docs
        # Parquet is read in larger batches than SentencePiece is called with: the read and
        # the bookkeeping below cost per batch, the output is the same. The text stays in
        # Arrow: SentencePiece gets its UTF-8 bytes (no Python string decoded per document
        # and encoded again), characters are counted by Arrow
        for ids, texts, sources, epochs in column_batches(files, max(bd, READ_DOCS), arrow_text=True):
            n = len(texts)
            chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
            self.stat_update("docs_in", value=n)
            self.stat_update("chars_in", value=int(chars.sum()))
            blobs = texts.cast(pa.large_binary() if pa.types.is_large_string(texts.type) else pa.binary()).to_pylist()
            del texts
            with self.track_time():
                # one int32 buffer per batch from C++ (no Python int or numpy array per
                # document), EOS added by SentencePiece
                tokens, lengths = encode_flat(sp, blobs, eos >= 0, bd)
            del blobs
            for s in set(sources):
                if s not in safe:
                    safe[s] = _safe_source(s)
            if len(set(sources)) == 1:
                groups = {safe[sources[0]]: None}  # the whole batch
            else:
                groups = {}
                for i, s in enumerate(sources):
                    groups.setdefault(safe[s], []).append(i)
            lines = _IdLines(ids, epochs, chars)
            ends = np.cumsum(lengths)
            for src, idx in groups.items():
                w = writers.get(src)
                if w is None:
                    w = writers[src] = ShardWriter(part_dir / src, dtype)
                    sidecars[src] = open(part_dir / f"{src}.ids.jsonl.tmp", "wb")
                if idx is None:
                    toks, lens = tokens, lengths
                else:
                    lens = lengths[idx]
                    toks = np.concatenate([tokens[e - k : e] for e, k in zip(ends[idx].tolist(), lens.tolist())])
                if eos < 0:  # a model without EOS: the documents run together as before
                    seqs = np.split(toks, np.cumsum(lens)[:-1]) if lens.size else []
                    toks = np.concatenate([np.append(x, eos) for x in seqs]) if seqs else toks
                    lens = lens + 1
                n_tok = int(lens.sum())
                w.add_many(toks.astype(dtype), lens)
                sidecars[src].write(lines.all() if idx is None else lines.some(idx))
                cols = lines.columns_of(idx)
                cw = columns.get(src, False)
                if cw is False and cols is not None:  # the first batch of this source
                    cw = columns[src] = pa.ipc.new_file(str(part_dir / f"{src}{COLS}.tmp"), cols.schema)
                if cw and cols is not None:
                    cw.write_batch(cols)
                elif cw is not None:  # an id that is not a string: the merge parses the JSON
                    if cw:
                        cw.close()
                    (part_dir / f"{src}{COLS}.tmp").unlink(missing_ok=True)
                    columns[src] = None
                self.stat_update("tokens_encoded", value=n_tok)
                self.stat_update(f"tokens_encoded/{src}", value=n_tok)
        for src, w in writers.items():
            w.close()
            sidecars[src].close()
            os.replace(part_dir / f"{src}.ids.jsonl.tmp", part_dir / f"{src}.ids.jsonl")
            if columns.get(src):
                columns[src].close()
                os.replace(part_dir / f"{src}{COLS}.tmp", part_dir / f"{src}{COLS}")
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


def plan_anchor(plan_path: Path | None) -> str | None:
    """The source the mix plan was sized from (None without a plan, or an older one)."""
    if plan_path is None:
        return None
    plan = MixPlan.read(plan_path.parent, missing_ok=True)
    return plan.anchor if plan is not None else None


def _deviation(tokens: dict[str, int], p: dict[str, float]) -> float:
    total = sum(tokens[s] for s in p)
    if total <= 0:
        return float("inf")
    return max(abs(tokens[s] / total - p[s]) / p[s] for s in p)


def _nearest(sorted_vals: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Index in `sorted_vals` of the value nearest each of `want`."""
    if sorted_vals.size == 1:
        return np.zeros(np.size(want), dtype=np.int64)
    k = np.clip(np.searchsorted(sorted_vals, want), 1, sorted_vals.size - 1)
    left = k - 1
    return np.where(np.abs(sorted_vals[left] - want) <= np.abs(sorted_vals[k] - want), left, k)


def closest_fit(lengths: np.ndarray, target: float, rounds: int = 32) -> np.ndarray:
    """Documents (a mask, in order) whose tokens land close to `target`: `first_fit`
    (never above it), then up to `rounds` single moves (add a document, drop one, or
    swap a kept one for one left out) that bring the sum closer. Whole documents only: on
    coarse sources first fit alone can miss by a document's length."""
    keep = first_fit(lengths, target)
    lengths = np.asarray(lengths, dtype=np.int64)
    for _ in range(rounds):
        gap = target - int(lengths[keep].sum())
        if abs(gap) < 1:
            break
        out_idx = np.nonzero(~keep)[0]
        in_idx = np.nonzero(keep)[0]
        if out_idx.size == 0:
            break
        order = np.argsort(lengths[out_idx], kind="stable")
        sorted_out = lengths[out_idx][order]

        best, move = abs(gap), None
        j = int(_nearest(sorted_out, np.asarray([gap]))[0])  # add one
        if abs(gap - int(sorted_out[j])) < best:
            best, move = abs(gap - int(sorted_out[j])), (None, int(out_idx[order[j]]))
        if in_idx.size:
            i = int(np.argmin(np.abs(gap + lengths[in_idx])))  # remove one
            if abs(gap + int(lengths[in_idx[i]])) < best:
                best, move = abs(gap + int(lengths[in_idx[i]])), (int(in_idx[i]), None)
            want = gap + lengths[in_idx]  # swap: remove i, add j
            js = _nearest(sorted_out, want)
            err = np.abs(want - sorted_out[js])
            i = int(np.argmin(err))
            if err[i] < best:
                best, move = float(err[i]), (int(in_idx[i]), int(out_idx[order[js[i]]]))
        if move is None:
            break
        if move[0] is not None:
            keep[move[0]] = False
        if move[1] is not None:
            keep[move[1]] = True
    return keep


def size_sources(
    train: dict[str, np.ndarray],
    reserve: dict[str, np.ndarray],
    planned: dict[str, float],
    anchor: str | None,
    tol: float,
) -> dict[str, dict]:
    """Per source, from the real token counts (train documents and reserve, each in
    shuffled order): which train documents to keep (`keep`, None: all), which reserve
    documents to use (`reserve`), and repeats of the pool (kept train then used
    reserve): `passes` whole copies plus the `prefix` mask, so that every share of the
    train tokens matches the plan.

    The anchor (the plan's, else the source with the fewest tokens for its share)
    keeps everything; every other source is sized from the anchor's train tokens:
    its train documents then its reserve are taken in order up to its target (first
    fit, closest), and repeated when all of them fall short. Validation is already
    out, so it never forces a cut elsewhere."""
    out = {
        s: {"keep": None, "reserve": np.zeros(reserve.get(s, np.zeros(0)).size, bool), "passes": 0, "prefix": None}
        for s in train
    }
    common = [s for s in train if planned.get(s, 0) > 0 and int(train[s].sum()) > 0]
    if len(common) < 2:
        return out
    psum = sum(planned[s] for s in common)
    p = {s: planned[s] / psum for s in common}
    have = {s: int(train[s].sum()) for s in common}
    if anchor not in common:
        anchor = min(common, key=lambda s: (have[s] / p[s], s))
    out[anchor]["anchor"] = True
    if _deviation(have, p) <= tol:
        return out
    a = have[anchor]
    for s in common:
        if s == anchor:
            continue
        target = p[s] / p[anchor] * a
        t, r = train[s], reserve.get(s, np.zeros(0, np.int64))
        cand = np.concatenate([t, r])
        if int(cand.sum()) >= target:
            m = closest_fit(cand, target)
            if not m[: t.size].all():
                out[s]["keep"] = m[: t.size]
            out[s]["reserve"] = m[t.size :]
            continue
        # every document of the source is too little: all of them, then repeats
        out[s]["reserve"] = np.ones(r.size, bool)
        need = target - int(cand.sum())
        total = int(cand.sum())
        out[s]["passes"] = int(need // total)
        out[s]["prefix"] = closest_fit(cand, need - out[s]["passes"] * total)
    return out


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
                meta = _Sidecar(d / f"{src}.ids.jsonl")
                if len(meta) != len(reader):
                    raise RuntimeError(f"{d / src}: {len(reader)} sequences but {len(meta)} ids")
                per_source.setdefault(src, []).append((reader, meta))
        return per_source

    def _order(self, src: str, ids: list, pos: np.ndarray, epochs) -> np.ndarray:
        """`pos` (with their epochs) in shuffled order: a seeded hash of (id, epoch), equal
        hashes ordered by (id, epoch), so the order never depends on tasks."""
        if pos.size == 0:
            return pos
        pos_l = pos.tolist()
        ep_l = np.asarray(epochs, dtype=np.int64).tolist()
        keys = _hashes(self.seed, ("shuffle", src), [ids[p] for p in pos_l], ep_l)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        if sk.size > 1 and bool(np.any(sk[1:] == sk[:-1])):
            order = np.asarray(sorted(range(pos.size), key=lambda k: (int(keys[k]), ids[pos_l[k]], ep_l[k])), np.int64)
        return order

    def _split(self, src: str, parts: list):
        """(arrays, val positions, train positions in shuffled order, reserve positions
        in shuffled order)."""
        part_no = np.concatenate([np.full(len(r), p, dtype=np.int32) for p, (r, _) in enumerate(parts)])
        seq_no = np.concatenate([np.arange(len(r), dtype=np.int64) for r, _ in parts])
        lengths = np.concatenate([r.lengths.astype(np.int64) for r, _ in parts])
        ids = [d for _, m in parts for d in m.ids]
        epochs = np.concatenate([m.epochs for _, m in parts])
        chars = np.concatenate([m.chars for _, m in parts])
        n = len(ids)
        # each id as a number (first seen first): the set logic below runs on arrays
        arrows = [m.ids_arrow for _, m in parts]
        codes, n_codes = _codes(ids, arrows if all(a is not None for a in arrows) else None)
        planned = epochs >= 0
        # validation: unique ids (of planned copies: the mix's reserve, epoch -1, is
        # used only when the real count of its source falls short), the copy of lowest
        # epoch (then first) standing for the id, every repeat goes with it
        pl = np.nonzero(planned)[0]
        o = pl[np.lexsort((pl, epochs[pl], codes[pl]))]
        head = np.ones(o.size, bool)
        head[1:] = codes[o[1:]] != codes[o[:-1]]
        first = o[head]  # one position per planned id
        n_u = int(first.size)
        n_val = max(self.tc["val_min_docs"], math.ceil(self.tc["val_fraction"] * n_u))
        # capped by val_max_fraction (of documents, and of tokens: a long document that
        # would take more is passed over), but a source of 2+ documents always gets one
        n_val = min(n_val, max(int(self.tc["val_max_fraction"] * n_u), 1 if n_u >= 2 and n_val else 0))
        val_pos_l: list[int] = []
        if n_val > 0:
            fid = [ids[i] for i in first.tolist()]
            h = _hashes(self.seed, ("val", src), fid)
            scored = np.argsort(h, kind="stable")
            hs = h[scored]
            if hs.size > 1 and bool(np.any(hs[1:] == hs[:-1])):  # equal hashes: ordered by id
                scored = np.asarray(sorted(range(n_u), key=lambda k: (int(h[k]), fid[k])), dtype=np.int64)
            cand = first[scored].tolist()
            cand_len = lengths[first[scored]].tolist()
            budget = self.tc["val_max_fraction"] * float(int(lengths[first].sum()))
            used = 0
            for i, t in zip(cand, cand_len):
                if used + t <= budget:
                    val_pos_l.append(i)
                    used += t
                    if len(val_pos_l) >= n_val:
                        break
            if not val_pos_l and n_u >= 2:
                val_pos_l = [cand[int(np.argmin(np.asarray(cand_len, dtype=np.int64)))]]
        val_pos = np.asarray(val_pos_l, dtype=np.int64)
        is_val = np.zeros(n_codes, bool)
        is_val[codes[val_pos]] = True
        has_planned = np.zeros(n_codes, bool)
        has_planned[codes[pl]] = True
        train_pos = np.nonzero(planned & ~is_val[codes])[0]
        # a document both planned and in reserve counts as planned
        reserve_pos = np.nonzero(~planned & ~has_planned[codes])[0]
        not_val_copy = np.ones(n, bool)
        not_val_copy[val_pos] = False
        repeats = np.nonzero(is_val[codes] & not_val_copy & planned)[0]
        train_pos = train_pos[self._order(src, ids, train_pos, epochs[train_pos])]
        reserve_pos = reserve_pos[self._order(src, ids, reserve_pos, epochs[reserve_pos])]
        starts = np.concatenate([np.asarray(r.offsets, dtype=np.int64) // r.dtype.itemsize for r, _ in parts])
        arrays = {
            "part": part_no,
            "seq": seq_no,
            "start": starts,
            "len": lengths,
            "ids": ids,
            "codes": codes,
            "epochs": epochs,
            "chars": chars,
            "id_start": np.concatenate([m.id_start for _, m in parts]),
            "id_len": np.concatenate([m.id_len for _, m in parts]),
            "val_repeats": repeats,
        }
        return arrays, val_pos, train_pos, reserve_pos

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
            w = ShardWriter(out / rel, dtype, digest=True)
            raws = [m.raw for _, m in parts]
            with open(out / f"{rel}.ids.jsonl.tmp", "wb") as f:
                # in pieces of about GATHER_TOKENS tokens: memory does not grow with the shard
                for c0, c1 in _spans(arr["len"][sel], GATHER_TOKENS):
                    s = sel[c0:c1]
                    w.add_many(_gather(tokens, arr["part"][s], arr["start"][s], arr["len"][s], dtype), arr["len"][s])
                    f.write(_gather(raws, arr["part"][s], arr["id_start"][s], arr["id_len"][s], np.uint8).data)
            w.close()
            os.replace(out / f"{rel}.ids.jsonl.tmp", out / f"{rel}.ids.jsonl")
            self.stat_update("docs_out", value=int(sel.size))
            self.stat_update("chars_out", value=int(arr["chars"][sel].sum()))
            self.stat_update("tokens_out", value=w.tokens)
            shards.append(
                {
                    "path": rel,
                    "sha256": w.sha256,
                    "idx_sha256": w.idx_sha256,
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
        anchor = plan_anchor(Path(self.plan_path)) if self.plan_path else None
        sizing = size_sources(
            {src: a["len"][tp] for src, (a, _, tp, _) in splits.items()},
            {src: a["len"][rp] for src, (a, _, _, rp) in splits.items()},
            planned if self.tc["balance"] else {},
            anchor,
            self.tc["balance_tolerance"],
        )

        manifest_shards: list[dict] = []
        summary: dict[str, dict] = {}
        rejected = DocWriter(str(out / "rejected"))
        with rejected:
            for src, (arr, val_pos, train_pos, reserve_pos) in splits.items():
                sz = sizing[src]
                trimmed = np.zeros(0, dtype=np.int64)
                if sz["keep"] is not None:
                    trimmed = train_pos[~sz["keep"]]
                    train_pos = train_pos[sz["keep"]]
                used_reserve = reserve_pos[sz["reserve"]] if reserve_pos.size else reserve_pos
                unused_reserve = reserve_pos[~sz["reserve"]] if reserve_pos.size else reserve_pos
                pool = np.concatenate([train_pos, used_reserve])
                ep = np.maximum(arr["epochs"][pool], 0)
                top = max(int(arr["epochs"].max()) if arr["epochs"].size else 0, 0) + 1
                final, final_ep = [pool], [ep]
                for k in range(sz["passes"]):
                    final.append(pool)
                    final_ep.append(np.full(pool.size, top + k, dtype=np.int64))
                if sz["prefix"] is not None and bool(sz["prefix"].any()):
                    extra = pool[sz["prefix"]]
                    final.append(extra)
                    final_ep.append(np.full(extra.size, top + sz["passes"], dtype=np.int64))
                train_pos = np.concatenate(final)
                final_ep = np.concatenate(final_ep)
                train_pos = train_pos[self._order(src, arr["ids"], train_pos, final_ep)]
                parts = per_source[src]
                manifest_shards += self._write(src, "train", parts, arr, train_pos, dtype)
                manifest_shards += self._write(src, "val", parts, arr, val_pos, dtype)
                # repeats of held-out documents must not be trained on; trimmed documents
                # are the surplus of a source sized from the anchor: both go to rejected/, decoded
                for reason, positions in ((VAL_REPEAT, arr["val_repeats"]), (TRIM, trimmed)):
                    for i in positions:
                        toks = parts[int(arr["part"][i])][0][int(arr["seq"][i])]
                        text = sp.decode([int(t) for t in toks[:-1]])
                        doc = Document(
                            text=text,
                            id=arr["ids"][i],
                            metadata={
                                "source": src,
                                "epoch": int(arr["epochs"][i]),
                                "tokens": int(arr["len"][i]),
                                "reject_reason": reason,
                            },
                        )
                        rejected.write(doc, 0)
                        self.stat_update(f"dropped/{reason}")
                        self.stat_update(f"dropped_chars/{reason}", value=len(text))
                # the reserve left unused was never part of the plan: counted, not written
                if unused_reserve.size:
                    self.stat_update(f"dropped/{RESERVE_UNUSED}", value=int(unused_reserve.size))
                    self.stat_update(f"dropped_chars/{RESERVE_UNUSED}", value=int(arr["chars"][unused_reserve].sum()))
                codes = arr["codes"]
                # the first copy of each id in training order; of each id, its first planned
                # copy (else its first copy) for what the source has
                _, firsts = np.unique(codes[train_pos], return_index=True)
                train_tokens = int(arr["len"][train_pos].sum())
                unique_train = int(arr["len"][train_pos[firsts]].sum())
                every = np.arange(codes.size)
                o = np.lexsort((every, arr["epochs"] < 0, codes))
                head = np.ones(o.size, bool)
                head[1:] = codes[o[1:]] != codes[o[:-1]]
                available = int(arr["len"][o[head]].sum())
                avail_train = available - int(arr["len"][val_pos].sum())
                summary[src] = {
                    "train_documents": int(train_pos.size),
                    "train_tokens": train_tokens,
                    "val_documents": int(val_pos.size),
                    "val_tokens": int(arr["len"][val_pos].sum()),
                    "trimmed_documents": int(trimmed.size),
                    "trimmed_tokens": int(arr["len"][trimmed].sum()),
                    "val_repeats_dropped": int(arr["val_repeats"].size),
                    "available_tokens": available,
                    "repeat_tokens": train_tokens - unique_train,
                    "epochs": round(train_tokens / avail_train, 4) if avail_train > 0 else 0.0,
                    "reserve_used_tokens": int(arr["len"][used_reserve].sum()),
                    "reserve_unused_documents": int(unused_reserve.size),
                    "reserve_unused_tokens": int(arr["len"][unused_reserve].sum()),
                }
        total_train = sum(s["train_tokens"] for s in summary.values())
        psum = sum(planned.get(s, 0.0) for s in summary)
        used_anchor = next((s for s, z in sizing.items() if z.get("anchor")), None)
        for src, s in summary.items():
            s["realised_share"] = round(s["train_tokens"] / total_train, 6) if total_train else 0.0
            if psum and src in planned:
                s["planned_share"] = round(planned[src] / psum, 6)
                s["deviation"] = round(abs(s["realised_share"] - s["planned_share"]) / s["planned_share"], 6)
            if used_anchor:
                s["anchor"] = src == used_anchor

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
                "trimmed": any(z["keep"] is not None for z in sizing.values()),
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
