"""The schemas of what stages write: one model per artifact, one writer, one reader.

    StageStats    <stage>/stats.json           written by core.stats.WriteStageStats
    StageFingerprint <stage>/fingerprint.json  written by pipeline.fingerprint before a
                                               stage writes anything
    MixPlan       mix/plan.json                written by mix.stage.PlanMix
    TokenManifest tokenize/manifest.json       written by tokenize.stage.MergeShards (and
                                               the token folders of train.synthetic and
                                               the experiment runner)
    MetricsRow    train/metrics.jsonl, a row   appended by train.trainer through MetricsLog

Every artifact is written with its model's `write` and read with its `read`; nothing
else in the package opens these files. A file that does not match its model (a field
missing or renamed, a value of the wrong type, a key the model does not declare) is
refused with a `SchemaError` that names the file and the fields.

The JSON is the model dumped with the fields that were set, in declaration order, so
the declaration order is the key order on disk; numbers keep their Python type (a
field declared `Num` keeps an int an int and a float a float). JSON files are
written by `shikomi.core.files.write_json_atomic` (indent 2, UTF-8, newline).

Unknown keys: refused in stats.json, plan.json and manifest.json (one writer, the
package, declares all of them); a metrics row also carries `val_loss/<source>` and
`val_ppl/<source>` for every validation source, and only those.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shikomi.core.files import write_json_atomic
from shikomi.errors import UserError

# an int stays an int and a float a float (pydantic's `float` would turn 1 into 1.0)
Num = int | float


class SchemaError(UserError):
    """A file that does not match the schema of its artifact."""


def _problems(e: ValidationError) -> str:
    out = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            out.append(f"missing field '{loc}'")
        elif err["type"] == "extra_forbidden":
            out.append(f"undeclared field '{loc}'")
        else:
            out.append(f"field '{loc}': {err['msg']}")
    return "; ".join(out[:8]) + (f"; and {len(out) - 8} more" if len(out) > 8 else "")


class Part(BaseModel):
    """A nested object of an artifact: every key declared."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Artifact(Part):
    """A JSON file of a run folder: `FILENAME` in a folder, one `write`, one `read`."""

    FILENAME: ClassVar[str]

    @classmethod
    def parse(cls, data: Any, where: str | Path | None = None):
        """`data` validated against the schema; a `SchemaError` naming `where` otherwise."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            name = where or f"a {cls.FILENAME}"
            raise SchemaError(f"{name}: does not match the {cls.__name__} schema: {_problems(e)}") from None

    def dump(self) -> dict:
        """The JSON object as written: the fields that were set, in declaration order."""
        return self.model_dump(exclude_unset=True, by_alias=True)

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        write_json_atomic(path, self.dump())
        return path

    @classmethod
    def read(cls, folder: str | Path, *, missing_ok: bool = False):
        """`<folder>/FILENAME`; None if it is missing and `missing_ok`, else
        FileNotFoundError. Invalid JSON or a schema mismatch: SchemaError."""
        path = Path(folder) / cls.FILENAME
        if not path.is_file():
            if missing_ok:
                return None
            raise FileNotFoundError(f"{folder}: no {cls.FILENAME}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"{path}: not valid JSON ({e})") from None
        return cls.parse(data, path)


# --------------------------------------------------------------------------- fingerprint.json


class StageFingerprint(Artifact):
    """`<stage>/fingerprint.json`: what determined the stage's output, recorded when
    it starts. `values` are the config keys (dotted, flattened) and the upstream
    fingerprints; `fingerprint` is the SHA-256 of their canonical JSON."""

    FILENAME: ClassVar[str] = "fingerprint.json"

    stage: str
    fingerprint: str
    values: dict[str, Any]


# --------------------------------------------------------------------------- stats.json


class Count(Part):
    documents: int
    chars: int


class RuleStats(Part):
    """One step of a job that counts documents in (its own drops)."""

    job: str
    step: str | None
    documents_in: int
    documents_out: int
    chars_in: int
    chars_out: int
    dropped: dict[str, int]
    time_s: Num
    # clean transforms: matches masked (found, with action keep) and documents
    # touched; decontaminate with action cut: documents cut per benchmark
    masked: int | None = None
    masked_docs: int | None = None
    found: int | None = None
    found_docs: int | None = None
    cut: dict[str, int] | None = None


class ScoreHistogram(Part):
    """langid: language-score histogram per language; `bins` are the N+1 edges."""

    bins: list[Num]
    counts: dict[str, list[int]]


class DedupNormalisation(Part):
    nfkc: bool
    whitespace: str
    lowercase: bool
    fold_digits: bool


class LshParams(Part):
    """Bands x rows and their error probabilities (empty without near dedup); keys
    in the sorted order of dedup's params.json."""

    bands: int | None = None
    candidate_probability: dict[str, Num] | None = None
    effective_threshold: Num | None = None
    false_negative_area: Num | None = None
    false_positive_area: Num | None = None
    fn_weight: Num | None = None
    fp_weight: Num | None = None
    num_perm: int | None = None
    rows: int | None = None
    threshold: Num | None = None


