"""The trainer under torchrun on CPU: 2 gloo ranks, the tiny preset, synthetic shards.

One reference run of 30 steps (loss falls, per-source validation loss, a NaN step and
an injected spike skipped and logged), a run killed with SIGKILL and resumed (every
step bit-identical to the reference), and a resume of the reference's checkpoint on
1 rank (the same batches, step by step).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from shikomi.config import load_config
from shikomi.train import checkpoint as ckpt
from shikomi.train.data import step_documents
from shikomi.train.synthetic import synthetic_token_folder

STEPS = 30
NAN_STEP, SPIKE_STEP = 12, 22


def write_config(tmp: Path, name: str, tokens: Path) -> Path:
    cfg = {
        "run_dir": str(tmp / name),
        "train": {
            "input": str(tokens),
            "device": "cpu",
            "seq_len": 64,
            "global_batch_size": 8,
            "micro_batch_size": 2,
            "max_steps": STEPS,
            "lr": 3e-3,
            "warmup_steps": 5,
            "eval_interval": 10,
            "eval_sequences": 8,
            "checkpoint_interval": 5,
            "keep_checkpoints": 10,
            "spike_window": 10,
            "spike_zscore": 5.0,
            "spike_min_history": 5,
            "inject_nan_steps": [NAN_STEP],
            "inject_spike_steps": [SPIKE_STEP],
            "progress": False,
        },
    }
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def train_cmd(config: Path, nproc: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "shikomi.cli", "train", "--config", str(config), "--nproc", str(nproc), *extra]


def run_train(config: Path, nproc: int, *extra: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        train_cmd(config, nproc, *extra),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def metrics(run: Path) -> dict[int, dict]:
    rows = [json.loads(ln) for ln in (run / "train/metrics.jsonl").read_text().splitlines() if ln.strip()]
    by_step = {r["step"]: r for r in rows}
    assert len(by_step) == len(rows), "a step was logged twice"
    return by_step


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return synthetic_token_folder(tmp_path_factory.mktemp("tok") / "tokenize", docs_per_source=120)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tokens):
    tmp = tmp_path_factory.mktemp("ref")
    config = write_config(tmp, "ref", tokens)
    res = run_train(config, 2)
    return tmp / "ref", config, res


def test_two_ranks_train_and_report_validation_loss_per_source(reference):
    run, _, res = reference
    m = metrics(run)
    assert sorted(m) == list(range(STEPS))
    ok = [m[s]["loss"] for s in range(STEPS) if not m[s].get("skipped")]
    assert sum(ok[-5:]) / 5 < 0.7 * sum(ok[:5]) / 5, ok
    for step in (9, 19, 29):
        assert {"val_loss/ja", "val_loss/en", "val_loss/code"} <= m[step].keys()
    for src in ("ja", "en", "code"):
        assert m[29][f"val_loss/{src}"] < m[9][f"val_loss/{src}"]
        assert m[29][f"val_ppl/{src}"] == pytest.approx(2.718281828 ** m[29][f"val_loss/{src}"], rel=1e-6)
    assert m[STEPS - 1]["tokens"] == STEPS * 8 * 64
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 and "grad_norm" in r for r in m.values())
    assert "validation loss at step 29: ja" in res.stdout
    # checkpoints every 5 steps, all complete, written by 2 ranks
    assert [p.name for p in ckpt.list_complete(run / "train/checkpoints")] == [f"step_{s:08d}" for s in range(5, 31, 5)]
    assert json.loads((run / "train/checkpoints/step_00000030/trainer.json").read_text())["world_size"] == 2


def test_nan_and_spike_batches_are_skipped_and_logged_with_their_documents(reference, tokens):
    run, config, _ = reference
    m = metrics(run)
    assert {s for s, r in m.items() if r.get("skipped")} == {NAN_STEP, SPIKE_STEP}
    assert m[NAN_STEP]["skipped"] == "nan_loss" and m[NAN_STEP]["loss"] is None
    assert m[SPIKE_STEP]["skipped"] == "zscore" and m[SPIKE_STEP]["loss"] > 2 * m[SPIKE_STEP - 1]["loss"]
    # training went on: finite losses right after both
    assert m[NAN_STEP + 1]["loss"] < 10 and m[SPIKE_STEP + 1]["loss"] < m[SPIKE_STEP]["loss"]
    spikes = [json.loads(ln) for ln in (run / "train/spikes.jsonl").read_text().splitlines()]
    assert [s["step"] for s in spikes] == [NAN_STEP, SPIKE_STEP]
    tc = load_config(config).train
    for s in spikes:
        expected = sorted({d["id"] for d in step_documents(tokens, tc, s["step"])})
        assert s["documents"] == expected and len(expected) >= 2
        assert s["injected"] is True


def test_kill_9_and_resume_is_bit_identical(reference, tokens, tmp_path):
    ref_run = reference[0]
    config = write_config(tmp_path, "killed", tokens)
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(config, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    log = run / "train/metrics.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if log.is_file() and any(
                json.loads(ln)["step"] >= 17 for ln in log.read_text().splitlines() if ln.endswith("}")
            ):
                break
            time.sleep(0.02)
    finally:
        workers = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and torchrun
        proc.wait()
    # the workers (torchrun puts them in their own sessions) die with their launcher
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert workers and not left, "workers outlived their killed launcher"
    latest = ckpt.latest(run / "train/checkpoints")
    assert latest is not None and int(latest.name.split("_")[1]) < STEPS, "the run ended before the kill"
    # a plain rerun refuses to overwrite; --resume continues from the latest complete checkpoint
    again = subprocess.run(train_cmd(config, 2), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    res = run_train(config, 2, "--resume")
    assert f"resumed from {latest}" in res.stderr, res.stderr
    ref, got = metrics(ref_run), metrics(run)
    assert sorted(got) == list(range(STEPS))
    for s in range(STEPS):
        for key in ("loss", "grad_norm", "lr", "batch_crc", "val_loss/ja", "val_loss/en", "val_loss/code"):
            assert got[s].get(key) == ref[s].get(key), (s, key)


def test_resume_on_one_rank_reads_the_same_batches(reference, tokens, tmp_path):
    ref_run = reference[0]
    config = write_config(tmp_path, "one", tokens)
    run = tmp_path / "one"
    shutil.copytree(ref_run / "train/checkpoints/step_00000015", run / "train/checkpoints/step_00000015")
    res = run_train(config, 1, "--resume")
    assert "trained on 2 ranks, now 1" in res.stderr
    ref, got = metrics(ref_run), metrics(run)
    assert sorted(got) == list(range(15, STEPS))
    for s in range(15, STEPS):
        assert got[s]["batch_crc"] == ref[s]["batch_crc"], s
        assert got[s].get("skipped") == ref[s].get("skipped")
        if not got[s].get("skipped"):
            # the same data and weights; only the order of float sums differs
            assert got[s]["loss"] == pytest.approx(ref[s]["loss"], abs=2e-3)
    assert got[15]["loss"] == pytest.approx(ref[15]["loss"], rel=1e-5)


def start_and_signal(config: Path, at_step: int, *signals: signal.Signals) -> tuple[subprocess.Popen, str, str]:
    """Start `shikomi train` on 2 ranks, send `signals` to that process (the launcher,
    as a user's kill or Ctrl-C does) once step `at_step` is logged; (process, stdout, stderr)."""
    proc = subprocess.Popen(
        train_cmd(config, 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    log = config.parent / config.stem / "train/metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and any(
            json.loads(ln)["step"] >= at_step for ln in log.read_text().splitlines() if ln.endswith("}")
        ):
            break
        time.sleep(0.02)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.05)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_shikomi_train_saves_exits_0_and_resumes_identically(reference, tokens, tmp_path, sig):
    """kill -TERM or Ctrl-C of `shikomi train`: the workers finish their step, save a
    checkpoint at that step (not a periodic one), the command exits 0 saying how to
    resume; --resume then logs the uninterrupted run's trace bit for bit."""
    ref_run = reference[0]
    config = write_config(tmp_path, "sig", tokens)
    data = yaml.safe_load(config.read_text())
    data["train"]["inject_step_sleep_s"] = 0.05  # a few steps to land the signal in
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "sig"
    proc, out, err = start_and_signal(config, 6, sig)
    assert proc.returncode == 0, err[-3000:]
    stopped = json.loads((run / "train/stopped.json").read_text())
    step = stopped["step"]
    assert 6 < step < STEPS and stopped["signal"] == sig.name
    latest = ckpt.latest(run / "train/checkpoints")
    assert latest == run / "train/checkpoints" / f"step_{step:08d}" and stopped["checkpoint"] == str(latest)
    assert json.loads((latest / "trainer.json").read_text())["step"] == step
    assert sorted(metrics(run)) == list(range(step))  # stopped after the step it saved
    assert f"stopped by {sig.name} after step {step}: saved {latest}; continue with: shikomi train" in out
    assert "--resume" in out and "Traceback" not in err
    res = run_train(config, 2, "--resume")
    assert f"resumed from {latest}" in res.stderr
    ref, got = metrics(ref_run), metrics(run)
    assert sorted(got) == list(range(STEPS))
    for s in range(STEPS):
        for key in ("loss", "grad_norm", "lr", "batch_crc", "val_loss/ja", "val_loss/en", "val_loss/code"):
            assert got[s].get(key) == ref[s].get(key), (s, key)
    assert not (run / "train/stopped.json").exists()


def test_ctrl_c_twice_aborts_at_once(tokens, tmp_path):
    config = write_config(tmp_path, "abort", tokens)
    data = yaml.safe_load(config.read_text())
    data["train"].update(checkpoint_interval=0, inject_step_sleep_s=0.05)
    config.write_text(yaml.safe_dump(data))
    proc, out, err = start_and_signal(config, 3, signal.SIGINT, signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    assert "SIGINT again: aborting without a checkpoint" in err and "aborted" in out
    assert ckpt.latest(tmp_path / "abort/train/checkpoints") is None
