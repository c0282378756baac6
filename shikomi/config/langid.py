from typing import Literal

from pydantic import Field

from shikomi.config.base import InputEncoding, Section


class AutoThresholdsConfig(Section):
    """`thresholds: auto`: FineWeb-2's rule on a deterministic sample of the run's input."""

    sample: int = Field(10_000, ge=1, description="score the first N documents of the input (sorted files)")
    clip: tuple[float, float] = Field((0.3, 0.9), description="median - std is clipped to [low, high]")
    min_docs: int = Field(20, ge=1, description="languages with fewer sampled documents keep the configured threshold")


class LangidConfig(Section):
    model: str | None = Field(
        None,
        description="fastText model path; default: fastText's lid.176.ftz shipped with shikomi (shikomi/text/models)",
    )
    languages: list[str] = Field(default_factory=lambda: ["ja", "en"])
    threshold: float = Field(0.5, ge=0, le=1, description="minimum score of the top language (cc_net: 0.5)")
    thresholds: dict[str, float] | Literal["auto"] = Field(
        default_factory=lambda: {"en": 0.4},
        description="per-language override of threshold, or `auto`: median - std of the run's own scores (FineWeb-2)",
    )
    auto_thresholds: AutoThresholdsConfig = Field(default_factory=AutoThresholdsConfig)
    max_chars: int = Field(
        10_000, ge=0, description="score the first N characters (0 = all); long pages cost fastText time, not accuracy"
    )
    kana_guard: bool = Field(
        True,
        description="text with enough kana is ja whatever the model says; a 'ja' label on text without any kana "
        "falls back to the second label (mostly Chinese)",
    )
    kana_min_share: float = Field(0.1, ge=0, le=1, description="kana guard: kana letters' share of all letters")
    kana_min: int = Field(2, ge=1, description="kana guard: and at least this many kana letters")
    input: str | None = None
    input_encoding: InputEncoding = None
    tasks: int | None = Field(None, ge=1)
