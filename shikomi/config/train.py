"""The `train:` section: model size, the stability recipe, batch, schedule, evaluation,
checkpoints and launch. Every recipe switch is here; defaults follow Sarashina2,
LINE's japanese-large-lm, Japanese StableLM and "Spike No More".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shikomi.config.base import Section


class ModelConfig(Section):
    """A Llama-style decoder. `preset` fills the shape; keys set here override it."""

    preset: Literal["tiny", "125M", "1.3B", "3.6B", "7B", "13B"] = "tiny"
    dim: int | None = Field(None, ge=8, description="hidden size d")
    n_layers: int | None = Field(None, ge=1)
    n_heads: int | None = Field(None, ge=1)
    n_kv_heads: int | None = Field(None, ge=1, description="grouped-query attention; default n_heads")
    ffn_dim: int | None = Field(
        None, ge=8, description="SwiGLU hidden size; default 8/3·d rounded up to 256 (8 for tiny)"
    )
    norm_eps: float = Field(1e-5, gt=0)
    rope_theta: float = Field(10000.0, gt=0)


class TrainConfig(Section):
    # --- input and output ---
    input: str | None = None  # token folder; default <run_dir>/tokenize
    tasks: int | None = Field(None, ge=1)  # unused (the CLI's --tasks); kept for the common CLI
    seed: int = Field(1234, description="model init and sample order; the order is a pure function of (seed, step)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    shuffle_block_docs: int = Field(
        8192,
        ge=1,
        description="documents per shuffle block: the epoch order permutes blocks, then documents within a block",
    )

    # --- batch and length ---
    seq_len: int = Field(2048, ge=8, description="full training sequence length (tokens)")
    global_batch_size: int = Field(512, ge=1, description="sequences per optimizer step, over all ranks")
    micro_batch_size: int = Field(4, ge=1, description="sequences per rank per forward/backward")
    max_steps: int = Field(1000, ge=1)
    seq_warmup_steps: int = Field(0, ge=0, description="sequence-length warmup (Japanese StableLM); 0 = off")
    seq_warmup_start: int = Field(64, ge=8)

    # --- optimizer and schedule (Sarashina2 / LINE) ---
    lr: float = Field(2.5e-4, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to this fraction of lr")
    warmup_steps: int | None = Field(None, ge=0, description="linear warmup; default 1% of max_steps")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="0 = off")

    # --- stability recipe ---
    init_std: float | None = Field(None, gt=0, description="default sqrt(2/(5d)) (small init)")
    scaled_init: bool = Field(True, description="output projections std/sqrt(2·n_layers) (Megatron/LINE)")
    scaled_embed: bool = Field(True, description="embedding output × sqrt(d) (Spike No More)")
    z_loss: float = Field(1e-4, ge=0, description="auxiliary z-loss weight; 0 = off")
    spike_skip: bool = Field(True, description="skip updates whose loss is an outlier, or not finite")
    spike_zscore: float = Field(6.0, gt=0, description="robust z-score: (loss - median) / (1.4826 MAD)")
    spike_window: int = Field(50, ge=2, description="past losses the z-score is taken over")
    spike_min_history: int = Field(10, ge=2)

    # --- precision and parallelism ---
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto = bf16 on GPU, fp32 on CPU")
    compile: bool = False
    activation_checkpointing: bool = False
    nproc_per_node: int | None = Field(None, ge=1, description="default: GPUs on the node, or 1 on CPU")
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: str | None = Field(None, description="host:port of the rendezvous for nnodes > 1")
    rdzv_id: str = Field("shikomi", description="rendezvous id; under Slurm default the job id")
    rdzv_port: int = Field(29500, ge=1024, le=65535, description="rendezvous port on the first node (Slurm)")
    dist_timeout_s: int = Field(1800, ge=10, description="timeout of the process group's collectives")
    shutdown_timeout_s: int | None = Field(
        None,
        ge=1,
        description="seconds torchrun waits for the workers to checkpoint after a signal before it kills them; "
        "default executor.slurm.train.signal_before_s",
    )
    deterministic: bool = Field(
        False,
        description="deterministic kernels (torch.use_deterministic_algorithms): bit-exact resume on GPUs, slower",
    )

    # --- evaluation, logging, checkpoints ---
    eval_interval: int = Field(100, ge=0, description="steps between validation runs; 0 = only at the end")
    eval_sequences: int = Field(64, ge=1, description="validation sequences of seq_len per source, at most")
    log_interval: int = Field(1, ge=1)
    checkpoint_interval: int = Field(500, ge=0, description="0 = only at the end and on SIGTERM")
    keep_checkpoints: int = Field(3, ge=1)
    peak_tflops: float | None = Field(None, gt=0, description="device peak for MFU; default from the GPU name")
    tensorboard: bool = False
    progress: bool = True

    # --- fault injection (tests and drills): the batch of these steps is replaced ---
    inject_spike_steps: list[int] = Field(
        default_factory=list, description="uniformly random tokens replace the batch at these steps"
    )
    inject_nan_steps: list[int] = Field(default_factory=list, description="a NaN loss at these steps")
    inject_step_sleep_s: float = Field(
        0.0, ge=0, description="sleep after every step (drills of preemption on a fast model); 0 = off"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.seq_warmup_steps and self.seq_warmup_start > self.seq_len:
            raise ValueError(f"seq_warmup_start ({self.seq_warmup_start}) is larger than seq_len ({self.seq_len})")
        return self
