from typing import Literal

from pydantic import Field

from shikomi.config.base import Section


class JapaneseGateConfig(Section):
    """Cheap pre-extraction gate (Swallow): keep pages that look Japanese before
    running the HTML extractor. Off by default."""

    enabled: bool = False
    # A page passes when <html lang>, a <meta> language or the charset says Japanese,
    # or when fastText scores its <title> as ja at or above this score.
    title_min_score: float = Field(0.5, ge=0, le=1)


class ExtractConfig(Section):
    input: list[str] = Field(
        default_factory=list, description="WARC/WET files, folders or globs (local or fsspec URLs)"
    )
    extractor: Literal["resiliparse", "trafilatura"] = "resiliparse"
    source: str | None = Field(
        None, description="value of metadata.source; default: the CC dump name from warcinfo or the file name"
    )
    max_body_bytes: int = Field(
        5_000_000, ge=1024, description="responses larger than this are skipped (reason body_too_large)"
    )
    extractor_timeout_s: float = Field(10.0, gt=0)
    min_text_chars: int = Field(1, ge=0, description="documents with less text are counted as empty_text")
    japanese_gate: JapaneseGateConfig = Field(default_factory=JapaneseGateConfig)
    generate_sample: bool = Field(
        False, description="demo only: generate the embedded sample into the input folder when it is missing"
    )
    tasks: int | None = Field(None, ge=1)
