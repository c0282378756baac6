"""The `experiment:` section: experiments run on top of the stages and the trainer.

`mix_scaling` (`shikomi experiment mix-scaling`): the same model family trained on
Japanese-only, English-only and mixed token shards of equal token count, judged by
Japanese and English validation loss against parameters and tokens.
"""

from pydantic import Field, field_validator, model_validator

from shikomi.config.base import Section


class ExperimentModel(Section):
    """One model size of the family (a Llama-style decoder, see train.model)."""

    name: str
    dim: int = Field(..., ge=8)
    n_layers: int = Field(..., ge=1)
    n_heads: int = Field(..., ge=1)
    ffn_dim: int | None = Field(None, ge=8, description="default 3·dim")

    @model_validator(mode="after")
    def _heads(self):
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head size {self.dim // self.n_heads} must be even (rotary embedding)")
        return self


def _default_models() -> list[ExperimentModel]:
    return [
        ExperimentModel(name="xs", dim=16, n_layers=1, n_heads=2, ffn_dim=48),
        ExperimentModel(name="s", dim=32, n_layers=2, n_heads=4, ffn_dim=96),
        ExperimentModel(name="m", dim=64, n_layers=2, n_heads=4, ffn_dim=192),
    ]


class MixScalingConfig(Section):
    models: list[ExperimentModel] = Field(
        default_factory=_default_models, description="the model family, smallest first"
    )
    # condition name -> the languages of its training shards, in equal token shares
    # (the tokenize stage balances the languages to 1:1 in tokens)
    conditions: dict[str, list[str]] = Field(
        default_factory=lambda: {"ja-only": ["ja"], "en-only": ["en"], "mixed": ["ja", "en"]}
    )
    languages: list[str] = Field(
        default_factory=lambda: ["ja", "en"], description="mix source names; each has a validation set"
    )
    train_tokens: int = Field(
        32_768, ge=1, description="tokens every model trains on (steps = train_tokens / (batch x seq_len))"
    )
    pool_tokens: int | None = Field(
        None, ge=1, description="tokens per language drawn by the mix; default: as many as the scarcest language has"
    )
    samples: bool = Field(
        True,
        description="train on samples of seq_len tokens cut from each language's documents (the trainer then "
        "shuffles samples, so every model's tokens hold its condition's language shares); false: whole documents",
    )
    evals: int = Field(4, ge=1, description="validation runs per model, evenly spaced (loss against tokens)")
    seq_len: int | None = Field(None, ge=8, description="default train.seq_len")
    global_batch_size: int | None = Field(None, ge=1, description="default train.global_batch_size")
    lr: float | None = Field(None, gt=0, description="default train.lr")
    threads: int = Field(
        1,
        ge=0,
        description="CPU threads of the training process (torch.set_num_threads); 0 = torch's default. "
        "Small models train fastest on one",
    )
    run_upstream: bool = Field(
        True, description="run the missing stages (extract..clean) the language sources read from"
    )

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v:
            raise ValueError("at least one condition is needed")
        for name, langs in v.items():
            if not langs or len(set(langs)) != len(langs):
                raise ValueError(f"condition {name}: list its languages once each, e.g. [ja, en]")
        return v

    @model_validator(mode="after")
    def _check(self):
        if not self.models:
            raise ValueError("experiment.mix_scaling.models is empty")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        for name, langs in self.conditions.items():
            unknown = sorted(set(langs) - set(self.languages))
            if unknown:
                raise ValueError(f"condition {name} uses {unknown}, not in experiment.mix_scaling.languages")
        return self


class ExperimentConfig(Section):
    mix_scaling: MixScalingConfig = Field(default_factory=MixScalingConfig)
