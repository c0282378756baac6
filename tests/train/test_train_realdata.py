"""The trainer on real text (../shared/data): Japanese Wikipedia leads, US inaugural
addresses and CPython stdlib modules, tokenized with a SentencePiece model trained
here; 2 gloo ranks; then `shikomi export-hf` loaded by stock transformers."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
import yaml

from shikomi.config import load_config
from shikomi.train.synthetic import write_token_folder

pytestmark = pytest.mark.realdata
VOCAB = 2000


def _texts(data: Path) -> dict[str, list[str]]:
    ja = [json.loads(ln)["text"] for ln in open(data / "ja/jawiki_annotated_corpus_leads.jsonl", encoding="utf-8")]
    en = [json.loads(ln)["text"] for ln in open(data / "en/us_inaugural_addresses_1789-2021.jsonl", encoding="utf-8")]
    with gzip.open(data / "code/python3.11.7_stdlib_toplevel.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(ln)["text"][:6000] for ln in f]
    return {"ja": ja[:1200], "en": en, "code": code}


def build_tokenizer(texts: dict[str, list[str]], tok_dir: Path):
    """The tokenizer folder of the contract: tokenizer.model, hf/, tokenizer.json."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    tok_dir.mkdir(parents=True)
    sample = tok_dir / "sample.txt"
    sample.write_text(
        "\n".join(t[:3000].replace("\n", " ") for docs in texts.values() for t in docs[:600]), encoding="utf-8"
    )
    spm.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(tok_dir / "tokenizer"),
        vocab_size=VOCAB,
        model_type="unigram",
        byte_fallback=True,
        character_coverage=0.98,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=1,
        minloglevel=2,
    )
    hf = tok_dir / "hf"
    hf.mkdir()
    (hf / "tokenizer.model").write_bytes((tok_dir / "tokenizer.model").read_bytes())
    (hf / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": False, "pad_token": "<pad>"})
    )
    AutoTokenizer.from_pretrained(str(hf)).save_pretrained(str(hf))
    (tok_dir / "tokenizer.json").write_text(json.dumps({"vocab_size": VOCAB, "eos_id": 2, "bos_id": 1, "pad_id": 3}))
    return spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model"))


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("real") / "run"
    texts = _texts(shared_data)
    sp = build_tokenizer(texts, run / "tokenizer")
    docs = {}
    for src, items in texts.items():
        enc = [(f"{src}-{i:05d}", sp.encode(t) + [2]) for i, t in enumerate(items)]
        n_val = max(4, len(enc) // 20)
        docs[(src, "train")], docs[(src, "val")] = enc[n_val:], enc[:n_val]
    write_token_folder(run / "tokenize", docs, VOCAB, 2, tokenizer_path=str(run / "tokenizer/tokenizer.model"))
    config = run.parent / "real.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(run),
                "train": {
                    "device": "cpu",
                    "seq_len": 128,
                    "global_batch_size": 8,
                    "micro_batch_size": 4,
                    "max_steps": 40,
                    "lr": 3e-3,
                    "warmup_steps": 4,
                    "eval_interval": 20,
                    "eval_sequences": 8,
                    "checkpoint_interval": 20,
                    "progress": False,
                },
            }
        )
    )
    res = subprocess.run(
        [sys.executable, "-m", "shikomi.cli", "train", "--config", str(config), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(ln) for ln in (run / "train/metrics.jsonl").read_text().splitlines()]
    return run, config, rows, sp, res


def test_real_text_loss_falls_and_validation_loss_per_language(trained):
    run, _, rows, _, res = trained
    losses = [r["loss"] for r in rows]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0, losses
    first, last = rows[19], rows[39]
    for src in ("ja", "en", "code"):
        assert last[f"val_loss/{src}"] < first[f"val_loss/{src}"] < 8.0
    # the default spike check does not fire on ordinary real batches
    assert not any(r.get("skipped") for r in rows)
    assert not (run / "train/spikes.jsonl").exists()
    assert "validation loss at step 39: ja" in res.stdout


def test_export_loads_in_transformers_with_matching_logits_and_generates(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline, set_seed

    from shikomi.train import checkpoint as ckpt
    from shikomi.train.export_hf import main
    from shikomi.train.model import ModelArgs, Transformer

    run, config, _, sp, _ = trained
    dest = tmp_path / "hf"
    assert main(Namespace(output=None, checkpoint=None, dest=str(dest)), load_config(config)) == 0
    model = AutoModelForCausalLM.from_pretrained(str(dest)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(dest))
    assert model.config.eos_token_id == 2 and model.config.bos_token_id == 1
    # our model from the same checkpoint
    c = ckpt.latest(run / "train/checkpoints")
    ours = Transformer(ModelArgs(**json.loads((c / "trainer.json").read_text())["model_args"]))
    ckpt.load_model_weights(c, ours)
    ours.eval()
    texts = ["日本語の大規模言語モデルを学習する。", "We hold these truths to be self-evident, that all men"]
    ids = [tokenizer(t)["input_ids"][:12] for t in texts]
    assert all(len(i) == 12 for i in ids)
    x = torch.tensor(ids)
    with torch.no_grad():
        assert (ours(x) - model(x).logits).abs().max().item() < 1e-4
    # generation the way LINE's japanese-large-lm model card does it
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    set_seed(101)
    out = generator(
        "おはようございます、今日の天気は",
        max_length=30,
        do_sample=True,
        pad_token_id=tokenizer.pad_token_id,
        num_return_sequences=2,
    )
    assert len(out) == 2
    for o in out:
        assert o["generated_text"].startswith("おはようございます、今日の天気は")
        assert len(o["generated_text"]) > len("おはようございます、今日の天気は")
