"""The `dedup:` section: exact, MinHash near-duplicate and repeated-line removal."""

from pydantic import Field, model_validator

from shikomi.config.base import InputEncoding, Section


class DedupLinesConfig(Section):
    """Repeated-line removal (cc_net): normalised lines found in more than `max_docs`
    kept documents of the set are boilerplate (headers, footers, menus) and are cut."""

    enabled: bool = True
    max_docs: int = Field(10, ge=1, description="a line in more than this many documents is removed")
    min_line_chars: int = Field(1, ge=1, description="shorter normalised lines are never counted or removed")
    min_chars: int = Field(20, ge=0, description="a document left with fewer characters after line removal is rejected")
    parts: int = Field(1, ge=1, description="tasks of the line-count job (hash partitions)")


class DedupConfig(Section):
    input: str | None = None
    input_encoding: InputEncoding = None
    tasks: int | None = Field(None, ge=1)

    exact: bool = Field(True, description="drop documents whose normalised text (NFKC, whitespace folded) is identical")
    near: bool = Field(True, description="MinHash LSH near-duplicate removal")
    ngram: int = Field(5, ge=1, description="character n-gram size of the shingles")
    threshold: float = Field(0.8, gt=0, lt=1, description="near-duplicates: n-gram Jaccard similarity at or above this")
    num_perm: int = Field(128, ge=2, le=1024, description="MinHash permutations (bands x rows <= num_perm)")
    bands: int | None = Field(None, ge=1, description="LSH bands; default from datasketch's optimal parameters")
    rows: int | None = Field(None, ge=1, description="LSH rows per band; default from datasketch's optimal parameters")
    fp_weight: float = Field(0.1, ge=0, le=1, description="weight of false positives in the band/row optimisation")
    fn_weight: float = Field(0.9, ge=0, le=1, description="weight of false negatives in the band/row optimisation")
    seed: int | None = Field(None, description="MinHash permutation seed; default: the run seed")
    lowercase: bool = Field(True, description="lowercase before shingling")
    fold_digits: bool = Field(True, description="map every digit to 0 before shingling (dates, prices, counters)")
    verify: bool = Field(
        True, description="compute the real n-gram Jaccard of LSH candidate pairs; drop pairs below threshold"
    )
    bucket_parts: int = Field(1, ge=1, description="tasks per band in bucket matching (hash-range partitions)")
    date_keys: list[str] = Field(
        default_factory=lambda: ["warc_date", "date", "timestamp"],
        description="metadata keys holding the crawl date; the survivor of a cluster is the earliest date, then the lowest id",
    )
    index: list[str] = Field(
        default_factory=list,
        description="dedup stage folders of previous runs: documents matching them are dropped, theirs are kept",
    )
    lines: DedupLinesConfig = Field(default_factory=DedupLinesConfig)

    @model_validator(mode="after")
    def _bands_rows(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both dedup.bands and dedup.rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"dedup.bands x dedup.rows = {self.bands * self.rows} exceeds dedup.num_perm = {self.num_perm}"
            )
        return self
