"""Train-step benchmark on CPU: the bundled trainer (FSDP2 on gloo, z-loss, clipping,
spike check, shard reading, batch checksum) against a plain single-process PyTorch
loop (forward, cross-entropy, backward, AdamW) on the same model and batch, in the
same run. Also the model FLOPs per token of each preset.

Input: a token folder built from real text (Japanese Wikipedia leads, US inaugural
addresses, CPython stdlib) with a SentencePiece model trained on it here.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SHAPE = dict(dim=256, n_layers=4, n_heads=4)
SEQ, BATCH = 256, 8


def _texts(data: Path) -> dict[str, list[str]]:
    ja = [json.loads(ln)["text"] for ln in open(data / "ja/jawiki_annotated_corpus_leads.jsonl", encoding="utf-8")]
    en = [json.loads(ln)["text"] for ln in open(data / "en/us_inaugural_addresses_1789-2021.jsonl", encoding="utf-8")]
    with gzip.open(data / "code/python3.11.7_stdlib_toplevel.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(ln)["text"] for ln in f]
    return {"ja": ja, "en": en, "code": code}


def build_token_folder(data: Path, out: Path, vocab_size: int = 4000) -> Path:
    import sentencepiece as spm

    from shikomi.train.synthetic import write_token_folder

    texts = _texts(data)
    sample = out / "spm_train.txt"
    out.mkdir(parents=True, exist_ok=True)
    with open(sample, "w", encoding="utf-8") as f:
        for docs in texts.values():
            for t in docs[:1500]:
                f.write(t[:4000].replace("\n", " ") + "\n")
    spm.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(out / "tokenizer"),
        vocab_size=vocab_size,
        model_type="unigram",
        byte_fallback=True,
        character_coverage=0.9995,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=1,
        minloglevel=2,
        input_sentence_size=20000,
        shuffle_input_sentence=False,
    )
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    docs = {}
    for src, items in texts.items():
        enc = [(f"{src}-{i}", sp.encode(t) + [2]) for i, t in enumerate(items)]
        n_val = max(2, len(enc) // 20)
        docs[(src, "train")], docs[(src, "val")] = enc[n_val:], enc[:n_val]
    return write_token_folder(out / "tokenize", docs, vocab_size, 2)


def _cfg(token_dir: Path, run_dir: Path, steps: int):
    from shikomi.config import load_config

    return load_config(
        None,
        {
            "run_dir": str(run_dir),
            "train": {
                "input": str(token_dir),
                "device": "cpu",
                "model": {"preset": "tiny", **SHAPE},
                "seq_len": SEQ,
                "global_batch_size": BATCH,
                "micro_batch_size": BATCH,
                "max_steps": steps,
                "eval_interval": 0,
                "eval_sequences": 8,
                "checkpoint_interval": 0,
                "progress": False,
                "lr": 1e-3,
                "warmup_steps": 2,
            },
        },
    )


class PlainLoop:
    """The anchor: what a user writes by hand around the same model."""

    def __init__(self, cfg, batch, vocab: int):
        import torch

        from shikomi.train.model import Transformer, model_args

        torch.manual_seed(cfg.train.seed)
        self.model = Transformer(model_args(cfg.train.model, cfg.train, vocab))
        self.model.init_weights()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        self.x, self.y = batch[:, :-1], batch[:, 1:]

    def step(self, step: int) -> float:
        import torch.nn.functional as F

        logits = self.model(self.x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), self.y.reshape(-1))
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss.detach())


class OurLoop:
    """The bundled trainer's per-step work, one process (FSDP2 over a 1-rank gloo
    group): shard read, forward/backward with z-loss, all-reduce of the loss, grad
    clipping, spike check, AdamW, batch checksum."""

    def __init__(self, cfg):
        from shikomi.train.trainer import SpikeDetector, Trainer

        self.tr = Trainer(cfg)
        tc = cfg.train
        self.tr.spikes = SpikeDetector(tc.spike_zscore, tc.spike_window, tc.spike_min_history)

    def step(self, step: int) -> float:
        arr = self.tr._local_batch(step)
        res = self.tr.train_step(step, arr)
        self.tr._batch_crc(arr)
        return res["loss"]


def interleaved(cfg, steps: int, warm: int) -> tuple[dict, list[float]]:
    """Steps of the two loops in turn (the machine is shared: both see the same load)."""
    import torch
    import torch.distributed as dist

    from shikomi.train.data import TokenData

    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    try:
        ours = OurLoop(cfg)
        data = TokenData(cfg.train.input, cfg.train.seed)
        plain = PlainLoop(cfg, torch.from_numpy(data.batch(cfg.train, 0, 0, BATCH)), data.vocab_size)
        t = {"ours": [], "plain": [], "ours_cpu": [], "plain_cpu": []}
        losses = []
        for i in range(warm + steps):
            for name in ("ours", "plain") if i % 2 else ("plain", "ours"):
                t0, c0 = time.perf_counter(), time.process_time()
                if name == "ours":
                    losses.append(ours.step(i))
                else:
                    plain.step(i)
                if i >= warm:
                    t[name].append(time.perf_counter() - t0)
                    t[name + "_cpu"].append(time.process_time() - c0)
        return t, losses
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def flops_table() -> list[list]:
    from shikomi.config import load_config
    from shikomi.train.model import PRESETS, count_params, flops_per_token, model_args

    rows = []
    for name in PRESETS:
        tc = load_config(None, {"train": {"model": {"preset": name}, "seq_len": 2048}}).train
        a = model_args(tc.model, tc, 32000)
        p = count_params(a)
        rows.append(
            [
                name,
                f"{a.dim}/{a.n_layers}/{a.n_heads}/{a.ffn_dim}",
                f"{p['total'] / 1e6:,.1f}M",
                f"{flops_per_token(a, 2048):.3e}",
            ]
        )
    return rows


def bench(data: Path, quick: bool) -> dict:
    import torch

    steps = 10 if quick else 30
    warm = 3
    with tempfile.TemporaryDirectory(prefix="shikomi-bench-train-") as tmp:
        tmp = Path(tmp)
        token_dir = build_token_folder(data, tmp / "tok")
        cfg = _cfg(token_dir, tmp / "run", steps + warm)
        t, losses = interleaved(cfg, steps, warm)
    med = {k: statistics.median(v) for k, v in t.items()}
    best = {k: min(v) for k, v in t.items()}
    ratios = sorted(a / b for a, b in zip(t["ours"], t["plain"]))
    tokens = BATCH * SEQ
    from shikomi.train.model import flops_per_token, model_args

    a = model_args(cfg.train.model, cfg.train, 4000)
    fpt = flops_per_token(a, SEQ)

    def row(name, k):
        return [
            name,
            f"{best[k] * 1000:.0f}",
            f"{med[k] * 1000:.0f}",
            f"{med[k + '_cpu'] * 1000:.0f}",
            f"{tokens / best[k]:,.0f}",
            f"{fpt * tokens / best[k] / 1e9:.1f}",
            f"{best[k] / best['plain']:.2f} / {med[k] / med['plain']:.2f} / {med[k + '_cpu'] / med['plain_cpu']:.2f}",
        ]

    table = [row("plain PyTorch loop (1 process)", "plain"), row("shikomi trainer step (FSDP2/gloo, 1 rank)", "ours")]
    o, p = best["ours"], best["plain"]
    idx = index_memory(INDEX_DOCS // 10 if quick else INDEX_DOCS)
    mib = 1024 * 1024
    index_table = "| process | VmRSS (MiB) | RssAnon (MiB) | RssFile (MiB) | peak VmHWM (MiB) | open (s) |\n|---|---|---|---|---|---|\n"
    for name, r in [("builder (first open, builds the index)", idx["builder"])] + [
        (f"rank {i} (index already built)", r) for i, r in enumerate(idx["ranks"])
    ]:
        index_table += (
            f"| {name} | {r['VmRSS'] / mib:,.0f} | {r['RssAnon'] / mib:,.0f} | {r['RssFile'] / mib:,.0f} | "
            f"{r['VmHWM'] / mib:,.0f} | {r['open_s']:.1f} |\n"
        )
    return {
        "title": "train: CPU step time, bundled trainer vs plain PyTorch loop",
        "columns": [
            "loop",
            "best step (ms)",
            "median step (ms)",
            "median CPU time (ms)",
            "tokens/s (best)",
            "model GFLOP/s (best)",
            "ratio vs plain: best / median / CPU",
        ],
        "rows": table,
        "ratio": o / p,
        "ratio_median": med["ours"] / med["plain"],
        "ratio_cpu": med["ours_cpu"] / med["plain_cpu"],
        "ratio_quartiles": [ratios[len(ratios) // 4], ratios[len(ratios) // 2], ratios[3 * len(ratios) // 4]],
        "flops_per_token": {r[0]: float(r[3]) for r in flops_table()},
        "index": idx,
        "notes": [
            f"Model: dim {SHAPE['dim']}, {SHAPE['n_layers']} layers, {SHAPE['n_heads']} heads, vocab 4,000 "
            f"({fpt:.3e} FLOPs/token); batch {BATCH} × {SEQ} tokens of real ja/en/code text; "
            f"{torch.get_num_threads()} CPU threads; {steps} steps of each loop, interleaved one by one after "
            f"{warm} warmup steps (the machine is shared: best, median and process CPU time). Per-step ratio quartiles "
            f"{ratios[len(ratios) // 4]:.2f} / {ratios[len(ratios) // 2]:.2f} / {ratios[3 * len(ratios) // 4]:.2f}. "
            f"Trainer loss {losses[0]:.3f} -> {losses[-1]:.3f}.",
            f"Document index of {idx['documents']:,} train documents in {INDEX_SHARDS} shards (index only: "
            f"`.idx` files, empty `.bin`), {idx['index_bytes'] / mib:,.0f} MiB on disk, built in "
            f"{idx['build_wall_s']:.0f} s; then {len(idx['ranks'])} ranks open it at once and each reads 65 windows "
            "of 2,049 tokens at random positions over three epochs (host memory from /proc/self/status):",
            index_table,
            "Training FLOPs per token at seq_len 2048, vocab 32,000 (6·N_matmul + 12·L·T·d):",
            "| preset | d/L/heads/ffn | parameters | FLOPs/token |\n|---|---|---|---|\n"
            + "\n".join("| " + " | ".join(r) + " |" for r in flops_table()),
        ],
    }


# --------------------------------------------------------------------------- the document index at scale

INDEX_DOCS = 100_000_000
INDEX_SHARDS = 100

_INDEX_RANK = r"""
import json, sys, time
import numpy as np
from shikomi.train.data import TokenData

