"""Token shards in Megatron's indexed-dataset format, and their manifest.

`NAME.bin` holds the tokens of every document back to back (EOS appended by the
tokenizer stage). `NAME.idx`:

    b"MMIDIDX\\x00\\x00"          magic (9 bytes)
    <Q  version = 1
    <B  dtype code (8 = uint16, 4 = int32)
    <Q  number of sequences
    <Q  number of document indices (sequences + 1)
    int32[n]  sequence lengths (tokens)
    int64[n]  byte offsets of each sequence in .bin
    int64[n+1] document indices (0..n: one document per sequence)

Megatron-LM and GPT-NeoX read these files as they are. Each token folder has a
`manifest.json`, written and read through `shikomi.core.schemas.TokenManifest`.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {8: np.uint16, 4: np.int32}
CODE_OF = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
UINT16_MAX_VOCAB = 65_500


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < UINT16_MAX_VOCAB else np.dtype(np.int32)


# Not datatrove's Megatron writer: it encodes with `tokenizers` in file order; we merge shuffled SentencePiece parts.
class ShardWriter:
    """Append documents (token arrays) to NAME.bin, write NAME.idx on close.

    Writes go to `.tmp` files renamed on close, so a killed writer never leaves a
    shard that looks complete. With `digest`, the sha256 of both files is taken while
    they are written (`sha256`, `idx_sha256` after close): no second read.
    """

    def __init__(self, prefix: str | Path, dtype: np.dtype, digest: bool = False):
        self.prefix = Path(prefix)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self._bin_tmp = self.prefix.with_name(self.prefix.name + ".bin.tmp")
        self._bin = open(self._bin_tmp, "wb")
        self.lengths: list[int] = []
        self.tokens = 0
        self._digest = hashlib.sha256() if digest else None
        self.sha256: str | None = None
        self.idx_sha256: str | None = None

    def _write_bin(self, arr: np.ndarray) -> None:
        data = np.ascontiguousarray(arr).data
        self._bin.write(data)
        if self._digest is not None:
            self._digest.update(data)

    def add(self, tokens) -> None:
        arr = np.asarray(tokens, dtype=self.dtype)
        self._write_bin(arr)
        self.lengths.append(int(arr.size))
        self.tokens += int(arr.size)

    def add_many(self, tokens, lengths) -> None:
        """Append several documents at once: their tokens back to back, and their lengths."""
        arr = np.asarray(tokens, dtype=self.dtype)
        lengths = np.asarray(lengths, dtype=np.int64).ravel()
        if int(lengths.sum()) != arr.size:
            raise ValueError(f"add_many: {arr.size} tokens but the lengths sum to {int(lengths.sum())}")
        self._write_bin(arr)
        self.lengths.extend(lengths.tolist())
        self.tokens += int(arr.size)

    @property
    def documents(self) -> int:
        return len(self.lengths)

    def close(self) -> tuple[Path, Path]:
        self._bin.close()
        n = len(self.lengths)
        lengths = np.asarray(self.lengths, dtype=np.int32)
        offsets = np.zeros(n, dtype=np.int64)
        if n > 1:
            offsets[1:] = np.cumsum(lengths[:-1].astype(np.int64)) * self.dtype.itemsize
        doc_idx = np.arange(n + 1, dtype=np.int64)
        idx_tmp = self.prefix.with_name(self.prefix.name + ".idx.tmp")
        head = MAGIC + struct.pack("<QBQQ", VERSION, CODE_OF[self.dtype], n, n + 1)
        idx_digest = hashlib.sha256() if self._digest is not None else None
        with open(idx_tmp, "wb") as f:
            for part in (head, lengths.tobytes(), offsets.tobytes(), doc_idx.tobytes()):
                f.write(part)
                if idx_digest is not None:
                    idx_digest.update(part)
        if idx_digest is not None:
            self.sha256, self.idx_sha256 = self._digest.hexdigest(), idx_digest.hexdigest()
        bin_path = self.prefix.with_name(self.prefix.name + ".bin")
        idx_path = self.prefix.with_name(self.prefix.name + ".idx")
        self._bin_tmp.replace(bin_path)
        idx_tmp.replace(idx_path)
        return bin_path, idx_path


class ShardReader:
    """Memory-mapped reader of one NAME.bin/NAME.idx pair."""

    def __init__(self, prefix: str | Path):
        prefix = Path(prefix)
        if prefix.suffix in (".bin", ".idx"):
            prefix = prefix.with_suffix("")
        self.prefix = prefix
        # memory-mapped: a rank that reads from many shards does not hold their index arrays
        idx = np.memmap(Path(str(prefix) + ".idx"), dtype=np.uint8, mode="r")
        if bytes(idx[:9]) != MAGIC:
            raise ValueError(f"{prefix}.idx: not a Megatron indexed dataset (bad magic)")
        (version,) = struct.unpack_from("<Q", idx, 9)
        if version != VERSION:
            raise ValueError(f"{prefix}.idx: unsupported version {version}")
        (code,) = struct.unpack_from("<B", idx, 17)
        self.dtype = np.dtype(DTYPE_CODES[code])
        (n,) = struct.unpack_from("<Q", idx, 18)
        (n_docs,) = struct.unpack_from("<Q", idx, 26)
        off = 34
        self.lengths = np.frombuffer(idx, dtype=np.int32, count=n, offset=off)
        off += 4 * n
        self.offsets = np.frombuffer(idx, dtype=np.int64, count=n, offset=off)
        off += 8 * n
        self.doc_idx = np.frombuffer(idx, dtype=np.int64, count=n_docs, offset=off)
        bin_path = Path(str(prefix) + ".bin")
        self.tokens = (
            np.memmap(bin_path, dtype=self.dtype, mode="r") if bin_path.stat().st_size else np.zeros(0, self.dtype)
        )

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.offsets[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.lengths[i])]
