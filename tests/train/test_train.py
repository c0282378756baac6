"""Unit tests of the train stage, in one process: model, recipe, data order,
checkpoint picking, config errors, launch command and the Hugging Face export."""

from __future__ import annotations

import json
import math
import warnings
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from shikomi.config import load_config
from shikomi.errors import UserError
from shikomi.train import checkpoint as ckpt
from shikomi.train.data import TokenData, seq_len_at, step_documents, tokens_before
from shikomi.train.model import PRESETS, Transformer, count_params, flops_per_token, loss_fn, model_args
from shikomi.train.synthetic import synthetic_token_folder, write_token_folder
from shikomi.train.trainer import SpikeDetector, lr_at


def train_cfg(**kw):
    base = dict(seq_len=32, global_batch_size=6, micro_batch_size=1, max_steps=100)
    base.update(kw)
    return load_config(None, {"train": base}).train


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return synthetic_token_folder(tmp_path_factory.mktemp("tok") / "tokenize", docs_per_source=40)


# --- model and recipe ---


def test_presets_follow_the_gpt3_table_and_flops_per_token():
    tc = train_cfg(seq_len=2048)
    sizes = {}
    for name in PRESETS:
        a = model_args(load_config(None, {"train": {"model": {"preset": name}}}).train.model, tc, 32000)
        sizes[name] = count_params(a)
        assert a.dim % a.n_heads == 0
        assert flops_per_token(a, 2048) > 6 * sizes[name]["body"]
    # blocks only (no embeddings): GPT-3 Small ~85M, XL ~1.2B, 13B ~12.7B
    assert 80e6 < sizes["125M"]["body"] < 90e6
    assert 1.1e9 < sizes["1.3B"]["body"] < 1.3e9
    assert 3.3e9 < sizes["3.6B"]["body"] < 3.7e9
    assert 12e9 < sizes["13B"]["body"] < 13.5e9


def test_small_init_depth_scaled_outputs_and_scaled_embedding():
    cfg = load_config(None, {"train": {"model": {"preset": "tiny", "dim": 256, "n_layers": 8, "n_heads": 4}}})
    a = model_args(cfg.train.model, cfg.train, 4000)
    torch.manual_seed(0)
    m = Transformer(a)
    m.init_weights()
    std = math.sqrt(2 / (5 * 256))
    assert m.embed_tokens.weight.std().item() == pytest.approx(std, rel=0.02)
    assert m.layers[0].self_attn.q_proj.weight.std().item() == pytest.approx(std, rel=0.05)
    assert m.layers[3].self_attn.o_proj.weight.std().item() == pytest.approx(std / math.sqrt(16), rel=0.05)
    assert m.layers[3].mlp.down_proj.weight.std().item() == pytest.approx(std / math.sqrt(16), rel=0.05)
    assert torch.all(m.norm.weight == 1)
    # the embedding output is multiplied by sqrt(d): the first block sees ~unit-scale inputs
    seen = {}
    m.layers[0].register_forward_pre_hook(lambda mod, inp: seen.update(h=inp[0]))
    m(torch.randint(0, 4000, (2, 16)))
    assert seen["h"].std().item() == pytest.approx(std * 16, rel=0.1)
    off = load_config(None, {"train": {"scaled_embed": False, "scaled_init": False}}).train
    b = model_args(off.model, off, 100)
    assert b.embed_scale == 1.0


def test_z_loss_is_mean_squared_logsumexp():
    logits = torch.randn(3, 5, 11)
    y = torch.randint(0, 11, (3, 5))
    ce, z = loss_fn(logits, y, 1e-4)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.view(-1, 11), y.view(-1)).item())
    assert z.item() == pytest.approx(1e-4 * (torch.logsumexp(logits, -1) ** 2).mean().item(), rel=1e-5)
    assert loss_fn(logits, y, 0.0)[1].item() == 0.0


def test_lr_warmup_then_cosine_to_ten_percent():
    tc = train_cfg(lr=2.5e-4, warmup_steps=10, max_steps=110)
    assert lr_at(tc, 0) == pytest.approx(2.5e-5)
    assert lr_at(tc, 9) == pytest.approx(2.5e-4)
    assert lr_at(tc, 60) == pytest.approx(2.5e-4 * (0.1 + 0.9 * 0.5))
    assert lr_at(tc, 110) == pytest.approx(2.5e-5)
    defaults = load_config(None).train
    assert (
        defaults.lr,
        defaults.beta1,
        defaults.beta2,
        defaults.weight_decay,
        defaults.z_loss,
        defaults.grad_clip,
    ) == (2.5e-4, 0.9, 0.95, 0.1, 1e-4, 1.0)


