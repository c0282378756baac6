"""`shikomi export-hf`: a checkpoint as a Hugging Face `LlamaForCausalLM` folder.

    <dest>/config.json             LlamaConfig (untied embeddings)
    <dest>/generation_config.json
    <dest>/model.safetensors       weights; the embedding scale sqrt(d) folded into
                                   embed_tokens, so stock transformers gives our logits
    <dest>/tokenizer.json, tokenizer_config.json, tokenizer.model

Our module names are Hugging Face's without the `model.` prefix.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from shikomi.errors import UserError
from shikomi.text.hf_tokenizer import export_hf
from shikomi.train import checkpoint as ckpt


def hf_state_dict(model) -> dict:
    """Our state dict renamed to LlamaForCausalLM's, with the embedding scale folded in."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().float().contiguous()
        if name == "embed_tokens.weight":
            t = t * model.args.embed_scale
        out[name if name.startswith("lm_head.") else "model." + name] = t.clone()
    return out


def hf_config(args, bos_id: int | None, eos_id: int, pad_id: int | None) -> dict:
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.dim,
        intermediate_size=args.ffn_dim,
        num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads,
        num_key_value_heads=args.n_kv_heads,
        head_dim=args.head_dim,
        max_position_embeddings=args.max_seq_len,
        rms_norm_eps=args.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        architectures=["LlamaForCausalLM"],
        dtype="float32",
    )
    return cfg


def _tokenizer_meta(tok_dir: Path) -> dict:
    p = tok_dir / "tokenizer.json"
    if p.is_file():
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(meta, dict) and "model" not in meta:  # our metadata, not a HF tokenizers file
                return meta
        except json.JSONDecodeError:
            pass
    return {}


def export_tokenizer(tok_dir: Path, dest: Path) -> None:
    """Copy the tokenizer stage's `hf/` export; without one, convert `tokenizer.model`
    the same way the tokenizer stage does (`shikomi.text.hf_tokenizer.export_hf`)."""
    hf = tok_dir / "hf"
    if hf.is_dir() and any(hf.iterdir()):
        for f in hf.iterdir():
            if f.is_file():
                shutil.copy2(f, dest / f.name)
        return
    model = tok_dir / "tokenizer.model"
    if not model.is_file():
        raise UserError(f"no tokenizer to export: neither {hf}/ nor {model} exists (run `shikomi train-tokenizer`)")
    try:
        export_hf(model, dest)
    except ValueError as e:
        raise UserError(f"{model}: {e}") from None


def export(checkpoint: Path, dest: Path, tok_dir: Path | None) -> Path:
    import torch
    from safetensors.torch import save_file

    from shikomi.train.model import ModelArgs, Transformer

    state = json.loads((checkpoint / "trainer.json").read_text())
    args = ModelArgs(**state["model_args"])
    with torch.device("cpu"):
        model = Transformer(args)
    ckpt.load_model_weights(checkpoint, model)
    dest.mkdir(parents=True, exist_ok=True)
    meta = _tokenizer_meta(tok_dir) if tok_dir else {}
    eos = int(meta.get("eos_id", state.get("eos_id", 2)))
    bos = meta.get("bos_id")
    pad = meta.get("pad_id")
    bos = int(bos) if bos is not None and bos >= 0 else None
    pad = int(pad) if pad is not None and pad >= 0 else None
    config = hf_config(args, bos, eos, pad)
    config.save_pretrained(str(dest))
    from transformers import GenerationConfig

    GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad if pad is not None else eos).save_pretrained(
        str(dest)
    )
    save_file(hf_state_dict(model), str(dest / "model.safetensors"), metadata={"format": "pt"})
    if tok_dir is not None:
        export_tokenizer(tok_dir, dest)
    (dest / "shikomi_export.json").write_text(
        json.dumps({"checkpoint": str(checkpoint), "step": state["step"], "tokens": state.get("tokens")}, indent=1)
        + "\n"
    )
    return dest


def main(args, cfg) -> int:
    run_dir = Path(args.output) if getattr(args, "output", None) else cfg.run_path
    if getattr(args, "checkpoint", None):
        checkpoint = Path(args.checkpoint)
        if not (checkpoint / ckpt.COMPLETE).is_file():
            raise UserError(f"{checkpoint}: not a complete checkpoint (no {ckpt.COMPLETE} marker)")
    else:
        checkpoint = ckpt.latest(run_dir / "train" / "checkpoints")
        if checkpoint is None:
            raise UserError(f"no complete checkpoint under {run_dir}/train/checkpoints; run `shikomi train` first")
    dest = Path(args.dest) if getattr(args, "dest", None) else run_dir / "hf"
    tok_dir = run_dir / "tokenizer"
    if not tok_dir.is_dir():
        tok_dir = None
        print(f"[export-hf] no tokenizer folder in {run_dir}; exporting the model only", file=sys.stderr)
    export(checkpoint, dest, tok_dir)
    print(f"[export-hf] {checkpoint} -> {dest}/ (LlamaForCausalLM, safetensors)")
    return 0
