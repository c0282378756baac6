from typing import Literal

from pydantic import Field

from shikomi.config.base import InputEncoding, Section


class Benchmark(Section):
    """One benchmark file to decontaminate against (docs/clean.md, Decontamination)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="counted as dropped/decontaminate/<name>")
    path: str = Field(..., description="JSONL / JSON lines / Parquet / CSV file")
    fields: list[str] = Field(["text"], min_length=1, description="text fields of an item")
    id_field: str | None = Field(None, description="item id field (default: the row number)")
    format: Literal["auto", "jsonl", "parquet", "csv"] = "auto"
    ngram: Literal["auto", "chars", "words"] = Field("auto", description="auto: chars for Japanese items, else words")
    char_ngram: int | None = Field(None, ge=5, description="this benchmark's character n-gram size (short items)")


class DecontaminateConfig(Section):
    """Drop (or cut) documents sharing an n-gram with a benchmark item; off while
    `benchmarks` is empty."""

    benchmarks: list[Benchmark] = Field(default_factory=list)
    char_ngram: int = Field(20, ge=5, description="character n-gram size (letters and digits only)")
    word_ngram: int = Field(13, ge=3, description="word n-gram size")
    japanese_share: float = Field(0.3, ge=0, le=1, description="an item is Japanese with this share of kana/kanji")
    action: Literal["drop", "cut"] = Field("drop", description="drop the document or cut the overlapping spans")


class CleanConfig(Section):
    """The clean stage: a profile (YAML list of rules with thresholds) run in order.

    `profile` is a built-in name (shikomi/filters/profiles/<name>.yaml: default,
    swallow) or a path to a YAML file. `rules` overrides the profile per
    rule: `{rule: {param: value}}` changes thresholds, `{rule: false}` turns a rule
    off. The `quality_classifier` rule runs the shipped model (`quality_ja`) in the
    default profile; `quality_model` replaces it with your own fastText model and
    `quality_labels` trains one on your labelled JSONL instead.
    """

    profile: str = Field("default", description="built-in profile name or path to a profile YAML")
    rules: dict[str, bool | dict] = Field(default_factory=dict, description="per-rule overrides")
    quality_labels: str | None = Field(None, description="labelled JSONL (text, label good/bad) for quality_classifier")
    quality_model: str | None = Field(None, description="trained fastText model for quality_classifier")
    write_rejected: bool = Field(True, description="write dropped documents to rejected/")
    input: str | None = None
    input_encoding: InputEncoding = None
    tasks: int | None = Field(None, ge=1)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