def test_spike_detector_flags_nan_and_upward_outliers_only():
    d = SpikeDetector(zscore=4.0, window=10, min_history=5)
    for v in [3.0, 2.9, 3.1, 3.0, 2.95, 3.05]:
        assert d.check(v, 1.0)[0] is None
        d.accept(v)
    assert d.check(float("nan"), 1.0)[0] == "nan_loss"
    assert d.check(3.0, float("inf"))[0] == "nan_grad"
    assert d.check(1.0, 1.0)[0] is None  # a sudden drop is not a spike
    reason, z = d.check(6.0, 1.0)
    assert reason == "zscore" and z > 4


# --- data ---


def test_sequence_length_warmup_counts_tokens_exactly():
    tc = train_cfg(seq_len=256, seq_warmup_steps=10, seq_warmup_start=64, global_batch_size=4)
    lens = [seq_len_at(tc, s) for s in range(14)]
    assert lens[0] == 64 and lens[-1] == 256 and lens == sorted(lens) and all(n % 8 == 0 for n in lens)
    for s in range(14):
        assert tokens_before(tc, s) == 4 * sum(lens[:s])


def test_sample_order_is_a_pure_function_of_seed_and_step(tokens):
    tc = train_cfg()
    a, b = TokenData(tokens, 7), TokenData(tokens, 7)
    full = a.batch(tc, 5, 0, 6)
    assert np.array_equal(full, b.batch(tc, 5, 0, 6))
    # any split over ranks reads the same global batch
    for world in (1, 2, 3, 6):
        per = 6 // world
        parts = np.concatenate([b.batch(tc, 5, r * per, per) for r in range(world)])
        assert np.array_equal(parts, full)
    assert not np.array_equal(full, TokenData(tokens, 8).batch(tc, 5, 0, 6))
    # consecutive windows share one token (the target of one is the input of the next)
    assert full[0, -1] == full[1, 0]


def test_every_document_once_per_epoch(tokens):
    d = TokenData(tokens, 3)
    seen = [doc for doc, start, take, epoch in d.pieces(0, d.epoch_tokens)]
    assert sorted(seen) == list(range(d.n_docs))
    # the stream goes on into the next epoch, in a new order
    nxt = [doc for doc, _, _, epoch in d.pieces(d.epoch_tokens, d.epoch_tokens)]
    assert sorted(nxt) == sorted(seen) and nxt != seen
    # doc_start (used by `shikomi find`) agrees with the stream
    pos = 0
    for doc, start, take, _ in d.pieces(0, d.epoch_tokens):
        assert start == 0 and d.doc_start(doc, 0) == pos and d.doc_length(doc) == take
        pos += take
    assert set(d.val_sources()) == {"ja", "en", "code"}
    # validation never reads train documents
    train_ids = {i for s in d.shards if s.split == "train" for i in s.ids}
    val_ids = {i for s in d.shards if s.split == "val" for i in s.ids}
    assert not train_ids & val_ids


def test_step_documents_name_the_tokens_of_the_batch(tokens):
    tc = train_cfg(seed=11)
    docs = step_documents(tokens, tc, 9)
    assert {d["sample"] for d in docs} == set(range(6))
    data = TokenData(tokens, 11)
    batch = data.batch(tc, 9, 0, 6)
    by_id = {}
    for sh in data.shards:
        for i, doc_id in enumerate(sh.ids):
            by_id[doc_id] = (sh, i)
    for s in range(6):
        pieces = [d for d in docs if d["sample"] == s]
        rebuilt = np.concatenate(
            [
                np.asarray(by_id[p["id"]][0].reader[by_id[p["id"]][1]])[p["offset"] : p["offset"] + p["tokens"]]
                for p in pieces
            ]
        )
        assert np.array_equal(rebuilt, batch[s])
        assert all(p["source"] in ("ja", "en", "code") and p["shard"].startswith("train/") for p in pieces)


