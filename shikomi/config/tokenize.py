"""The `tokenize:` section: documents to Megatron token shards with a manifest."""

from pydantic import Field

from shikomi.config.base import InputEncoding, Section


class TokenizeConfig(Section):
    input: str | None = Field(None, description="documents to encode; default <run_dir>/mix")
    input_encoding: InputEncoding = None
    tokenizer: str | None = Field(None, description="SentencePiece model; default <run_dir>/tokenizer/tokenizer.model")
    tasks: int | None = Field(None, ge=1)
    shard_tokens: int = Field(100_000_000, ge=1, description="a shard is closed once it holds this many tokens")
    batch_docs: int = Field(256, ge=1, description="documents encoded per SentencePiece call")
    # validation split, per source, by unique document id (all repeats go with it)
    val_fraction: float = Field(0.001, ge=0, lt=1)
    val_min_docs: int = Field(100, ge=0)
    val_max_fraction: float = Field(
        0.1, ge=0, lt=1, description="never hold out more than this share of a source's documents"
    )
    # after tokenization the real token counts are known: the plan's anchor keeps every
    # copy, the other sources are sized from it (trimmed, topped up from the mix's
    # reserve, repeated) so that each share of the train tokens matches mix/plan.json
    balance: bool = True
    balance_tolerance: float = Field(0.002, ge=0, description="relative share deviation tolerated without sizing")
    keep_parts: bool = Field(False, description="keep the per-task token files after the merge")