class DedupLines(Part):
    """Repeated-line removal (empty when it is off)."""

    max_docs: int | None = None
    distinct_lines: int | None = None
    repeated_lines: int | None = None
    lines_removed: int | None = None
    line_chars_removed: int | None = None
    documents_with_lines_removed: int | None = None


class DedupStats(Part):
    """dedup: parameters, then the cluster summary (present once clustering ran)."""

    tasks: int
    ngram: int
    normalisation: DedupNormalisation
    lsh: LshParams
    verify: bool
    survivor: str
    index: list[str]
    candidate_pairs: int | None = None
    cluster_sizes: dict[str, int] | None = None
    clusters: int | None = None
    documents_in_clusters: int | None = None
    exact_duplicates: int | None = None
    exact_pairs: int | None = None
    index_matches: int | None = None
    largest_cluster: int | None = None
    near_duplicates: int | None = None
    unverified_index_pairs: int | None = None
    verified_jaccard_histogram: dict[str, int] | None = None
    verified_pairs: int | None = None
    verified_pairs_below_threshold: int | None = None
    lines: DedupLines


class CleanRule(Part):
    """One rule of the clean profile: its name and its parameters (which vary by rule)."""

    model_config = ConfigDict(extra="allow")
    rule: str


class CleanProfile(Part):
    profile: str
    rules: list[CleanRule]
    notes: list[str]


class MixSourceStats(Part):
    weight: Num
    epochs: Num
    expected_tokens: int
    expected_share: Num
    available_tokens: int | None = None
    repeat_tokens: int | None = None
    rehydration_tokens: int | None = None
    reserve_tokens: int | None = None
    anchor: bool | None = None


class TokenizerSampleSource(Part):
    documents: int
    bytes: int
    lines: int
    share_of_bytes: Num


class TokenizerSample(Part):
    documents: int
    bytes: int
    lines: int
    lines_used: int
    lines_split: int
    lines_over_max_sentence_length: int
    sentencepiece_skipped_too_long: int
    by_source: dict[str, TokenizerSampleSource]


class TokenizeSource(Part):
    """tokenize: one source's train/validation split, trim and realised share
    (in manifest.json and stats.json)."""

    train_documents: int
    train_tokens: int
    val_documents: int
    val_tokens: int
    trimmed_documents: int
    trimmed_tokens: int
    val_repeats_dropped: int
    realised_share: Num
    planned_share: Num | None = None
    deviation: Num | None = None
    # sizing by real tokens (tokenize.balance): unique tokens available, train tokens
    # that are repeats (copies beyond the first), epochs, reserve used and left
    available_tokens: int | None = None
    repeat_tokens: int | None = None
    epochs: Num | None = None
    reserve_used_tokens: int | None = None
    reserve_unused_documents: int | None = None
    reserve_unused_tokens: int | None = None
    anchor: bool | None = None


