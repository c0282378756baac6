"""A Llama-style decoder, readable top to bottom.

    tokens -> embed (× sqrt(d)) -> [RMSNorm -> attention (RoPE) -> + ; RMSNorm -> SwiGLU -> +] × L
           -> RMSNorm -> lm_head (untied) -> logits

Module names follow Hugging Face's `LlamaForCausalLM` (without its `model.` prefix), so
the export is a rename plus folding the embedding scale into the embedding weights.

The stability recipe lives in `init_weights` (small init, depth-scaled output
projections) and `forward` (scaled embedding); the z-loss is in `loss_fn`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

# GPT-3 table shapes (Brown et al. 2020, Table 2.1) for 125M and 1.3B; LINE's
# japanese-large-lm 3.6B; Llama 2's 7B shape; Llama's 13B shape for GPT-3 13B.
PRESETS: dict[str, dict] = {
    "tiny": dict(dim=64, n_layers=2, n_heads=4, ffn_dim=192),
    "125M": dict(dim=768, n_layers=12, n_heads=12),
    "1.3B": dict(dim=2048, n_layers=24, n_heads=16),
    "3.6B": dict(dim=3072, n_layers=30, n_heads=32),
    "7B": dict(dim=4096, n_layers=32, n_heads=32, ffn_dim=11008),
    "13B": dict(dim=5120, n_layers=40, n_heads=40),
}


@dataclass
class ModelArgs:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq_len: int = 2048
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    init_std: float | None = None  # None: sqrt(2 / (5 d))
    scaled_init: bool = True
    scaled_embed: bool = True

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def std(self) -> float:
        return self.init_std if self.init_std is not None else math.sqrt(2.0 / (5.0 * self.dim))

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.dim) if self.scaled_embed else 1.0


def default_ffn_dim(dim: int, multiple_of: int = 256) -> int:
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def model_args(model_cfg, train_cfg, vocab_size: int) -> ModelArgs:
    """ModelArgs from the `train.model` config section (preset, then overrides)."""
    shape = dict(PRESETS[model_cfg.preset])
    for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim"):
        v = getattr(model_cfg, k)
        if v is not None:
            shape[k] = v
    shape.setdefault("n_kv_heads", shape["n_heads"])
    shape.setdefault("ffn_dim", default_ffn_dim(shape["dim"]))
    return ModelArgs(
        vocab_size=vocab_size,
        max_seq_len=train_cfg.seq_len,
        norm_eps=model_cfg.norm_eps,
        rope_theta=model_cfg.rope_theta,
        init_std=train_cfg.init_std,
        scaled_init=train_cfg.scaled_init,
        scaled_embed=train_cfg.scaled_embed,
        **shape,
    )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(head_dim: int, seq_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, (seq_len, head_dim), in the half-split layout."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    t = torch.arange(seq_len, dtype=torch.int64, device=device).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, hd); cos/sin: (T, hd)
    return (x * cos.to(x.dtype)) + (rotate_half(x) * sin.to(x.dtype))


class Attention(nn.Module):
    def __init__(self, a: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = a.n_heads, a.n_kv_heads, a.head_dim
        self.q_proj = nn.Linear(a.dim, a.n_heads * a.head_dim, bias=False)
        self.k_proj = nn.Linear(a.dim, a.n_kv_heads * a.head_dim, bias=False)
        self.v_proj = nn.Linear(a.dim, a.n_kv_heads * a.head_dim, bias=False)
        self.o_proj = nn.Linear(a.n_heads * a.head_dim, a.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, a: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(a.dim, a.ffn_dim, bias=False)
        self.up_proj = nn.Linear(a.dim, a.ffn_dim, bias=False)
        self.down_proj = nn.Linear(a.ffn_dim, a.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, a: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(a.dim, a.norm_eps)
        self.self_attn = Attention(a)
        self.post_attention_layernorm = RMSNorm(a.dim, a.norm_eps)
        self.mlp = MLP(a)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, a: ModelArgs):
        super().__init__()
        self.args = a
        self.embed_tokens = nn.Embedding(a.vocab_size, a.dim)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.n_layers))
        self.norm = RMSNorm(a.dim, a.norm_eps)
        self.lm_head = nn.Linear(a.dim, a.vocab_size, bias=False)  # untied
        self.activation_checkpointing = False

    @torch.no_grad()
    def init_weights(self) -> None:
        """Small init N(0, sqrt(2/(5d))) everywhere (LINE), output projections of each
        residual branch divided by sqrt(2 L) (Megatron's scaled init), norms at 1."""
        a = self.args
        out_std = a.std / math.sqrt(2.0 * a.n_layers) if a.scaled_init else a.std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=out_std)
            else:
                nn.init.normal_(p, mean=0.0, std=a.std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        cos, sin = rope_tables(self.args.head_dim, T, self.args.rope_theta, device=tokens.device)
        h = self.embed_tokens(tokens)
        if self.args.scaled_embed:
            h = h * self.args.embed_scale
        for layer in self.layers:
            if self.activation_checkpointing and self.training:
                h = torch.utils.checkpoint.checkpoint(layer, h, cos, sin, use_reentrant=False)
            else:
                h = layer(h, cos, sin)
        return self.lm_head(self.norm(h)).float()


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and the auxiliary z-loss z·mean(logsumexp(logits)²) (PaLM), both
    from one logsumexp over the vocabulary."""
    logits = logits.reshape(-1, logits.size(-1))
    targets = targets.reshape(-1)
    if z_loss <= 0:
        return F.cross_entropy(logits, targets), torch.zeros((), device=logits.device)
    lse = torch.logsumexp(logits, dim=-1)
    ce = (lse - logits.gather(1, targets.unsqueeze(1)).squeeze(1)).mean()
    return ce, z_loss * lse.pow(2).mean()


def count_params(a: ModelArgs) -> dict[str, int]:
    attn = a.dim * a.head_dim * (2 * a.n_heads + 2 * a.n_kv_heads)
    mlp = 3 * a.dim * a.ffn_dim
    block = attn + mlp + 2 * a.dim
    body = a.n_layers * block + a.dim
    return {
        "embedding": a.vocab_size * a.dim,
        "lm_head": a.vocab_size * a.dim,
        "body": body,
        "total": body + 2 * a.vocab_size * a.dim,
    }


def flops_per_token(a: ModelArgs, seq_len: int) -> float:
    """Training FLOPs per token: 6 × (parameters in matmuls: body + lm_head) plus
    attention scores and values, 6 × 2 × L × T × d (forward+backward, causal mask not
    discounted), as in PaLM's MFU appendix."""
    p = count_params(a)
    matmul_params = p["body"] + p["lm_head"]
    return 6.0 * matmul_params + 12.0 * a.n_layers * seq_len * a.dim
