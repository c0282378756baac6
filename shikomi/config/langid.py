from pydantic import Field

from shikomi.config.base import Section


class LangidConfig(Section):
    model: str | None = Field(
        None,
        description="fastText model path; default: fastText's lid.176.ftz shipped with shikomi (shikomi/text/models)",
    )
    languages: list[str] = Field(default_factory=lambda: ["ja", "en"])
    threshold: float = Field(0.5, ge=0, le=1, description="minimum score of the top language (cc_net: 0.5)")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-language override of threshold")
    max_chars: int = Field(
        10_000, ge=0, description="score the first N characters (0 = all); long pages cost fastText time, not accuracy"
    )
    kana_guard: bool = Field(
        True, description="a 'ja' label on text without any kana falls back to the second label (mostly Chinese)"
    )
    input: str | None = None
    tasks: int | None = Field(None, ge=1)
