"""The training loop, one process per device, started by torchrun (see launch.py).

    python -m torch.distributed.run --nproc_per_node N -m shikomi.train.trainer \
        --config <run_dir>/train/config.yaml [--resume] [--max-steps S]

Step `s` (0-based) trains on the global batch `data.TokenData.batch(s)`; a checkpoint
`step_N` holds the state after N steps, so a resumed run continues at step N with
the same batches, learning rates and loss history as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from shikomi.core.schemas import MetricsLog
from shikomi.train import checkpoint as ckpt
from shikomi.train.data import TokenData, batch_split, seq_len_at, token_dir_for, tokens_before
from shikomi.train.devices import bf16_supported, peak_bf16_flops
from shikomi.train.model import Transformer, count_params, flops_per_token, loss_fn, model_args

# models larger than this are built on the meta device and initialised after sharding
META_INIT_PARAMS = 1_000_000_000


def lr_at(tc, step: int) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr_ratio · lr` at `max_steps`."""
    warmup = tc.warmup_steps if tc.warmup_steps is not None else max(1, tc.max_steps // 100)
    if step < warmup:
        return tc.lr * (step + 1) / warmup
    span = max(1, tc.max_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = tc.lr * tc.min_lr_ratio
    return floor + 0.5 * (tc.lr - floor) * (1.0 + math.cos(math.pi * progress))


class SpikeDetector:
    """Flags a step whose loss is not finite, or an upward outlier against the last
    `window` accepted losses (after `min_history` of them). The z-score is robust,
    (loss - median) / (1.4826 · MAD), so a falling loss early in training and earlier
    spikes do not widen the band."""

    def __init__(self, zscore: float, window: int, min_history: int, history=()):
        self.zscore, self.min_history = zscore, min_history
        self.history: deque = deque(history, maxlen=window)

    def check(self, loss: float, grad_norm: float) -> tuple[str | None, float | None]:
        if not math.isfinite(loss):
            return "nan_loss", None
        if not math.isfinite(grad_norm):
            return "nan_grad", None
        if len(self.history) >= self.min_history:
            h = np.asarray(self.history, dtype=np.float64)
            med = float(np.median(h))
            mad = 1.4826 * float(np.median(np.abs(h - med)))
            z = (loss - med) / max(mad, 1e-6)
            if z > self.zscore:
                return "zscore", float(z)
            return None, float(z)
        return None, None

    def accept(self, loss: float) -> None:
        self.history.append(loss)


class Trainer:
    def __init__(self, cfg, resume: bool = False, max_steps: int | None = None):
        self.cfg, self.tc = cfg, cfg.train
        self.max_steps = max_steps if max_steps is not None else self.tc.max_steps
        self.resume = resume
        self.out = cfg.stage_dir("train")
        self.metrics = MetricsLog(self.out)
        self.ckpt_root = self.out / "checkpoints"
        self._stop: str | None = None  # the name of the signal that asked to stop
        # from the start: a signal during setup stops the run after its first step
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._setup_dist()
        # rank 0 builds the shared document index if it is missing (`shikomi train` builds it first)
        if self.rank == 0:
            self.data = TokenData(token_dir_for(cfg), self.tc.seed, self.tc.shuffle_block_docs)
        dist.barrier()
        if self.rank != 0:
            self.data = TokenData(token_dir_for(cfg), self.tc.seed, self.tc.shuffle_block_docs)
        self._check_batch()
        self._build_model()
        self.pool = ThreadPoolExecutor(1)

    # --- setup ---
    def _setup_dist(self) -> None:
        tc = self.tc
        want_cuda = tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            from shikomi.errors import UserError

            raise UserError("train.device is 'cuda' but no GPU is visible")
        if "RANK" not in os.environ:  # one process without torchrun
            os.environ.update(
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=os.environ.get("MASTER_PORT", str(_free_port())),
            )
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if want_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if tc.deterministic:
            # cuBLAS needs a fixed workspace for deterministic matmuls (set before the first CUDA call)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        if not dist.is_initialized():
            dist.init_process_group(
                "nccl" if want_cuda else "gloo",
                timeout=timedelta(seconds=tc.dist_timeout_s),
                device_id=self.device if want_cuda else None,
            )
        self.bf16 = tc.precision == "bf16" or (tc.precision == "auto" and want_cuda)
        if self.bf16 and want_cuda and not bf16_supported(torch.cuda.get_device_capability(self.device)):
            name = torch.cuda.get_device_name(self.device)
            if tc.precision == "bf16":
                from shikomi.errors import UserError

                raise UserError(f"train.precision is bf16 but {name} has no bf16 support (compute capability < 8.0)")
            self.bf16 = False  # e.g. V100: fp32
            if self.rank == 0:
                print(f"[train] {name} has no bf16 support: training in fp32", file=sys.stderr)

    def _check_batch(self) -> None:
        self.per_rank, self.micro, self.accum = batch_split(self.tc, self.world)

    def _build_model(self) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        tc = self.tc
        self.args = model_args(tc.model, tc, self.data.vocab_size)
        torch.manual_seed(tc.seed)
        big = count_params(self.args)["total"] > META_INIT_PARAMS
        if big:  # never materialise a billion-parameter model on every rank
            with torch.device("meta"):
                model = Transformer(self.args)
        else:  # identical initial weights on any number of ranks
            model = Transformer(self.args)
            model.init_weights()
            model.to(self.device)
        model.activation_checkpointing = tc.activation_checkpointing
        mesh = init_device_mesh(self.device.type, (self.world,))
        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if self.bf16
            else MixedPrecisionPolicy()
        )
        for i, layer in enumerate(model.layers):
            if tc.compile:
                layer = torch.compile(layer)
                model.layers[i] = layer
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        if big:
            model.to_empty(device=self.device)
            if self.device.type != "cuda":
                # DTensor's random ops are offset per shard on CUDA only; elsewhere every rank would
                # draw the same numbers for its shard, so each rank gets its own stream
                torch.manual_seed(tc.seed * 100_003 + self.rank)
            model.init_weights()
        self.model = model
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=(tc.beta1, tc.beta2),
            eps=tc.eps,
            foreach=True,
        )
        self.flops_per_token = flops_per_token(self.args, tc.seq_len)
        self.peak = tc.peak_tflops * 1e12 if tc.peak_tflops else self._device_peak()

    def _device_peak(self) -> float | None:
        """Dense bf16 peak of the device by its exact name; None (no MFU) on CPU, in fp32,
        and on GPUs that are not in shikomi.train.devices.PEAK_BF16 (with a warning)."""
        if self.device.type != "cuda":
            return None
        name = torch.cuda.get_device_name(self.device)
        if not self.bf16:
            if self.rank == 0:
                print(f"[train] fp32 on {name}: no MFU (set train.peak_tflops to log one)", file=sys.stderr)
            return None
        peak = peak_bf16_flops(name)
        if peak is None and self.rank == 0:
            print(
                f"[train] warning: no bf16 peak known for {name!r}; MFU is not logged (set train.peak_tflops)",
                file=sys.stderr,
            )
        return peak

    # --- data ---
    def _local_batch(self, step: int) -> np.ndarray:
        tc = self.tc
        first = self.rank * self.per_rank
        arr = self.data.batch(tc, step, first, self.per_rank)
        if step in tc.inject_spike_steps:  # uniformly random tokens: a high-loss batch, the same on any ranks
            for i in range(arr.shape[0]):
                rng = np.random.default_rng([tc.seed, step, first + i])
                arr[i] = rng.integers(0, self.data.vocab_size, size=arr.shape[1])
        return arr

    def _batch_crc(self, arr: np.ndarray) -> int:
        """crc32 of the global batch's tokens, sample by sample: shows the data order
        does not depend on the number of ranks."""
        v = torch.zeros(self.tc.global_batch_size, dtype=torch.int64, device=self.device)
        first = self.rank * self.per_rank
        for i in range(arr.shape[0]):
            v[first + i] = zlib.crc32(np.ascontiguousarray(arr[i], dtype=np.int64).tobytes())
        dist.all_reduce(v)
        return zlib.crc32(v.cpu().numpy().tobytes())

    # --- one step ---
    def train_step(self, step: int, arr: np.ndarray) -> dict:
        tc = self.tc
        self.model.train()
        batch = torch.from_numpy(arr).to(self.device, non_blocking=True)
        ce_sum = torch.zeros((), device=self.device)
        z_sum = torch.zeros((), device=self.device)
        for m in range(self.accum):
            mb = batch[m * self.micro : (m + 1) * self.micro]
            x, y = mb[:, :-1], mb[:, 1:]
            logits = self.model(x)
            ce, z = loss_fn(logits, y, tc.z_loss)
            loss = (ce + z) / self.accum
            if step in tc.inject_nan_steps:
                loss = loss * float("nan")
                ce = ce * float("nan")
            loss.backward()
            ce_sum += ce.detach()
            z_sum += z.detach()
        stats = torch.stack([ce_sum, z_sum]) / (self.accum * self.world)
        dist.all_reduce(stats)
        params = [p for p in self.model.parameters() if p.grad is not None]
        gn = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip if tc.grad_clip > 0 else float("inf"))
        if hasattr(gn, "full_tensor"):
            gn = gn.full_tensor()
        loss_v, z_v, gn_v = float(stats[0]), float(stats[1]), float(gn)
        reason, z = self.spikes.check(loss_v, gn_v) if tc.spike_skip else (None, None)
        if reason is None and not (math.isfinite(loss_v) and math.isfinite(gn_v)):
            reason = "nan_loss"  # with spike_skip off a NaN still never reaches the weights
        lr = lr_at(tc, step)
        if reason is None:
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            self.optimizer.step()
            self.spikes.accept(loss_v)
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss_v, "z_loss": z_v, "grad_norm": gn_v, "lr": lr, "skipped": reason, "zscore": z}

    # --- evaluation ---
    @torch.no_grad()
    def evaluate(self) -> dict:
        tc = self.tc
        self.model.eval()
        out = {}
        for source in self.data.val_sources():
            windows = self.data.val_windows(source, tc.seq_len, tc.eval_sequences)
            if windows.shape[0] == 0:
                continue
            mine = windows[self.rank :: self.world]
            n_batches = math.ceil(math.ceil(windows.shape[0] / self.world) / self.micro)
            acc = torch.zeros(2, dtype=torch.float64, device=self.device)
            for b in range(n_batches):  # every rank runs the same number of forwards (FSDP)
                chunk = mine[b * self.micro : (b + 1) * self.micro]
                real = chunk.shape[0] > 0
                if not real:
                    chunk = windows[:1]
                t = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
                logits = self.model(t[:, :-1])
                ce = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), t[:, 1:].reshape(-1), reduction="sum"
                )
                if real:
                    acc += torch.stack(
                        [ce.double(), torch.tensor(float(t[:, 1:].numel()), dtype=torch.float64, device=self.device)]
                    )
            dist.all_reduce(acc)
            val = float(acc[0] / acc[1])
            out[f"val_loss/{source}"] = val
            out[f"val_ppl/{source}"] = math.exp(min(val, 50.0))
        self.model.train()
        return out

    # --- checkpoints and logs ---
    def _trainer_state(self, step: int) -> dict:
        return {
            "step": step,
            "tokens": tokens_before(self.tc, step),
            "world_size": self.world,
            "model_args": dataclasses.asdict(self.args),
            "eos_id": self.data.eos_id,
            "token_dir": str(self.data.dir),
            "loss_history": list(self.spikes.history),
            "seed": self.tc.seed,
            "config": self.cfg.model_dump(mode="json"),
        }

    def save(self, step: int) -> Path:
        return ckpt.save(
            self.ckpt_root, step, self.model, self.optimizer, self._trainer_state(step), keep=self.tc.keep_checkpoints
        )

    def _truncate_log(self, name: str, start: int) -> None:
        p = self.out / name
        if self.rank != 0 or not p.is_file():
            return
        if start == 0:
            p.unlink()
            return
        keep = [ln for ln in p.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) < start]
        tmp = p.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        tmp.replace(p)

    def _log(self, name: str, row: dict) -> None:
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.out / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _log_spike(self, step: int, res: dict) -> None:
        """spikes.jsonl: the skipped step and the document ids of its batch."""
        tc = self.tc
        injected = step in tc.inject_spike_steps or step in tc.inject_nan_steps
        docs = self.data.documents(tc, step)
        self._log(
            "spikes.jsonl",
            {
                "step": step,
                "reason": res["skipped"],
                "loss": res["loss"],
                "zscore": res["zscore"],
                "grad_norm": res["grad_norm"],
                "injected": injected,
                "documents": sorted({d["id"] for d in docs}),
                "sources": sorted({d["source"] for d in docs}),
            },
        )
        print(
            f"\n[train] step {step}: update skipped ({res['skipped']}, loss {res['loss']:.4f}); "
            f"its documents are in {self.out / 'spikes.jsonl'}",
            file=sys.stderr,
        )

    def _on_signal(self, signum, frame) -> None:
        """SIGTERM or SIGINT: finish the step, checkpoint, exit 0. A second SIGINT
        (Ctrl-C twice) aborts at once; the last complete checkpoint stays."""
        name = signal.Signals(signum).name
        if self._stop is not None and signum == signal.SIGINT:
            print(f"\n[train] {name} again: aborting without a checkpoint", file=sys.stderr, flush=True)
            os._exit(130)
        if self._stop is None:
            self._stop = name

    def _write_stopped(self, step: int, path: Path | None) -> None:
        """stopped.json: why and where a run stopped before max_steps (read by the launcher)."""
        if self.rank != 0:
            return
        info = {"step": step, "signal": self._stop, "checkpoint": str(path) if path else None}
        tmp = self.out / "stopped.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.out / "stopped.json")

    # --- the loop ---
    def fit(self) -> dict:
        tc = self.tc
        self.out.mkdir(parents=True, exist_ok=True)
        resolved = self.out / "config.yaml"
        if self.rank == 0 and not resolved.is_file():  # started by torchrun directly (e.g. an sbatch script)
            import yaml

            resolved.write_text(yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        start = 0
        history: list = []
        if self.resume:
            path = ckpt.latest(self.ckpt_root)
            if path is not None:
                st = ckpt.load(path, self.model, self.optimizer)
                start, history = int(st["step"]), st.get("loss_history", [])
                if self.rank == 0:
                    print(
                        f"[train] resumed from {path} (step {start}, trained on {st['world_size']} ranks, "
                        f"now {self.world})",
                        file=sys.stderr,
                    )
        self.spikes = SpikeDetector(tc.spike_zscore, tc.spike_window, tc.spike_min_history, history)
        if self.rank == 0:
            self.metrics.truncate(start)
        self._truncate_log("spikes.jsonl", start)
        if self.rank == 0:
            (self.out / "stopped.json").unlink(missing_ok=True)
        dist.barrier()
        tb = self._tensorboard() if self.rank == 0 and tc.tensorboard else None
        bar = None
        if self.rank == 0 and tc.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=self.max_steps,
                initial=start,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=1.0,
            )
        if self.rank == 0:
            p = count_params(self.args)
            print(
                f"[train] {tc.model.preset} model: {p['total']:,} parameters ({p['body']:,} in blocks), "
                f"{self.flops_per_token:.3e} FLOPs/token; {self.world} ranks on {self.device.type}, "
                f"global batch {tc.global_batch_size} × {tc.seq_len} (micro {self.micro}, accum {self.accum})",
                file=sys.stderr,
            )
        last_eval: dict = {}
        last_saved = start
        step = start
        nxt = self.pool.submit(self._local_batch, step) if step < self.max_steps else None
        while step < self.max_steps:
            t0 = time.perf_counter()
            arr = nxt.result()
            nxt = self.pool.submit(self._local_batch, step + 1) if step + 1 < self.max_steps else None
            res = self.train_step(step, arr)
            logged = step % tc.log_interval == 0 or step + 1 == self.max_steps
            crc = self._batch_crc(arr) if logged else None
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            L = seq_len_at(tc, step)
            ntok = tc.global_batch_size * L
            row = {
                "step": step,
                "tokens": tokens_before(tc, step + 1),
                "loss": res["loss"],
                "lr": res["lr"],
                "grad_norm": res["grad_norm"],
                "tokens_per_s": ntok / dt,
                "z_loss": res["z_loss"],
                "seq_len": L,
                "step_time_s": dt,
            }
            if self.peak:
                row["mfu"] = flops_per_token(self.args, L) * ntok / dt / (self.peak * self.world)
            if crc is not None:
                row["batch_crc"] = crc
            if res["skipped"]:
                row["skipped"] = res["skipped"]
                if self.rank == 0:
                    self._log_spike(step, res)
            done = step + 1
            if (tc.eval_interval and done % tc.eval_interval == 0) or done == self.max_steps:
                last_eval = self.evaluate()
                row.update(last_eval)
            if tc.inject_step_sleep_s:
                time.sleep(tc.inject_step_sleep_s)
            stop = torch.tensor(int(self._stop is not None), device=self.device)
            dist.all_reduce(stop, op=dist.ReduceOp.MAX)
            if self.rank == 0 and (logged or "skipped" in row or last_eval.keys() & row.keys()):
                self.metrics.append(row)
                if tb is not None:
                    for k, v in row.items():
                        if isinstance(v, (int, float)) and k not in ("step", "batch_crc"):
                            tb.add_scalar(k, v, step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{res['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}", refresh=False)
            step = done
            saved = None
            if (tc.checkpoint_interval and step % tc.checkpoint_interval == 0) or step == self.max_steps or int(stop):
                saved = self.save(step)
                last_saved = step
            if int(stop) and step < self.max_steps:
                self._stop = self._stop or "SIGTERM"  # another rank was signalled
                self._write_stopped(step, saved)
                if self.rank == 0:
                    print(f"\n[train] {self._stop}: saved step {step} to {saved}", file=sys.stderr, flush=True)
                break
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
        self.pool.shutdown()
        out = {"step": step, "last_saved": last_saved, **last_eval}
        if step < self.max_steps and self._stop:
            out["stopped"] = self._stop
        return out

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from shikomi.errors import UserError

            raise UserError(
                "train.tensorboard is on but the `tensorboard` package is not installed (pip install tensorboard)"
            ) from None
        return SummaryWriter(str(self.out / "tensorboard"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_launcher() -> None:
    """torchrun starts workers in their own sessions: if it is killed (kill -9, OOM
    killer), they would train on as orphans and write checkpoints. Linux only."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover
        return
    if os.getppid() == 1:  # the launcher is already gone
        os._exit(1)


def main(argv=None) -> int:
    from shikomi.config import load_config
    from shikomi.errors import UserError

    ap = argparse.ArgumentParser(prog="python -m shikomi.train.trainer")
    ap.add_argument("--config", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-steps", type=int)
    args = ap.parse_args(argv)
    _die_with_launcher()
    try:
        cfg = load_config(args.config)
        trainer = Trainer(cfg, resume=args.resume, max_steps=args.max_steps)
        res = trainer.fit()
        if trainer.rank == 0:
            (cfg.stage_dir("train") / "result.json").write_text(json.dumps(res, indent=1) + "\n")
    except UserError as e:
        print(f"shikomi: error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