def test_validation_windows_per_source(tokens):
    d = TokenData(tokens, 0)
    w = d.val_windows("ja", 32, 3)
    assert w.shape == (3, 33)
    assert np.array_equal(w[0, -1:], w[1, :1])


def test_bad_token_folders_are_one_line_errors(tmp_path, tokens):
    with pytest.raises(UserError, match="no manifest.json"):
        TokenData(tmp_path, 0)
    broken = tmp_path / "broken"
    write_token_folder(broken, {("ja", "train"): [("a", [5, 6, 2])]}, 100, 2)
    (broken / "train/ja/ja-00000.bin").unlink()
    with pytest.raises(UserError, match="is missing"):
        TokenData(broken, 0)
    only_val = tmp_path / "only_val"
    write_token_folder(only_val, {("ja", "val"): [("a", [5, 6, 2])]}, 100, 2)
    with pytest.raises(UserError, match="no train shards"):
        TokenData(only_val, 0)


# --- config, checkpoints, launch ---


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr_peak: 1.0\n")
    with pytest.raises(UserError, match="unknown key 'train.lr_peak'"):
        load_config(p)
    p.write_text("train:\n  model: {preset: 70B}\n")
    with pytest.raises(UserError, match="train.model.preset"):
        load_config(p)
    p.write_text("train:\n  seq_len: 32\n  seq_warmup_steps: 5\n  seq_warmup_start: 64\n")
    with pytest.raises(UserError, match="seq_warmup_start"):
        load_config(p)


def test_latest_checkpoint_skips_incomplete_ones(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in [(5, True), (10, True), (15, False)]:
        d = ckpt.step_dir(root, step)
        d.mkdir(parents=True)
        if complete:
            (d / ckpt.COMPLETE).write_text(str(step))
    assert ckpt.latest(root).name == "step_00000010"
    assert ckpt.latest(tmp_path / "none") is None


def test_launch_builds_torchrun_commands(tmp_path, monkeypatch):
    from shikomi.train.launch import main, torchrun_command

    monkeypatch.delenv("SLURM_NNODES", raising=False)
    cfg = load_config(None, {"run_dir": str(tmp_path)})
    cmd = torchrun_command(cfg, Path("c.yaml"), 2, resume=True, max_steps=7)
    assert cmd[1:4] == ["-m", "shikomi.train.agent", "--nproc_per_node=2"] and "--standalone" in cmd
    assert "--shutdown_timeout=300" in cmd  # executor.slurm.train.signal_before_s
    assert cmd[-7:] == ["-m", "shikomi.train.trainer", "--config", "c.yaml", "--resume", "--max-steps", "7"]
    multi = load_config(None, {"train": {"nnodes": 4, "rdzv_endpoint": "node1:29500"}})
    cmd = torchrun_command(multi, Path("c.yaml"), 8, resume=False, max_steps=None)
    assert "--nnodes=4" in cmd and "--rdzv_endpoint=node1:29500" in cmd and "--standalone" not in cmd
    with pytest.raises(UserError, match="rdzv_endpoint"):
        torchrun_command(load_config(None, {"train": {"nnodes": 2}}), Path("c.yaml"), 8, False, None)
    # a missing token folder and a run that already has checkpoints are one-line errors
    args = Namespace(input=None, resume=False, force=False, nproc=1, max_steps=None)
    with pytest.raises(UserError, match="no manifest.json"):
        main(args, cfg)
    synthetic_token_folder(tmp_path / "tokenize", docs_per_source=10)
    (tmp_path / "train/checkpoints/step_00000005").mkdir(parents=True)
    (tmp_path / "train/checkpoints/step_00000005" / ckpt.COMPLETE).write_text("5")
    with pytest.raises(UserError, match="--resume"):
        main(args, cfg)


# --- Hugging Face export ---


def _checkpoint_of(model: Transformer, folder: Path) -> Path:
    """A checkpoint in the trainer's layout, written by one process."""
    import dataclasses

    import torch.distributed.checkpoint as dcp

    d = ckpt.step_dir(folder, 3)
    d.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "assuming ... a single process": it is
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(d))
    (d / "trainer.json").write_text(
        json.dumps({"step": 3, "tokens": 0, "eos_id": 2, "model_args": dataclasses.asdict(model.args)})
    )
    (d / ckpt.COMPLETE).write_text("3")
    return d


