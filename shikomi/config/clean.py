from typing import Optional

from pydantic import Field

from .base import Section


class CleanConfig(Section):
    input: Optional[str] = None
    tasks: Optional[int] = Field(None, ge=1)
