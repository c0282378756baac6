from typing import Literal

from pydantic import Field

from shikomi.config.base import Section


class JapaneseGateConfig(Section):
    """Cheap pre-extraction gate (Swallow's trick, shikomi.extract.gate): only pages
    that may be Japanese reach the HTML extractor. On by default; a page passes when
    `lang`, a content-language or a Japanese charset says Japanese, when it has kana,
    or when the gate cannot decide; it is skipped only when it has text and no kana."""

    enabled: bool = True
    min_kana: int = Field(5, ge=1, description="kana letters a page needs to pass as Japanese")
    min_kana_share: float = Field(
        0.05, ge=0, le=1, description="...and their share of kana+kanji+hangul; below either: undecided (passes)"
    )
    min_letters: int = Field(30, ge=0, description="pages with fewer letters and no kana are undecided (pass)")
    scan_chars: int = Field(200_000, ge=0, description="characters of the decoded page the gate reads (0 = all)")


class ExtractConfig(Section):
    input: list[str] = Field(
        default_factory=list, description="WARC/WET files, folders or globs, or URLs (http(s), s3://commoncrawl/)"
    )
    extractor: Literal["resiliparse", "trafilatura"] = "resiliparse"
    extractor_ja: Literal["resiliparse", "trafilatura"] | None = Field(
        None, description="extractor for pages that look Japanese (lang, charset or kana); default: `extractor`"
    )
    source: str | None = Field(
        None, description="value of metadata.source; default: the CC dump name from warcinfo or the file name"
    )
    max_body_bytes: int = Field(
        5_000_000, ge=1024, description="responses larger than this are skipped (reason body_too_large)"
    )
    extractor_timeout_s: float = Field(10.0, gt=0)
    min_text_chars: int = Field(1, ge=0, description="documents with less text are counted as empty_text")
    japanese_gate: JapaneseGateConfig = Field(default_factory=JapaneseGateConfig)
    generate_sample: bool = Field(
        False, description="demo only: generate the embedded sample into the input folder when it is missing"
    )
    tasks: int | None = Field(None, ge=1)
    # A crawl by name (docs/extract.md, "Reading a crawl by name"): the files of
    # <crawl_base>crawl-data/<crawl>/<files>.paths.gz, narrowed by segments, then
    # file_range, then sample. Replaces `input` when set.
    crawl: str | None = Field(None, description="CommonCrawl crawl name, e.g. CC-MAIN-2024-22")
    crawl_base: str = Field(
        "https://data.commoncrawl.org/",
        description="where the crawl-data/ tree is: an http(s) URL, s3://commoncrawl/ or a local mirror folder",
    )
    files: Literal["warc", "wet"] = "warc"
    segments: int | str | None = Field(
        None, description='segment indexes (0-based, in sorted order): "0-9,20"; default all'
    )
    file_range: int | str | None = Field(
        None, description='file indexes (0-based) after the segment choice: "0-999"; default all'
    )
    sample: float = Field(1.0, gt=0, le=1, description="keep this fraction of the files, chosen by the run seed")
    dry_run_head_files: int = Field(
        16, ge=0, description="--dry-run: HEAD every selected file up to this many, else this many to estimate"
    )
    # reading URLs (core/remote.py): attempts in a row without a new byte before a
    # file fails its task, the backoff between them, and the socket timeout
    retries: int = Field(8, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    network_timeout_s: float = Field(60.0, gt=0)
