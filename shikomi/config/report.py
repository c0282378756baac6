from pydantic import Field

from shikomi.config.base import Section


class FindConfig(Section):
    """`shikomi find`: exact substring search over the token shards, optionally
    character n-gram similarity."""

    ngram_n: int = Field(5, ge=1, le=32, description="character n-gram length for --ngram")
    ngram_min_similarity: float = Field(
        0.5, ge=0, le=1, description="minimum share of the query's n-grams found in a document (containment)"
    )
    top_k: int = Field(10, ge=1, description="most similar documents listed with --ngram")
    max_steps: int | None = Field(
        None, ge=0, description="training steps searched for a document; default: the last step in train/metrics.jsonl"
    )


class ReportConfig(Section):
    input: str | None = Field(None, description="run folder to report on (default: run_dir)")
    samples_per_rule: int = Field(3, ge=0, description="dropped documents shown per rule")
    sample_chars: int = Field(300, ge=20, description="characters shown per sampled document")
    max_rules: int = Field(40, ge=1, description="rules listed per stage in the per-rule charts and samples")
    chars_per_token_docs: int = Field(
        2000,
        ge=1,
        description="documents per source encoded to measure characters per token when the run has no token folder",
    )
    dpi: int = Field(100, ge=50, le=300)
    find: FindConfig = Field(default_factory=FindConfig)
