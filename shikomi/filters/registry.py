"""Every clean rule by name: the rule modules, imported here so that each
registers its classes in `base.RULES`, and `make_rule` to instantiate one."""

from __future__ import annotations

import difflib

from pydantic import ValidationError

from shikomi.errors import UserError
from shikomi.filters import (  # noqa: F401  (each module registers its rules)
    classifier,
    fineweb_rules,
    hojichar_rules,
    pii,
    quality_rules,
)
from shikomi.filters.base import RULES, CleanRule


def unknown_rule(name: str, where: str) -> str:
    """The one-line error for a rule name that is not registered, with the near
    misses first ("did you mean") and every rule after."""
    close = difflib.get_close_matches(name, RULES, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{where}: unknown rule '{name}'{hint} (rules: {', '.join(sorted(RULES))})"


def make_rule(name: str, params: dict | None, where: str = "clean profile") -> CleanRule:
    """Instantiate a registered rule, turning bad names/params into one-line errors."""
    cls = RULES.get(name)
    if cls is None:
        raise UserError(unknown_rule(name, where))
    try:
        return cls(**(params or {}))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(cls.Params.model_fields) or "(none)"
            raise UserError(f"{where}: rule '{name}' has no parameter '{key}'; allowed: {allowed}") from None
        raise UserError(f"{where}: rule '{name}': bad value for '{key}': {err.get('input')!r} ({err['msg']})") from None