class StageStats(Artifact):
    """`<stage>/stats.json`: what a stage kept and dropped (see shikomi.core.stats for
    how it is counted), then the stage's own fields, each declared here:

        extract           japanese_gate
        langid            languages, kept_by_language, score_histogram, language_thresholds,
                          language_by
        dedup             dedup
        clean             clean_profile
        mix               tokens_counted_with, mix, warnings, documents_repeated (and
                          documents_in/chars_in from the plan)
        train-tokenizer   vocab_size, sample
        tokenize          dtype, sources, shards
    """

    FILENAME: ClassVar[str] = "stats.json"

    stage: str
    documents_in: int
    chars_in: int
    documents_out: int
    chars_out: int
    documents_dropped: int
    dropped: dict[str, Count]
    skipped: dict[str, int]
    # input files with skipped lines or records: {path: {reason: count}}
    skipped_files: dict[str, dict[str, int]] | None = None
    rules: list[RuleStats]
    tokens_out: int | None = None
    jobs: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    # extract: records the Japanese gate judged, passed and skipped by reason
    japanese_gate: dict[str, Any] | None = None
    # extract: files read over the network, attempts, retries, resumed/restarted downloads, bytes
    network: dict[str, int] | None = None
    # langid
    languages: dict[str, int] | None = None
    kept_by_language: dict[str, Count] | None = None
    score_histogram: ScoreHistogram | None = None
    # the score threshold of each kept language ({source: config|auto, languages: ...})
    language_thresholds: dict[str, Any] | None = None
    # labels not from the model's top label: {kana: n, no_kana: n}
    language_by: dict[str, int] | None = None
    # dedup
    dedup: DedupStats | None = None
    # clean
    clean_profile: CleanProfile | None = None
    # mix
    tokens_counted_with: str | None = None
    mix: dict[str, MixSourceStats] | None = None
    warnings: list[str] | None = None
    # copies written beyond the first of each document (documents_out counts every copy)
    documents_repeated: int | None = None
    # train-tokenizer
    vocab_size: int | None = None
    sample: TokenizerSample | None = None
    # tokenize
    dtype: str | None = None
    sources: dict[str, TokenizeSource] | None = None
    shards: int | None = None
    written_at_unix: int | None = None


# --------------------------------------------------------------------------- mix/plan.json


class CountedWith(Part):
    """How the mix counted tokens: `tokenizer` (path, sha256) or `estimate`
    (characters per token by source)."""

    method: str
    path: str | None = None
    sha256: str | None = None
    chars_per_token: dict[str, Num] | None = None


class PlanInput(Part):
    index: int
    label: str
    path: str
    format: str
    documents_read: int
    chars_read: int
    available_documents: int
    available_chars: int
    available_tokens: int
    target_tokens: Num
    base_epochs: int
    epochs: Num
    expected_tokens: int
    expected_documents: int
    reserve_documents: int | None = None
    reserve_tokens: int | None = None


class PlanSource(Part):
    weight: Num
    available_tokens: int
    available_documents: int
    target_tokens: Num
    expected_tokens: int
    expected_documents: int
    epochs: Num
    inputs: list[PlanInput]
    expected_share: Num
    # copies beyond the first of each document, and those due to rehydration
    repeat_tokens: int | None = None
    rehydration_tokens: int | None = None
    reserve_tokens: int | None = None
    anchor: bool | None = None


class MixPlan(Artifact):
    """`mix/plan.json`: the token budget per source and input. `ratios` are the
    configured ratios normalised to sum to 1 (the target mix)."""

    FILENAME: ClassVar[str] = "plan.json"

    seed: int
    counted_with: CountedWith
    ratios: dict[str, Num]
    total_tokens_target: Num
    total_tokens_expected: int
    sources: dict[str, PlanSource]
    warnings: list[str]
    anchor: str | None = None
    max_epochs: Num | None = None
    rehydration: dict[str, Num | str] | None = None


# --------------------------------------------------------------------------- tokenize/manifest.json


class ManifestTokenizer(Part):
    path: str
    sha256: str
    vocab_size: int
    eos_id: int


class ShardEntry(Part):
    """One Megatron shard: `path` is NAME (NAME.bin, NAME.idx) relative to the folder."""

    path: str
    sha256: str
    idx_sha256: str
    documents: int
    tokens: int
    source: str
    split: str
    ids_path: str


