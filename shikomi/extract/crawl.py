"""A CommonCrawl crawl by name: the files of `extract.crawl`, chosen from the crawl's
listing, and what `shikomi extract --dry-run` says about them.

The listing is `<crawl_base>crawl-data/<crawl>/<files>.paths.gz`: one key per line,
`crawl-data/<crawl>/segments/<segment>/<warc|wet>/<file>`. The selection, in order:

    segments     segment indexes (0-based, in sorted order of segment names): "0-9,20"
    file_range   file indexes (0-based) into the listing left by `segments`: "0-999"
    sample       a fraction of those files: a file is kept when the seeded hash of
                 (run seed, its key) falls under it, so the choice depends on the seed
                 and the file alone, not on the listing order or the task count

The selected files are read as URLs (`<crawl_base><key>`, through core.remote with
retries) or, for a local mirror, as paths, and sharded over the tasks.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

from shikomi.core.remote import RemoteReadError, RetryPolicy, head_size, is_url, open_input
from shikomi.core.sampling import seeded_uniform
from shikomi.errors import UserError


def retry_policy(ec) -> RetryPolicy:
    """The network settings of the extract section."""
    return RetryPolicy(
        retries=ec.retries, backoff_s=ec.backoff_s, backoff_max_s=ec.backoff_max_s, timeout_s=ec.network_timeout_s
    )


def _join(base: str, key: str) -> str:
    if is_url(base):
        return base.rstrip("/") + "/" + key.lstrip("/")
    return str(Path(base) / key)


def listing_path(ec) -> str:
    return _join(ec.crawl_base, f"crawl-data/{ec.crawl}/{ec.files}.paths.gz")


def parse_indexes(spec: int | str | None, n: int, what: str) -> list[int] | None:
    """Indexes of "0-9,20" (inclusive ranges, 0-based) below n; None for all."""
    if spec is None:
        return None
    out: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise UserError(f'extract.{what}: {spec!r} is not a list of indexes or ranges like "0-9,20"') from None
        if a < 0 or b < a:
            raise UserError(f"extract.{what}: bad range {part!r} (0-based, start <= end)")
        if a >= n:
            raise UserError(f"extract.{what}: {part!r} starts past the last of {n} {what.replace('_range', 's')}")
        out.update(range(a, min(b, n - 1) + 1))
    return sorted(out)


def segment_of(key: str) -> str:
    parts = key.split("/")
    return parts[3] if len(parts) > 4 and parts[2] == "segments" else ""


@dataclass
class CrawlSelection:
    crawl: str
    listing: str
    listed: int
    segments: int
    keys: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def read_listing(ec, policy: RetryPolicy) -> list[str]:
    src = listing_path(ec)
    try:
        with open_input(src, policy) as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"crawl {ec.crawl}: no listing at {src} (crawl names look like CC-MAIN-2024-22)") from None
    except RemoteReadError as e:
        if " HTTP 404" in str(e) or " HTTP 403" in str(e):
            raise UserError(f"crawl {ec.crawl}: no listing at {src} (crawl names look like CC-MAIN-2024-22)") from None
        raise
    try:
        text = gzip.decompress(raw).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):
        raise UserError(f"crawl {ec.crawl}: {src} is not a gzipped list of paths") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def select_crawl(ec, seed: int, policy: RetryPolicy | None = None) -> CrawlSelection:
    """The files of `extract.crawl` chosen by segments, file_range and sample."""
    keys = read_listing(ec, policy or retry_policy(ec))
    listed = len(keys)
    segs = sorted({segment_of(k) for k in keys})
    seg_idx = parse_indexes(ec.segments, len(segs), "segments")
    if seg_idx is not None:
        wanted = {segs[i] for i in seg_idx}
        keys = [k for k in keys if segment_of(k) in wanted]
    file_idx = parse_indexes(ec.file_range, len(keys), "file_range") if keys else None
    if file_idx is not None:
        keys = [keys[i] for i in file_idx]
    if ec.sample < 1.0:
        keys = [k for k in keys if seeded_uniform(seed, "crawl-file", k) < ec.sample]
    return CrawlSelection(ec.crawl, listing_path(ec), listed, len(segs), keys, [_join(ec.crawl_base, k) for k in keys])


def crawl_inputs(ec, seed: int) -> list[str]:
    """The URLs (or mirror paths) of the selected files; a UserError when none."""
    sel = select_crawl(ec, seed)
    if not sel.urls:
        raise UserError(f"crawl {ec.crawl}: the selection (segments, file_range, sample) keeps no file")
    return sel.urls


def _fmt_bytes(n: float) -> str:
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:,.0f} B"


def _size(path: str, policy: RetryPolicy) -> int | None:
    if is_url(path):
        return head_size(path, policy)
    return os.path.getsize(path)


def measure(paths: list[str], head_files: int, policy: RetryPolicy) -> str:
    """ "N bytes" for the files: every file when there are at most `head_files`, else an
    estimate from `head_files` of them spread over the list."""
    if not paths:
        return "0 B"
    if len(paths) <= head_files:
        sizes = [_size(p, policy) for p in paths]
        known = [s for s in sizes if s is not None]
        total = sum(known)
        note = "" if len(known) == len(sizes) else f" ({len(sizes) - len(known)} files without a size)"
        return f"{_fmt_bytes(total)} ({total:,} bytes){note}"
    if head_files <= 0:
        return "not measured (extract.dry_run_head_files is 0)"
    step = len(paths) / head_files
    probe = [paths[int(i * step)] for i in range(head_files)]
    known = [s for s in (_size(p, policy) for p in probe) if s is not None]
    if not known:
        return "unknown (the server gives no sizes)"
    est = sum(known) / len(known) * len(paths)
    return f"about {_fmt_bytes(est)} (estimate: {len(paths):,} files x the mean size of {len(known)} of them)"


def dry_run(cfg, paths: list[str] | None = None) -> str:
    """What `shikomi extract --dry-run` prints: the files (and bytes) a run would read,
    the crawl's selection when `paths` (the files of explicit inputs) is None."""
    ec = cfg.extract
    policy = retry_policy(ec)
    tasks = ec.tasks or cfg.executor.tasks
    lines = []
    if paths is None:
        sel = select_crawl(ec, cfg.seed, policy)
        lines.append(
            f"crawl {ec.crawl} ({ec.files}): {sel.listed:,} files listed in {sel.segments:,} segments ({sel.listing})"
        )
        lines.append(
            f"selection: segments {ec.segments if ec.segments is not None else 'all'}, "
            f"file_range {ec.file_range if ec.file_range is not None else 'all'}, "
            f"sample {ec.sample:g} (seed {cfg.seed}) -> {len(sel.urls):,} files over {min(tasks, len(sel.urls))} tasks"
        )
        paths = sel.urls
    else:
        lines.append(f"input: {len(paths):,} files over {min(tasks, len(paths))} tasks")
    lines.append(f"bytes: {measure(paths, ec.dry_run_head_files, policy)}")
    lines.append("dry run: nothing extracted")
    return "\n".join(lines)


def network_stats(out_dir: str) -> dict:
    """stats.json's `network`: the `network/<key>` counts of the extract job summed
    over its tasks (files read over the network, attempts, retries, ...)."""
    from shikomi.core.stats import merge_task_stats, stat_total

    acc: dict[str, int] = {}
    for step in merge_task_stats(Path(out_dir) / "logs" / "extract"):
        for k, v in (step.get("stats") or {}).items():
            if k.startswith("network/"):
                acc[k.split("/", 1)[1]] = acc.get(k.split("/", 1)[1], 0) + int(stat_total(v))
    return {"network": dict(sorted(acc.items()))} if acc else {}


@dataclass(frozen=True)
class WithNetworkStats:
    """The stage's extras for stats.json plus `network_stats` (picklable)."""

    extras: object = None

    def __call__(self, out_dir: str) -> dict:
        out = dict(self.extras(out_dir) or {}) if self.extras is not None else {}
        out.update(network_stats(out_dir))
        return out
