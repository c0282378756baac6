"""Every clean rule by name: the rule modules, imported here so that each
registers its classes in `base.RULES`, and `make_rule` to instantiate one."""

from __future__ import annotations

from pydantic import ValidationError

from shikomi.errors import UserError
from shikomi.filters import classifier, hojichar_rules, quality_rules  # noqa: F401  (each module registers its rules)
from shikomi.filters.base import RULES, CleanRule


def make_rule(name: str, params: dict | None, where: str = "clean profile") -> CleanRule:
    """Instantiate a registered rule, turning bad names/params into one-line errors."""
    cls = RULES.get(name)
    if cls is None:
        raise UserError(f"{where}: unknown rule '{name}'; known rules: {', '.join(sorted(RULES))}")
    try:
        return cls(**(params or {}))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(cls.Params.model_fields) or "(none)"
            raise UserError(f"{where}: rule '{name}' has no parameter '{key}'; allowed: {allowed}") from None
        raise UserError(f"{where}: rule '{name}': bad value for '{key}': {err.get('input')!r} ({err['msg']})") from None
