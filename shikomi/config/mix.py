"""The `mix:` section: which sources feed the corpus and at what token ratio."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shikomi.config.base import Section

RESERVED_SOURCE_NAMES = {"data", "rejected", "logs", "_parts", "_plan", "_counts", "manifest", "stats"}


class MixSource(Section):
    """One input of the mix. Several inputs may share a `name` (e.g. SlimPajama and
    Gutenberg both feed `en`): they are sampled at the same rate (same epochs)."""

    name: str = Field(..., description="the mix source this input feeds (ja, en, code, ...): metadata.source")
    path: str | None = Field(
        None,
        description="file, folder, glob or fsspec URL; `{run_dir}` stands for the run folder; "
        "for `ja` default <run_dir>/clean (or mix.input)",
    )
    format: Literal["auto", "jsonl", "parquet", "slimpajama", "gutenberg", "starcoder"] = Field(
        "auto", description="auto: a stage folder / Parquet / JSONL with `text`"
    )
    label: str | None = Field(None, description="metadata.origin of its documents; default <format>:<last path part>")
    glob: str | None = Field(None, description="files to read under `path` (default by format)")
    text_key: str | None = Field(None, description="default: text (content for starcoder)")
    id_key: str = "id"
    # SlimPajama: `meta.redpajama_set_name` values to leave out (Sarashina2 drops Books and GitHub)
    exclude_sets: list[str] = Field(default_factory=lambda: ["RedPajamaBook", "RedPajamaGithub"])
    # starcoderdata: keep only these languages (empty: all); the column, else the parent folder name
    languages: list[str] = Field(default_factory=list)
    language_key: str = "lang"
    min_chars: int = Field(1, ge=0, description="documents with fewer characters are dropped (reason too_short)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith(".") or v in RESERVED_SOURCE_NAMES:
            raise ValueError(f"a source name must be a plain folder name, not one of {sorted(RESERVED_SOURCE_NAMES)}")
        return v


class Rehydration(Section):
    """Repeats of a document by the size of the duplicate cluster it survived
    (metadata.dup_cluster_size, written by dedup); FineWeb-2's default table."""

    enabled: bool = False
    # cluster size lower bound -> copies (the largest bound <= the size applies);
    # `size`: as many copies as the cluster has documents
    weights: dict[int, int | Literal["size"]] = Field(
        default_factory=lambda: {1: 1, 2: "size", 4: 3, 5: 5, 100: 8, 1000: 1}
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict) -> dict:
        if not v or min(v) > 1:
            raise ValueError("rehydration.weights needs a bound of 1 (documents without duplicates)")
        for k, w in v.items():
            if k < 1 or (w != "size" and w < 0):
                raise ValueError(f"rehydration.weights: size {k} -> {w}: sizes >= 1, copies >= 0")
        return dict(sorted(v.items()))


class MixConfig(Section):
    input: str | None = Field(None, description="path of the `ja` source when its own path is not set")
    sources: list[MixSource] = Field(default_factory=lambda: [MixSource(name="ja")])
    # token ratio between source names (normalised); Sarashina2: ja:en:code = 5:4:1
    ratios: dict[str, float] = Field(default_factory=lambda: {"ja": 5.0, "en": 4.0, "code": 1.0})
    total_tokens: int | None = Field(
        None, ge=1, description="tokens in the mix; default: the most that repeats no source"
    )
    count_with: Literal["auto", "estimate", "tokenizer"] = Field(
        "auto", description="auto: the tokenizer when one exists (mix.tokenizer or <run_dir>/tokenizer), else estimate"
    )
    tokenizer: str | None = Field(None, description="SentencePiece model used to count tokens")
    # characters per token of the estimate, per source name (measured with a 102,400-piece
    # unigram tokenizer trained at 5:4:1; see docs); other names use default_chars_per_token
    chars_per_token: dict[str, float] = Field(default_factory=lambda: {"ja": 1.45, "en": 4.2, "code": 3.3})
    default_chars_per_token: float = Field(3.0, gt=0)
    # the scarce source sets the budget: used in full (repeated only to reach total_tokens),
    # the others sized from it; default: the fewest available tokens for its share
    anchor: str | None = Field(None, description="source used in full; default: the scarcest for its ratio")
    max_epochs: float = Field(4.0, gt=0, description="warn when a source is repeated more (Muennighoff et al. 2023)")
    # documents of the other sources written beyond their estimated need (as a fraction
    # of it, metadata.epoch = -1): tokenize uses them when the real count falls short
    reserve: float = Field(0.3, ge=0, description="extra share of non-anchor documents written as a reserve")
    rehydration: Rehydration = Field(default_factory=lambda: Rehydration())
    write_unsampled: bool = Field(False, description="also write documents left out by downsampling to rejected/")
    tasks: int | None = Field(None, ge=1)

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one source ratio is needed")
        for k, r in v.items():
            if r < 0:
                raise ValueError(f"ratio of {k} must be >= 0")
        if sum(v.values()) <= 0:
            raise ValueError("the ratios sum to 0")
        return v

    @field_validator("chars_per_token")
    @classmethod
    def _cpt(cls, v: dict[str, float]) -> dict[str, float]:
        for k, r in v.items():
            if r <= 0:
                raise ValueError(f"chars_per_token of {k} must be > 0")
        return v

    @model_validator(mode="after")
    def _sources(self):
        if not self.sources:
            raise ValueError("mix.sources is empty")
        if self.anchor is not None and self.ratios.get(self.anchor, 0) <= 0:
            raise ValueError(f"mix.anchor '{self.anchor}' has no positive ratio in mix.ratios")
        return self
