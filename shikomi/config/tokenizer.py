"""The `tokenizer:` section (the train-tokenizer stage): SentencePiece training."""

from typing import Literal

from pydantic import Field

from shikomi.config.base import Section


class TokenizerConfig(Section):
    input: str | None = Field(None, description="documents to sample; default <run_dir>/mix")
    # Sarashina2: 102,400-piece unigram with byte fallback. The demo sample supports a few
    # thousand pieces at most: its config sets a small vocabulary.
    vocab_size: int = Field(102_400, ge=300)
    model_type: Literal["unigram", "bpe"] = "unigram"
    # identity keeps decode(encode(text)) == text; NFKC folding, if wanted, belongs in clean
    normalization: Literal["identity", "nfkc"] = "identity"
    character_coverage: float = Field(0.9995, gt=0, le=1)
    byte_fallback: bool = True
    split_digits: bool = True
    allow_whitespace_only_pieces: bool = Field(True, description="indentation runs become pieces (code)")
    max_sentencepiece_length: int = Field(16, ge=1)
    # SentencePiece skips (silently) training lines longer than this many bytes: documents
    # are split on newlines, then after 。．.!?, then hard, so that no line is longer.
    max_sentence_length: int = Field(8192, ge=64)
    sample_mb: float = Field(1000.0, gt=0, description="text (MB) drawn from the mix for training, at its ratios")
    input_sentence_size: int = Field(5_000_000, ge=1000, description="most lines SentencePiece loads (memory)")
    num_threads: int = Field(8, ge=1, description="training threads (the model depends on it: keep it fixed)")
    hard_vocab_limit: bool = Field(True, description="false: vocab_size is an upper bound")
    tasks: int | None = Field(None, ge=1, description="unused: training is one task")