def test_export_hf_reproduces_our_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    from shikomi.train.export_hf import main

    cfg = load_config(None, {"run_dir": str(tmp_path), "train": {"seq_len": 64, "model": {"n_kv_heads": 2}}})
    a = model_args(cfg.train.model, cfg.train, 300)
    torch.manual_seed(1)
    m = Transformer(a)
    m.init_weights()
    with torch.no_grad():  # trained-looking norms, so the export must carry them
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    _checkpoint_of(m, tmp_path / "train" / "checkpoints")
    dest = tmp_path / "hf"
    assert main(Namespace(output=None, checkpoint=None, dest=str(dest)), cfg) == 0
    hf = AutoModelForCausalLM.from_pretrained(str(dest)).eval()
    assert type(hf).__name__ == "LlamaForCausalLM" and not hf.config.tie_word_embeddings
    x = torch.randint(0, 300, (3, 50))
    with torch.no_grad():
        ours, theirs = m.eval()(x), hf(x).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    out = hf.generate(x[:1, :5], max_new_tokens=8, do_sample=True, top_k=50, pad_token_id=2)
    assert out.shape[1] > 5
    with pytest.raises(UserError, match="not a complete checkpoint"):
        main(Namespace(output=None, checkpoint=str(tmp_path), dest=str(dest)), cfg)


def test_activation_checkpointing_gives_the_same_gradients():
    cfg = load_config(None, {"train": {"seq_len": 16}})
    a = model_args(cfg.train.model, cfg.train, 50)
    torch.manual_seed(0)
    m = Transformer(a)
    m.init_weights()
    x = torch.randint(0, 50, (2, 17))
    grads = []
    for ac in (False, True):
        m.zero_grad()
        m.activation_checkpointing = ac
        ce, z = loss_fn(m(x[:, :-1]), x[:, 1:], 1e-4)
        (ce + z).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


