"""Base class of every config section: unknown keys are errors."""

import codecs
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _encoding(v: str | None) -> str | None:
    if v is not None:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError("not a known text encoding (e.g. utf-8, cp932, shift_jis, euc_jp)") from None
    return v


# `<section>.input_encoding`: the encoding of a stage's JSONL input (None: UTF-8);
# lines that do not decode are skipped and counted (skipped/undecodable_line)
InputEncoding = Annotated[
    str | None,
    AfterValidator(_encoding),
    Field(description="encoding of JSONL input lines (default UTF-8), e.g. cp932, shift_jis, euc_jp"),
]
