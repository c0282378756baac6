"""Training data over the token shards: one deterministic token stream, packed into
fixed-length sequences.

The train shards of the manifest form a pool of documents. Epoch `e` is the pool in
the order `permutation(seed, e)`, documents back to back (each ends with EOS); the
epochs follow each other into one endless token stream. Step `s` reads the
`global_batch_size` windows of `seq_len(s) + 1` tokens that start at

    tokens_before(s) + i · seq_len(s),     i = 0 .. global_batch_size - 1

(inputs are the first `seq_len(s)` tokens of a window, targets the last). Everything
is a pure function of (token folder, seed, step): resuming needs only the step, and a
different number of ranks reads the same global batch (rank r takes a contiguous
slice of it). Shards are read by memory map.

Validation reads the `val` shards of each source in order, `eval_sequences` windows
of `seq_len` at most, the same on every run.
"""

from __future__ import annotations

import json
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


class TokenData:
    """The token folder of the tokenize stage, as the trainer reads it."""

    def __init__(self, token_dir: str | Path, seed: int):
        self.dir = Path(token_dir)
        try:
            self.manifest = TokenManifest.read(self.dir)
        except FileNotFoundError:
            raise UserError(f"{self.dir}: no manifest.json; run `shikomi tokenize` first or set train.input") from None
        self.seed = seed
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
        train = [i for i, s in enumerate(self.shards) if s.split == "train" and s.documents > 0]
        if not train:
            raise UserError(f"{self.dir}/manifest.json: no train shards with documents")
        # the document pool: (shard, sequence) pairs of every train shard, in manifest order
        shard_of, seq_of, len_of = [], [], []
        for i in train:
            lengths = self.shards[i].reader.lengths
            shard_of.append(np.full(lengths.size, i, dtype=np.int32))
            seq_of.append(np.arange(lengths.size, dtype=np.int64))
            len_of.append(lengths.astype(np.int64))
        self.doc_shard = np.concatenate(shard_of)
        self.doc_seq = np.concatenate(seq_of)
        self.doc_len = np.concatenate(len_of)
        self.epoch_tokens = int(self.doc_len.sum())
        if self.epoch_tokens < 2:
            raise UserError(f"{self.dir}: the train shards hold fewer than 2 tokens")
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # --- the train stream ---
    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(document order, cumulative token offsets) of one epoch."""
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.doc_len.size)
            cum = np.zeros(order.size + 1, dtype=np.int64)
            np.cumsum(self.doc_len[order], out=cum[1:])
            if len(self._epochs) >= 2:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = (order, cum)
        return self._epochs[epoch]

    def pieces(self, pos: int, n: int):
        """The documents covering stream tokens [pos, pos + n): yields
        (pool document index, first token in the document, token count, epoch)."""
        while n > 0:
            epoch, off = divmod(pos, self.epoch_tokens)
            order, cum = self.epoch_order(epoch)
            j = int(np.searchsorted(cum, off, side="right")) - 1
            doc = int(order[j])
            start = off - int(cum[j])
            take = min(n, int(self.doc_len[doc]) - start)
            yield doc, start, take, epoch
            pos += take
            n -= take

    def read(self, pos: int, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        k = 0
        for doc, start, take, _ in self.pieces(pos, n):
            seq = self.shards[self.doc_shard[doc]].reader[int(self.doc_seq[doc])]
            out[k : k + take] = seq[start : start + take]
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
                sh = self.shards[self.doc_shard[doc]]
                seq = int(self.doc_seq[doc])
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
    data = TokenData(token_dir, train_cfg.seed if seed is None else seed)
    return data.documents(train_cfg, step)
