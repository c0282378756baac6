from pydantic import Field

from shikomi.config.base import Section


class CleanConfig(Section):
    """The clean stage: a profile (YAML list of rules with thresholds) run in order.

    `profile` is a built-in name (shikomi/filters/profiles/<name>.yaml: default,
    swallow) or a path to a YAML file. `rules` overrides the profile per
    rule: `{rule: {param: value}}` changes thresholds, `{rule: false}` turns a rule
    off. `quality_labels` / `quality_model` feed the `quality_classifier` rule; without
    either, that rule is left out (and the stage says so).
    """

    profile: str = Field("default", description="built-in profile name or path to a profile YAML")
    rules: dict[str, bool | dict] = Field(default_factory=dict, description="per-rule overrides")
    quality_labels: str | None = Field(None, description="labelled JSONL (text, label good/bad) for quality_classifier")
    quality_model: str | None = Field(None, description="trained fastText model for quality_classifier")
    write_rejected: bool = Field(True, description="write dropped documents to rejected/")
    input: str | None = None
    tasks: int | None = Field(None, ge=1)
