"""Training data over the token shards: one deterministic token stream, packed into
fixed-length sequences.

The train shards of the manifest form a pool of documents. Epoch `e` is the pool in
a seeded order, documents back to back (each ends with EOS); the epochs follow each
other into one endless token stream. Step `s` reads the
`global_batch_size` windows of `seq_len(s) + 1` tokens that start at

    tokens_before(s) + i · seq_len(s),     i = 0 .. global_batch_size - 1

(inputs are the first `seq_len(s)` tokens of a window, targets the last). Everything
is a pure function of (token folder, seed, step): resuming needs only the step, and a
different number of ranks reads the same global batch (rank r takes a contiguous
slice of it). Shards are read by memory map.

The order is computed blockwise, so that no rank holds anything per document: a keyed
Feistel bijection (cycle-walking over [0, N)) maps each document to a slot; slots are
cut into blocks of `shuffle_block_docs`; epoch `e` takes the blocks in the order
`default_rng([seed, e]).permutation(blocks)` and the documents of block `b` in the
order `default_rng([seed, e, b]).permutation`. The index that this needs (document
lengths in slot order and the token count of each block) is built once per (token
folder, seed, block size) into `<token folder>/index/` and memory-mapped by every rank
(see `DocIndex`).

Validation reads the `val` shards of each source in order, `eval_sequences` windows
of `seq_len` at most, the same on every run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shikomi.core.schemas import TokenManifest
from shikomi.core.shards import ShardReader
from shikomi.errors import UserError


def seq_len_at(train_cfg, step: int) -> int:
    """Sequence length of a step: linear warmup from `seq_warmup_start` to `seq_len`
    over `seq_warmup_steps` (rounded down to a multiple of 8), then `seq_len`."""
    full, n = train_cfg.seq_len, train_cfg.seq_warmup_steps
    if not n or step >= n:
        return full
    start = min(train_cfg.seq_warmup_start, full)
    length = start + (full - start) * step / n
    return int(max(start, min(full, (int(length) // 8) * 8)))


def tokens_before(train_cfg, step: int) -> int:
    """Input tokens consumed by steps 0 .. step-1 (the stream position of `step`)."""
    B, n = train_cfg.global_batch_size, train_cfg.seq_warmup_steps
    if not n:
        return B * train_cfg.seq_len * step
    warm = min(step, n)
    total = sum(seq_len_at(train_cfg, t) for t in range(warm))
    return B * (total + train_cfg.seq_len * (step - warm))


def batch_split(train_cfg, world: int) -> tuple[int, int, int]:
    """(sequences per rank, micro-batch, accumulation steps) of the global batch."""
    per_rank, rem = divmod(train_cfg.global_batch_size, world)
    if rem or per_rank == 0:
        raise UserError(f"train.global_batch_size={train_cfg.global_batch_size} is not divisible by {world} ranks")
    micro = min(train_cfg.micro_batch_size, per_rank)
    if per_rank % micro:
        raise UserError(
            f"train.global_batch_size / ranks = {per_rank} is not a multiple of "
            f"train.micro_batch_size={train_cfg.micro_batch_size}"
        )
    return per_rank, micro, per_rank // micro


@dataclass
class Shard:
    rel: str
    prefix: Path
    source: str
    split: str
    documents: int
    tokens: int
    ids_path: Path | None
    _reader: ShardReader | None = None
    _ids: list[str] | None = None

    @property
    def reader(self) -> ShardReader:
        if self._reader is None:
            self._reader = ShardReader(self.prefix)
        return self._reader

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            if self.ids_path is None or not self.ids_path.is_file():
                self._ids = [f"{self.rel}#{i}" for i in range(self.documents)]
            else:
                with open(self.ids_path, encoding="utf-8") as f:
                    self._ids = [json.loads(line) for line in f if line.strip()]
        return self._ids


# --------------------------------------------------------------------------- the document order

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
FEISTEL_ROUNDS = 6
INDEX_VERSION = 1
BUILD_CHUNK = 1 << 22  # documents per vectorised chunk while building the index


def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """splitmix64 finaliser of x ^ key (uint64 arrays; wrapping arithmetic)."""
    z = x ^ key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Feistel:
    """A seeded bijection of [0, n): a balanced Feistel network over the smallest even
    power of two >= n, cycle-walked back into range. O(1) memory; vectorised."""

    def __init__(self, n: int, seed: int):
        self.n = int(n)
        bits = max(2, (max(self.n - 1, 1)).bit_length())
        bits += bits % 2
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        ss = np.random.SeedSequence([int(seed), 0x5EED])
        self.keys = [np.uint64(k) for k in ss.generate_state(FEISTEL_ROUNDS, dtype=np.uint64)]

    def _fwd(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for k in self.keys:
            left, right = right, left ^ (_mix(right, k) & self.mask)
        return (left << self.half) | right

    def _inv(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for k in reversed(self.keys):
            left, right = right ^ (_mix(left, k) & self.mask), left
        return (left << self.half) | right

    def _walk(self, x, step) -> np.ndarray:
        x = np.asarray(x, dtype=np.uint64)
        y = step(x)
        out = y >= np.uint64(self.n)
        while out.any():
            y[out] = step(y[out])
            out = y >= np.uint64(self.n)
        return y.astype(np.int64)

    def __call__(self, doc) -> np.ndarray:
        """document index -> slot"""
        return self._walk(doc, self._fwd)

    def inverse(self, slot) -> np.ndarray:
        """slot -> document index"""
        return self._walk(slot, self._inv)


def _manifest_key(token_dir: Path) -> str:
    import hashlib

    return hashlib.sha256((token_dir / "manifest.json").read_bytes()).hexdigest()


class DocIndex:
    """The per-document data the order needs, built once and memory-mapped:

        <token folder>/index/seed<S>-block<C>/
            lengths.npy   int32, the train documents' token counts in slot order
            blocks.npy    int64, tokens per block of C slots
            meta.json     manifest hash, documents per train shard, version

    Built by the first process that needs it (`shikomi train` before it starts
    torchrun; any rank otherwise: each file is written to a temporary name and renamed,
    so concurrent builders leave the same bytes). A rank then holds, besides the shared
    map, one entry per block (the epoch's block order) and a few blocks' orders.
    Where the token folder is not writable the index is built in memory."""

    def __init__(self, token_dir: Path, train_shards: list[Shard], seed: int, block_docs: int):
        self.dir = token_dir / "index" / f"seed{seed}-block{block_docs}"
        self.seed, self.block_docs = seed, block_docs
        key = _manifest_key(token_dir)
        meta = self._read_meta()
        if meta is None or meta.get("manifest_sha256") != key or meta.get("version") != INDEX_VERSION:
            meta = self._build(train_shards, key)
        self.counts = [int(c) for c in meta["documents"]]
        self.n = int(sum(self.counts))
        if self.n == 0:
            return
        if getattr(self, "lengths", None) is None:
            self.lengths = np.load(self.dir / "lengths.npy", mmap_mode="r")
            self.blocks = np.load(self.dir / "blocks.npy")
        self.feistel = Feistel(self.n, seed)

    def _read_meta(self) -> dict | None:
        try:
            return json.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):
            return None

    def _build(self, train_shards: list[Shard], key: str) -> dict:
        counts = [int(s.reader.lengths.size) for s in train_shards]
        n = sum(counts)
        meta = {"version": INDEX_VERSION, "manifest_sha256": key, "documents": counts}
        if n == 0:
            self.lengths, self.blocks = np.zeros(0, np.int32), np.zeros(0, np.int64)
            return meta
        feistel = Feistel(n, self.seed)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tag = f".tmp{os.getpid()}"
            lengths = np.lib.format.open_memmap(self.dir / f"lengths.npy{tag}", "w+", np.int32, (n,))
        except OSError:  # a read-only token folder: keep the index in memory
            lengths, tag = np.empty(n, np.int32), None
        first = 0
        for shard in train_shards:  # scatter each shard's lengths to their slots
            src = ShardReader(shard.prefix).lengths  # not cached: the builder holds one shard's map at a time
            for a in range(0, src.size, BUILD_CHUNK):
                part = np.asarray(src[a : a + BUILD_CHUNK])
                lengths[feistel(np.arange(first + a, first + a + part.size, dtype=np.uint64))] = part
            first += src.size
        nblocks = -(-n // self.block_docs)
        blocks = np.zeros(nblocks, np.int64)
        step = self.block_docs * max(1, BUILD_CHUNK // self.block_docs)  # whole blocks per chunk
        for a in range(0, n, step):
            part = np.asarray(lengths[a : a + step], dtype=np.int64)
            sums = np.add.reduceat(part, np.arange(0, part.size, self.block_docs))
            blocks[a // self.block_docs : a // self.block_docs + sums.size] = sums
        if tag is None:
            self.lengths, self.blocks = lengths, blocks
            return meta
        lengths.flush()
        del lengths
        os.replace(self.dir / f"lengths.npy{tag}", self.dir / "lengths.npy")
        with open(self.dir / f"blocks.npy{tag}", "wb") as f:
            np.save(f, blocks)
        os.replace(self.dir / f"blocks.npy{tag}", self.dir / "blocks.npy")
        (self.dir / f"meta.json{tag}").write_text(json.dumps(meta) + "\n")
        os.replace(self.dir / f"meta.json{tag}", self.dir / "meta.json")
        self.lengths = np.load(self.dir / "lengths.npy", mmap_mode="r")
        self.blocks = blocks
        return meta


class TokenData:
    """The token folder of the tokenize stage, as the trainer reads it."""

    def __init__(self, token_dir: str | Path, seed: int, block_docs: int | None = None):
        self.dir = Path(token_dir)
        try:
            self.manifest = TokenManifest.read(self.dir)
        except FileNotFoundError:
            raise UserError(f"{self.dir}: no manifest.json; run `shikomi tokenize` first or set train.input") from None
        if block_docs is None:
            from shikomi.config.train import TrainConfig

            block_docs = TrainConfig.model_fields["shuffle_block_docs"].default
        self.seed, self.block_docs = seed, block_docs
        self.vocab_size = self.manifest.tokenizer.vocab_size
        self.eos_id = self.manifest.tokenizer.eos_id
        self.shards: list[Shard] = []
        for s in self.manifest.shards:
            prefix = self.dir / s.path
            for suf in (".bin", ".idx"):
                if not Path(str(prefix) + suf).is_file():
                    raise UserError(f"{self.dir}/manifest.json names shard {s.path} but {prefix}{suf} is missing")
            self.shards.append(
                Shard(
                    rel=s.path,
                    prefix=prefix,
                    source=s.source,
                    split=s.split,
                    documents=s.documents,
                    tokens=s.tokens,
                    ids_path=self.dir / s.ids_path,
                )
            )
        # the document pool: every train shard's documents, in manifest order
        self.train_shards = [i for i, s in enumerate(self.shards) if s.split == "train" and s.documents > 0]
        if not self.train_shards:
            raise UserError(f"{self.dir}/manifest.json: no train shards with documents")
        self.index = DocIndex(self.dir, [self.shards[i] for i in self.train_shards], seed, block_docs)
        self.n_docs = self.index.n
        self.first_doc = np.zeros(len(self.train_shards) + 1, dtype=np.int64)
        np.cumsum(self.index.counts, out=self.first_doc[1:])
        self.epoch_tokens = int(self.index.blocks.sum()) if self.n_docs else 0
        if self.epoch_tokens < 2:
            raise UserError(f"{self.dir}: the train shards hold fewer than 2 tokens")
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._blocks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    # --- documents of the pool ---
    def locate(self, doc: int) -> tuple[int, int]:
        """pool document -> (index in self.shards, sequence in that shard)"""
        k = int(np.searchsorted(self.first_doc, doc, side="right")) - 1
        return self.train_shards[k], int(doc - self.first_doc[k])

    def doc_of(self, shard_index: int, seq: int) -> int | None:
        """(index in self.shards, sequence) -> pool document, or None (not a train document)"""
        if shard_index not in self.train_shards:
            return None
        k = self.train_shards.index(shard_index)
        if not 0 <= seq < self.index.counts[k]:
            return None
        return int(self.first_doc[k] + seq)

    def doc_length(self, doc: int) -> int:
        return int(self.index.lengths[int(self.index.feistel(np.array([doc]))[0])])

    # --- the train stream ---
    def epoch_blocks(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(block order, cumulative token offsets of the blocks in that order) of one epoch."""
        if epoch not in self._epochs:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.index.blocks.size)
            cum = np.zeros(order.size + 1, dtype=np.int64)
            np.cumsum(self.index.blocks[order], out=cum[1:])
            if len(self._epochs) >= 2:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = (order, cum)
        return self._epochs[epoch]

    def block_order(self, epoch: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(pool documents of a block in their epoch order, cumulative token offsets)."""
        key = (epoch, block)
        if key not in self._blocks:
            C = self.block_docs
            slots = np.arange(block * C, min(self.n_docs, (block + 1) * C), dtype=np.int64)
            perm = np.random.default_rng([self.seed, epoch, block]).permutation(slots.size)
            slots = slots[perm]
            docs = self.index.feistel.inverse(slots.astype(np.uint64))
            cum = np.zeros(slots.size + 1, dtype=np.int64)
            np.cumsum(np.asarray(self.index.lengths[slots], dtype=np.int64), out=cum[1:])
            if len(self._blocks) >= 8:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[key] = (docs, cum)
        return self._blocks[key]

    def doc_start(self, doc: int, epoch: int) -> int:
        """Offset of a pool document's first token within epoch `epoch`."""
        slot = int(self.index.feistel(np.array([doc]))[0])
        block = slot // self.block_docs
        order, cum = self.epoch_blocks(epoch)
        j = int(np.nonzero(order == block)[0][0])
        docs, bcum = self.block_order(epoch, block)
        k = int(np.nonzero(docs == doc)[0][0])
        return int(cum[j] + bcum[k])

    def pieces(self, pos: int, n: int):
        """The documents covering stream tokens [pos, pos + n): yields
        (pool document index, first token in the document, token count, epoch)."""
        while n > 0:
            epoch, off = divmod(pos, self.epoch_tokens)
            order, cum = self.epoch_blocks(epoch)
            j = int(np.searchsorted(cum, off, side="right")) - 1
            docs, bcum = self.block_order(epoch, int(order[j]))
            inner = off - int(cum[j])
            k = int(np.searchsorted(bcum, inner, side="right")) - 1
            start = inner - int(bcum[k])
            take = min(n, int(bcum[k + 1] - bcum[k]) - start)
            yield int(docs[k]), start, take, epoch
            pos += take
            n -= take

    def read(self, pos: int, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        k = 0
        for doc, start, take, _ in self.pieces(pos, n):
            si, seq = self.locate(doc)
            out[k : k + take] = self.shards[si].reader[seq][start : start + take]
            k += take
        return out

    def window_start(self, train_cfg, step: int, sample: int) -> int:
        return tokens_before(train_cfg, step) + sample * seq_len_at(train_cfg, step)

    def batch(self, train_cfg, step: int, first: int, count: int) -> np.ndarray:
        """Samples [first, first + count) of the global batch of `step`: (count, L + 1)."""
        L = seq_len_at(train_cfg, step)
        base = tokens_before(train_cfg, step)
        return np.stack([self.read(base + (first + i) * L, L + 1) for i in range(count)])

    def documents(self, train_cfg, step: int) -> list[dict]:
        """Which documents make up the global batch of `step`."""
        L = seq_len_at(train_cfg, step)
        base = tokens_before(train_cfg, step)
        out = []
        for i in range(train_cfg.global_batch_size):
            for doc, start, take, epoch in self.pieces(base + i * L, L + 1):
                si, seq = self.locate(doc)
                sh = self.shards[si]
                out.append(
                    {
                        "step": step,
                        "sample": i,
                        "source": sh.source,
                        "shard": sh.rel,
                        "sequence": seq,
                        "id": sh.ids[seq] if seq < len(sh.ids) else f"{sh.rel}#{seq}",
                        "epoch": epoch,
                        "offset": start,
                        "tokens": take,
                    }
                )
        return out

    # --- validation ---
    def val_sources(self) -> list[str]:
        seen: list[str] = []
        for s in self.shards:
            if s.split == "val" and s.documents > 0 and s.source not in seen:
                seen.append(s.source)
        return seen

    def val_windows(self, source: str, seq_len: int, max_windows: int) -> np.ndarray:
        """Non-overlapping windows (n, seq_len + 1) over the val documents of `source`."""
        toks = []
        need = max_windows * seq_len + 1
        have = 0
        for s in self.shards:
            if s.split != "val" or s.source != source:
                continue
            for i in range(len(s.reader)):
                t = np.asarray(s.reader[i], dtype=np.int64)
                toks.append(t)
                have += t.size
                if have >= need:
                    break
            if have >= need:
                break
        if have < 2:
            return np.zeros((0, seq_len + 1), dtype=np.int64)
        flat = np.concatenate(toks)[:need]
        L = min(seq_len, flat.size - 1)
        n = (flat.size - 1) // L
        return np.stack([flat[k * L : k * L + L + 1] for k in range(n)])


def token_dir_for(cfg) -> Path:
    """The token folder the trainer reads: train.input, else <run_dir>/tokenize."""
    return Path(cfg.train.input) if cfg.train.input else cfg.stage_dir("tokenize")


def step_documents(token_dir: str | Path, train_cfg, step: int, seed: int | None = None) -> list[dict]:
    """The documents of the global batch of `step`, a pure function of (token folder,
    train config, seed, step): one dict per (sample, document piece) with `sample`,
    `source`, `shard` (path relative to the token folder), `sequence` (index in the
    shard), `id`, `epoch`, `offset` and `tokens` (how many of its tokens the sample holds)."""
    if step < 0:
        raise UserError(f"step must be >= 0, got {step}")
    data = TokenData(token_dir, train_cfg.seed if seed is None else seed, train_cfg.shuffle_block_docs)
    return data.documents(train_cfg, step)