SHARDED_INIT = """
import json, sys
import shikomi.train.trainer as T
from shikomi.config import load_config
T.META_INIT_PARAMS = 0
cfg = load_config(None, {"run_dir": sys.argv[2], "train": {"input": sys.argv[1], "device": "cpu", "seq_len": 32,
      "global_batch_size": 4, "micro_batch_size": 2, "max_steps": 3, "eval_interval": 0, "eval_sequences": 2,
      "checkpoint_interval": 0, "progress": False, "precision": sys.argv[3]}})
tr = T.Trainer(cfg)
w = tr.model.layers[0].self_attn.q_proj.weight.full_tensor()
print(json.dumps({"std": w.std().item(), "result": tr.fit()}))
"""


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_meta_device_init_and_bf16_policy_run_on_cpu(tokens, tmp_path, precision):
    """The paths GPUs take (meta-device init after sharding, bf16 mixed precision),
    exercised on CPU in one process."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    res = subprocess.run(
        [sys.executable, "-c", SHARDED_INIT, str(tokens), str(tmp_path / "run"), precision],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["std"] == pytest.approx(math.sqrt(2 / (5 * 64)), rel=0.15)
    rows = [json.loads(ln) for ln in (tmp_path / "run/train/metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    assert {"val_loss/ja", "val_loss/en", "val_loss/code"} <= rows[-1].keys()


def test_batch_split_over_ranks():
    from shikomi.train.data import batch_split

    assert batch_split(train_cfg(global_batch_size=16, micro_batch_size=4), 2) == (8, 4, 2)
    assert batch_split(train_cfg(global_batch_size=16, micro_batch_size=4), 8) == (2, 2, 1)
    with pytest.raises(UserError, match="not divisible by 3 ranks"):
        batch_split(train_cfg(global_batch_size=16), 3)
    with pytest.raises(UserError, match="micro_batch_size=3"):
        batch_split(train_cfg(global_batch_size=16, micro_batch_size=3), 2)


# --- GPUs, Slurm steps, preemption settings (checked on CPU) ---


def test_peak_flops_by_exact_device_name_and_bf16_by_capability():
    from shikomi.train.devices import bf16_supported, peak_bf16_flops

    T = 1e12
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989 * T  # SXM
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756 * T
    assert peak_bf16_flops("NVIDIA H100 NVL") == 835 * T
    assert peak_bf16_flops("NVIDIA H200") == 989 * T and peak_bf16_flops("NVIDIA H200 NVL") == 835 * T
    assert peak_bf16_flops("NVIDIA H800") == 989 * T and peak_bf16_flops("NVIDIA H20") == 148 * T
    assert peak_bf16_flops("NVIDIA L4") == 121 * T and peak_bf16_flops("NVIDIA L40") == 181 * T
    assert peak_bf16_flops("NVIDIA L40S") == 362 * T
    assert peak_bf16_flops("NVIDIA A100-SXM4-80GB") == peak_bf16_flops("NVIDIA A100 80GB PCIe") == 312 * T
    # unknown boards get no number (the trainer warns), never a neighbour's
    for name in ("NVIDIA H100", "NVIDIA A10G", "Tesla V100-SXM2-32GB", "NVIDIA GeForce RTX 4090"):
        assert peak_bf16_flops(name) is None, name
    assert not bf16_supported((7, 0)) and bf16_supported((8, 0)) and bf16_supported((9, 0))


def test_launch_reads_nodes_port_and_rendezvous_id_from_the_slurm_step(tmp_path, monkeypatch):
    from shikomi.train import launch

    cfg = load_config(None, {"run_dir": str(tmp_path)})
    monkeypatch.setenv("SLURM_NNODES", "8")  # the job's nodes; the step runs on 4 of them
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    monkeypatch.setenv("SLURM_NODEID", "2")
    monkeypatch.setattr(launch, "_slurm_first_host", lambda: "gpu-001")
    assert launch.node_count(cfg.train) == 4
    cmd = launch.torchrun_command(cfg, Path("c.yaml"), 8, resume=True, max_steps=None)
    assert "--nnodes=4" in cmd and "--node_rank=2" in cmd and "--standalone" not in cmd
    assert "--rdzv_endpoint=gpu-001:29956" in cmd and "--rdzv_id=123456" in cmd  # port 29500 + job id % 1000
    # a configured node count and endpoint win
    multi = load_config(None, {"train": {"nnodes": 2, "rdzv_endpoint": "n1:1234", "rdzv_id": "x"}})
    cmd = launch.torchrun_command(multi, Path("c.yaml"), 8, resume=False, max_steps=None)
    assert "--nnodes=2" in cmd and "--rdzv_endpoint=n1:1234" in cmd and "--rdzv_id=x" in cmd
    # the global batch must split over the step's ranks, not the configured ones
    with pytest.raises(UserError, match="not divisible by 32 ranks"):
        from shikomi.train.data import batch_split

        batch_split(load_config(None, {"train": {"global_batch_size": 48}}).train, 8 * launch.node_count(cfg.train))
    monkeypatch.delenv("SLURM_STEP_NUM_NODES")
    assert launch.node_count(cfg.train) == 8
    for var in ("SLURM_NNODES", "SLURM_JOB_ID", "SLURM_NODEID"):
        monkeypatch.delenv(var)
    assert "--standalone" in launch.torchrun_command(cfg, Path("c.yaml"), 1, resume=False, max_steps=None)
    timeout = load_config(None, {"train": {"shutdown_timeout_s": 45}})
    assert "--shutdown_timeout=45" in launch.torchrun_command(timeout, Path("c.yaml"), 1, False, None)


def test_trainer_sbatch_signals_the_steps_waits_for_the_checkpoint_and_requeues(tmp_path):
    from shikomi.executor.sbatch import train_script

    cfg = load_config(
        None,
        {
            "run_dir": str(tmp_path),
            "executor": {
                "kind": "slurm",
                "slurm": {
                    "train": {
                        "nodes": 4,
                        "gpus_per_node": 8,
                        "cpus_per_task": 96,
                        "mem_gb": 900,
                        "signal_before_s": 600,
                    }
                },
            },
        },
    )
    s = train_script(cfg, "/x/config.yaml", "source .venv/bin/activate", str(tmp_path))
    assert "#SBATCH --signal=B:USR1@600" in s and "#SBATCH --requeue" in s and "#SBATCH --cpus-per-task=96" in s
    assert "#SBATCH --mem=900G" in s and "#SBATCH --gpus-per-node=8" in s
    # srun does not inherit --cpus-per-task (Slurm >= 22.05): it is given explicitly, memory too
    assert "srun --kill-on-bad-exit=1 --ntasks-per-node=1 --cpus-per-task=96 --mem=900G" in s
    assert "--shutdown_timeout=600" in s and "-m shikomi.train.agent" in s and "--rdzv_id=$SLURM_JOB_ID" in s
    # the trap signals the steps (not srun, which would kill its tasks), waits, then requeues
    requeue = s[s.index("requeue() {") : s.index("\n}\n", s.index("requeue() {"))]
    assert requeue.index('scancel --signal=TERM "$SLURM_JOB_ID"') < requeue.index("wait_for_training")
    assert requeue.index("wait_for_training") < requeue.index('scontrol requeue "$SLURM_JOB_ID"')
    assert "kill -TERM" not in s and "trap requeue USR1" in s and "trap stopped TERM" in s


SHARD_SUMS = """
import json, os, sys
import torch
import shikomi.train.trainer as T
from shikomi.config import load_config
T.META_INIT_PARAMS = 0
cfg = load_config(None, {"run_dir": sys.argv[2], "train": {"input": sys.argv[1], "device": "cpu", "seq_len": 32,
      "global_batch_size": 4, "micro_batch_size": 2, "max_steps": 1, "progress": False, "dist_timeout_s": 60}})