def status():
    out = {}
    for ln in open("/proc/self/status"):
        k, _, v = ln.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out

t0 = time.perf_counter()
d = TokenData(sys.argv[1], 1234)
t_open = time.perf_counter() - t0
rng = np.random.default_rng(int(sys.argv[2]))
E = d.epoch_tokens
t0 = time.perf_counter()
n = 0
# 64 windows of 2,049 tokens at random stream positions over three epochs, and across an epoch boundary
for pos in list(rng.integers(0, 3 * E, 64)) + [E - 1000]:
    for _ in d.pieces(int(pos), 2049):
        n += 1
t_walk = time.perf_counter() - t0
print(json.dumps({"open_s": t_open, "walk_s": t_walk, "pieces": n, "documents": d.n_docs, **status()}))
"""


def write_index_only_folder(out: Path, n_docs: int, n_shards: int, seed: int = 0) -> Path:
    """A token folder whose .idx files describe `n_docs` documents (lengths 20..4,000
    tokens) over `n_shards` train shards, with empty .bin files: the index, no tokens."""
    import struct

    import numpy as np

    from shikomi.core.schemas import TokenManifest
    from shikomi.core.shards import MAGIC, VERSION

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shards = []
    per = n_docs // n_shards
    for k in range(n_shards):
        n = per + (1 if k < n_docs % n_shards else 0)
        rel = f"train/ja/ja-{k:05d}"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        lengths = rng.integers(20, 4000, n, dtype=np.int32)
        offsets = np.zeros(n, np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * 2, out=offsets[1:])
        with open(out / (rel + ".idx"), "wb") as f:
            f.write(MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", 8))
            f.write(struct.pack("<Q", n) + struct.pack("<Q", n + 1))
            f.write(lengths.tobytes())
            f.write(offsets.tobytes())
            f.write(np.arange(n + 1, dtype=np.int64).tobytes())
        (out / (rel + ".bin")).write_bytes(b"")
        shards.append(
            {
                "path": rel,
                "sha256": "0" * 64,
                "idx_sha256": "0" * 64,
                "documents": int(n),
                "tokens": int(lengths.sum()),
                "source": "ja",
                "split": "train",
                "ids_path": rel + ".ids.jsonl",
            }
        )
    manifest = {
        "tokenizer": {"path": "tokenizer.model", "sha256": "0" * 64, "vocab_size": 32000, "eos_id": 2},
        "dtype": "uint16",
        "seed": seed,
        "shards": shards,
    }
    TokenManifest.parse(manifest, out / TokenManifest.FILENAME).write(out)
    return out


def index_memory(n_docs: int = INDEX_DOCS, n_shards: int = INDEX_SHARDS, ranks: int = 2) -> dict:
    """Build the document index of `n_docs` documents once (as `shikomi train` does
    before torchrun), then open it in `ranks` processes at once, each reading 65
    windows at random stream positions; host memory from /proc/self/status."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="shikomi-bench-index-") as tmp:
        folder = write_index_only_folder(Path(tmp) / "tok", n_docs, n_shards)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        b = subprocess.run(
            [sys.executable, "-c", _INDEX_RANK, str(folder), "0"], capture_output=True, text=True, env=env
        )
        build_s = time.perf_counter() - t0
        if b.returncode:
            raise RuntimeError(b.stderr[-2000:])
        builder = json.loads(b.stdout)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _INDEX_RANK, str(folder), str(r + 1)], stdout=subprocess.PIPE, text=True, env=env
            )
            for r in range(ranks)
        ]
        rank_rows = [json.loads(p.communicate()[0]) for p in procs]
        index_bytes = sum(p.stat().st_size for p in (folder / "index").rglob("*") if p.is_file())
    return {
        "documents": n_docs,
        "build_wall_s": build_s,
        "builder": builder,
        "ranks": rank_rows,
        "index_bytes": index_bytes,
    }