class Balance(Part):
    enabled: bool
    tolerance: Num
    trimmed: bool
    plan: str | None


class Condition(Part):
    """A token folder made by the experiment runner for one condition."""

    name: str
    train_languages: list[str]
    from_: str = Field(alias="from")


class TokenManifest(Artifact):
    """`tokenize/manifest.json`: the tokenizer, the dtype and every shard of a token
    folder; the tokenize stage adds per-source numbers and the balance it applied."""

    FILENAME: ClassVar[str] = "manifest.json"

    tokenizer: ManifestTokenizer
    dtype: str
    seed: int
    shards: list[ShardEntry]
    sources: dict[str, TokenizeSource] | None = None
    balance: Balance | None = None
    condition: Condition | None = None


# --------------------------------------------------------------------------- train/metrics.jsonl

VAL_PREFIXES = ("val_loss/", "val_ppl/")


class MetricsRow(BaseModel):
    """One logged training step. Non-finite numbers are written as null. Besides the
    declared fields a row carries `val_loss/<source>` and `val_ppl/<source>` on the
    steps that evaluated."""

    model_config = ConfigDict(extra="allow")

    step: int
    tokens: int
    loss: Num | None
    lr: Num
    grad_norm: Num | None
    tokens_per_s: Num
    z_loss: Num | None = None
    seq_len: int | None = None
    step_time_s: Num | None = None
    mfu: Num | None = None
    batch_crc: int | None = None
    skipped: str | None = None

    @model_validator(mode="after")
    def _only_validation_extras(self):
        for k, v in (self.model_extra or {}).items():
            if not k.startswith(VAL_PREFIXES):
                raise ValueError(f"undeclared field '{k}' (only {'/, '.join(VAL_PREFIXES)}<source> are allowed)")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"field '{k}': a number or null, not {v!r}")
        return self

    def val_losses(self) -> dict[str, float]:
        """{source: validation loss} of this step (empty when it did not evaluate)."""
        p = VAL_PREFIXES[0]
        return {k[len(p) :]: v for k, v in (self.model_extra or {}).items() if k.startswith(p) and v is not None}

    def value(self, key: str):
        """A declared field or a `val_loss/<source>`-style key; None when absent."""
        if key in type(self).model_fields:
            return getattr(self, key)
        return (self.model_extra or {}).get(key)


class MetricsLog:
    """`train/metrics.jsonl`: one MetricsRow per line, appended by the trainer (rank 0).
    `read` skips a last line cut by a kill and refuses a row that is not a MetricsRow."""

    FILENAME = "metrics.jsonl"

    def __init__(self, train_dir: str | Path):
        self.path = Path(train_dir) / self.FILENAME

    def append(self, row: dict | MetricsRow) -> None:
        if isinstance(row, dict):
            row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            try:
                row = MetricsRow.model_validate(row)
            except ValidationError as e:
                raise SchemaError(f"{self.path}: a row does not match the MetricsRow schema: {_problems(e)}") from None
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row.model_dump(exclude_unset=True), ensure_ascii=False) + "\n")

    def read(self) -> list[MetricsRow]:
        """Every row, in order ([] when the file does not exist)."""
        if not self.path.is_file():
            return []
        lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        rows = []
        for i, line in enumerate(lines):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # the last line, cut by a kill
                raise SchemaError(f"{self.path}:{i + 1}: not valid JSON") from None
            try:
                rows.append(MetricsRow.model_validate(data))
            except ValidationError as e:
                raise SchemaError(
                    f"{self.path}:{i + 1}: does not match the MetricsRow schema: {_problems(e)}"
                ) from None
        return rows

    def last(self) -> MetricsRow | None:
        rows = self.read()
        return rows[-1] if rows else None

    def truncate(self, start: int) -> None:
        """On resume from step `start`: keep the rows of earlier steps."""
        if not self.path.is_file():
            return
        if start == 0:
            self.path.unlink()
            return
        rows = [r for r in self.read() if r.step < start]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            "".join(json.dumps(r.model_dump(exclude_unset=True), ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8",
        )
        tmp.replace(self.path)