tr = T.Trainer(cfg)
w = tr.model.layers[0].self_attn.q_proj.weight
local = w.to_local()
os.makedirs(sys.argv[2], exist_ok=True)
row = {"rank": tr.rank, "local": local.flatten()[:64].tolist(), "std": w.full_tensor().std().item()}
open(os.path.join(sys.argv[2], f"rank{tr.rank}.json"), "w").write(json.dumps(row))
"""


def test_meta_initialised_shards_differ_between_two_cpu_ranks(tokens, tmp_path):
    """On a CPU mesh DTensor draws the same numbers on every rank; each rank must
    initialise its own shard with its own numbers."""
    import os
    import subprocess
    import sys

    script = tmp_path / "shards.py"
    script.write_text(SHARD_SUMS)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tokens),
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {r["rank"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "run").glob("rank*.json"))}
    assert sorted(rows) == [0, 1]
    assert rows[0]["local"] != rows[1]["local"]
    assert rows[0]["std"] == pytest.approx(math.sqrt(2 / (5 * 64)), rel=0.15)


def test_feistel_is_a_bijection_and_blocks_keep_every_document(tmp_path):
    from shikomi.train.data import Feistel

    for n in (1, 2, 3, 97, 1000, 4097):
        f = Feistel(n, 5)
        slots = f(np.arange(n, dtype=np.uint64))
        assert sorted(slots.tolist()) == list(range(n))
        assert np.array_equal(f.inverse(slots.astype(np.uint64)), np.arange(n))
    assert not np.array_equal(Feistel(1000, 5)(np.arange(1000, dtype=np.uint64)), np.arange(1000))
    # small blocks: every document once per epoch, blocks in a new order each epoch
    folder = synthetic_token_folder(tmp_path / "tok", docs_per_source=200)
    d = TokenData(folder, 9, block_docs=16)
    assert d.index.blocks.size == -(-d.n_docs // 16)
    for epoch in (0, 1):
        seen = [doc for doc, *_ in d.pieces(epoch * d.epoch_tokens, d.epoch_tokens)]
        assert sorted(seen) == list(range(d.n_docs))
    assert not np.array_equal(d.epoch_blocks(0)[0], d.epoch_blocks(1)[0])


def test_document_index_is_built_once_mapped_and_rebuilt_when_the_manifest_changes(tmp_path):
    folder = synthetic_token_folder(tmp_path / "tok", docs_per_source=40)
    a = TokenData(folder, 4)
    index = folder / "index" / "seed4-block8192"
    assert {p.name for p in index.iterdir()} == {"lengths.npy", "blocks.npy", "meta.json"}
    assert isinstance(a.index.lengths, np.memmap) and a.index.lengths.size == a.n_docs
    stamp = (index / "lengths.npy").stat().st_mtime_ns
    b = TokenData(folder, 4)
    assert (index / "lengths.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert np.array_equal(a.batch(train_cfg(), 3, 0, 6), b.batch(train_cfg(), 3, 0, 6))
    # another token folder in the same place (new manifest): the index follows it
    synthetic_token_folder(folder, docs_per_source=60, seed=1)
    c = TokenData(folder, 4)
    assert c.n_docs > a.n_docs and json.loads((index / "meta.json").read_text())["documents"] == c.index.counts
