"""extract: CommonCrawl WARC/WET records -> documents (Parquet).

One datatrove job over the input files (sharded over tasks, one file at a time).
Every response, resource or conversion record becomes a document or is counted in
stats.json under `skipped/<reason>`; the stage never stops on a bad record.
"""

from __future__ import annotations

import gzip
import re
import signal
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from shikomi.config import Config
from shikomi.core.documents import count_skipped_file, expand_inputs
from shikomi.core.jobs import Job, Stage
from shikomi.core.remote import RemoteFile, RemoteReadError, RetryPolicy, check_url, is_url, open_input
from shikomi.core.writers import StageWriter
from shikomi.errors import UserError
from shikomi.extract.crawl import WithNetworkStats, crawl_inputs, retry_policy
from shikomi.extract.crawl import dry_run as crawl_dry_run
from shikomi.extract.gate import GateResult, JapaneseGate, gate_extras
from shikomi.text.charset import decode_html

WARC_GLOBS = ("*.warc", "*.warc.gz", "*.wet", "*.wet.gz", "*.warc.wet.gz", "*.arc.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
TEXT_TYPES = ("text/plain",)
_DUMP_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}")
_ISO_DATE_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", re.ASCII)


class ExtractTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """SIGALRM-based limit (main thread only; elsewhere no limit is applied)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _raise(signum, frame):
        raise ExtractTimeout()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def extract_resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, main_content=True, alt_texts=False, links=False, form_fields=False, noscript=False)


def extract_trafilatura(html: str) -> str:
    # FineWeb's settings (datatrove's Trafilatura defaults: favor precision, no
    # comments) except deduplicate: trafilatura's dedup keeps a process-wide cache,
    # so a page's text would depend on which pages the worker saw before it and a
    # resumed task would not reproduce the original output.
    from trafilatura import extract

    return extract(html, favor_precision=True, include_comments=False, deduplicate=False) or ""


EXTRACTORS = {"resiliparse": extract_resiliparse, "trafilatura": extract_trafilatura}


def parse_warc_date(raw: str | None) -> str | None:
    """ISO 8601 date of the record, or None when it is missing or invalid."""
    if not raw:
        return None
    s = raw.strip()
    m = _ISO_DATE_RE.fullmatch(s)
    if m and s[0] != "0":  # the usual form, already canonical: only check that it is a real date
        try:
            datetime(*map(int, m.groups()))
            return s
        except ValueError:
            return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y%m%d%H%M%S", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(s, fmt).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
    return None


def decode_content_encoding(body: bytes, encoding: str | None) -> bytes | None:
    """Undo gzip/deflate/br Content-Encoding; None when the body cannot be decoded.
    CommonCrawl usually stores decoded payloads but sometimes keeps the header, so a
    body that is not actually compressed is returned as it is."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity", "none"):
        return body
    if enc in ("gzip", "x-gzip", "deflate"):
        if body[:2] == b"\x1f\x8b":
            try:
                return gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                try:  # truncated stream: take what decodes
                    return zlib.decompressobj(47).decompress(body)
                except zlib.error:
                    return None
        if enc == "deflate":
            for wbits in (15, -15):
                try:
                    return zlib.decompress(body, wbits)
                except zlib.error:
                    continue
        return body if b"<" in body[:2048] else None
    if enc == "br":
        try:
            import brotli

            return brotli.decompress(body)
        except Exception:
            return body if b"<" in body[:2048] else None
    return body if b"<" in body[:2048] else None


_CT_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)


def parse_http_block(block: bytes):
    """(status, lower-cased headers, payload) of an HTTP response block, or None."""
    sep = block.find(b"\r\n\r\n")
    skip = 4
    if sep < 0:
        sep, skip = block.find(b"\n\n"), 2
    if sep < 0 or not block.startswith(b"HTTP/"):
        return None
    lines = block[:sep].decode("latin-1").splitlines()
    parts = lines[0].split()
    try:
        status = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        status = 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, block[sep + skip :]


def looks_binary(body: bytes) -> bool:
    head = body[:2048]
    return b"\x00" in head


class WarcExtractor(PipelineStep):
    """Reads WARC/WET files of this task's shard and yields documents."""

    name = "warc extract"
    type = "📖 - READER"

    def __init__(
        self,
        inputs: list[str],
        extractor: str = "resiliparse",
        source: str | None = None,
        max_body_bytes: int = 5_000_000,
        timeout_s: float = 10.0,
        min_text_chars: int = 1,
        japanese_gate: bool = False,
        gate: dict | None = None,
        extractor_ja: str | None = None,
        network: RetryPolicy | None = None,
    ):
        super().__init__()
        self.inputs = inputs
        self.network = network or RetryPolicy()
        self.extractor = extractor
        self.source = source
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.min_text_chars = min_text_chars
        self.japanese_gate = japanese_gate
        self.gate = JapaneseGate(**(gate or {}))
        self.extractor_ja = extractor_ja or extractor
        self._path, self._records_seen = "", 0  # the file being read, its records so far

    # -- files -------------------------------------------------------------------------
    def files(self) -> list[tuple[str, str]]:
        """(folder, relative path) of every input file, sorted, deterministic."""
        out = []
        for inp in self.inputs:
            if is_url(inp):  # one remote file (core.remote: retries, resume)
                out.append((inp, None))
                continue
            df = get_datafolder(inp) if not Path(inp).is_file() else get_datafolder(str(Path(inp).parent))
            if Path(inp).is_file():
                out.append((inp, None))
                continue
            names = set()
            for g in WARC_GLOBS:
                names.update(df.list_files(glob_pattern=g, recursive=True))
            out.extend((inp, n) for n in sorted(names))
        return out

    def _open(self, folder: str, rel: str | None):
        if rel is None:
            return open_input(folder, self.network)
        return get_datafolder(folder).open(rel, "rb")

    # -- gate (shikomi.extract.gate) ----------------------------------------------------
    def _gated(self, result: GateResult) -> bool:
        """Count the gate's decision; True when the record is skipped."""
        if result.passed:
            self.stat_update(f"gate_pass/{result.reason}")
            return False
        self._skip(f"japanese_gate:{result.reason}")
        return True

    # -- records -----------------------------------------------------------------------
    def _skip(self, reason: str) -> None:
        self.stat_update(f"skipped/{reason}")

    def records(self, stream, source: str) -> Iterator[Document]:
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        extract = EXTRACTORS[self.extractor]
        wanted = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion | WarcRecordType.warcinfo
        it = ArchiveIterator(stream, record_types=wanted, parse_http=False, quirks_mode=True, auto_decode="none")
        while True:
            try:
                record = next(it)
            except StopIteration:
                return
            except RemoteReadError:
                raise  # the file could not be read: the task fails and is rerun
            except Exception as e:
                count_skipped_file(self, "truncated_or_corrupt_file", self._path, f"{type(e).__name__}: {e}")
                return
            self._records_seen += 1
            rtype = str(record.record_type)
            if rtype.endswith("warcinfo"):
                try:
                    info = record.reader.read().decode("utf-8", "replace")
                    m = _DUMP_RE.search(info)
                    if m and not self.source:
                        source = m.group(0)
                except Exception:
                    pass
                continue
            self.stat_update("docs_in")
            try:
                doc = self._record_to_doc(record, rtype, source, extract)
            except RemoteReadError:
                raise
            except Exception:
                self._skip("record_error")
                continue
            if doc is not None:
                yield doc

    def _record_to_doc(self, record, rtype: str, source: str, extract) -> Document | None:
        h = record.headers
        url = (h.get("WARC-Target-URI") or "").strip().strip("<>").strip()
        rid = (h.get("WARC-Record-ID") or "").strip()
        if not rid:
            self._skip("missing_record_id")
            return None
        doc_id = rid.strip("<>")
        date = parse_warc_date(h.get("WARC-Date"))
        if record.content_length > self.max_body_bytes:
            self._skip("body_too_large")
            return None
        meta = {"url": url, "warc_date": date or "", "warc_record_id": rid, "source": source}
        if h.get("WARC-Date") and date is None:
            meta["warc_date_raw"] = h.get("WARC-Date")[:64]
            self.stat_update("invalid_warc_date")
        if h.get("WARC-Truncated"):
            self.stat_update("warc_truncated_payload")  # cut by the crawler: still usable
        block = record.reader.read()
        if len(block) < record.content_length:
            self._skip("truncated_record")  # the file ends inside this record
            return None
        if rtype.endswith("conversion"):  # WET: already text
            text = block.decode("utf-8", errors="replace").strip()
            if self.japanese_gate and self._gated(
                self.gate.decide_text(text, h.get("WARC-Identified-Content-Language"))
            ):
                return None
            meta.update(content_type="text/plain", charset="utf-8")
            return self._finish(doc_id, text, meta)

        if rtype.endswith("response"):
            parsed = parse_http_block(block)
            if parsed is None:
                self._skip("no_http_headers")
                return None
            status, hdrs, body = parsed
            if status and not (200 <= status < 300):
                self._skip("http_redirect" if 300 <= status < 400 else "http_error_status")
                return None
            ctype_full = hdrs.get("content-type", "")
            cenc = hdrs.get("content-encoding")
        else:  # resource
            ctype_full, cenc, body, hdrs = h.get("Content-Type") or "", None, block, {}
        ctype = ctype_full.split(";")[0].strip().lower()
        m = _CT_CHARSET_RE.search(ctype_full)
        http_charset = m.group(1) if m else None
        if not body.strip():
            self._skip("empty_body")
            return None
        body = decode_content_encoding(body, cenc)
        if body is None:
            self._skip("content_encoding_error")
            return None
        if ctype and not (ctype.startswith(HTML_TYPES) or ctype.startswith(TEXT_TYPES)):
            self._skip("non_html_content_type")
            return None
        if looks_binary(body):
            self._skip("binary_body")
            return None
        dec = decode_html(body, http_charset)
        if dec.method == "lossy":
            self.stat_update("charset_lossy")
        self.stat_update(f"charset/{dec.charset}")
        if self.japanese_gate or self.extractor_ja != self.extractor:
            verdict = self.gate.decide_html(dec.text, dec.charset, dec.method, hdrs.get("content-language"), body)
            if self.japanese_gate and self._gated(verdict):
                return None
            if verdict.reason in ("lang", "charset", "kana"):  # looks Japanese
                extract = EXTRACTORS[self.extractor_ja]
        meta.update(content_type=ctype or "unknown", charset=dec.charset)
        if dec.declared and dec.declared != dec.charset:
            meta["charset_declared"] = dec.declared
        if ctype.startswith(TEXT_TYPES):
            text = dec.text.strip()
        else:
            try:
                with self.track_time(), time_limit(self.timeout_s):
                    text = extract(dec.text)
            except ExtractTimeout:
                self._skip("extractor_timeout")
                return None
            except Exception:
                self._skip("extractor_error")
                return None
        return self._finish(doc_id, text, meta)

    def _finish(self, doc_id: str, text: str, meta: dict) -> Document | None:
        text = (text or "").strip()
        if len(text) < self.min_text_chars:
            self._skip("empty_text")
            return None
        return Document(text=text, id=doc_id, metadata=meta)

    def _count_network(self, raw: RemoteFile) -> int:
        """A remote file read to its end: its attempts into stats (`network/...`) and
        the task log; its size. A file that failed raises its one-line error."""
        if raw.error is not None:
            raise raw.error
        for key, v in (("files", 1), ("attempts", raw.attempts), ("retries", raw.retries)):
            self.stat_update(f"network/{key}", value=v)
        for key, v in (("resumed", raw.resumed), ("restarted", raw.restarted), ("files_retried", bool(raw.retries))):
            if v:
                self.stat_update(f"network/{key}", value=int(v))
        self.stat_update("network/bytes", value=raw.pos)
        logger.info(f"read {raw.url}: {raw.pos:,} bytes, {raw.attempts} attempts ({raw.retries} retried)")
        return raw.pos

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = self.files()
        for i, (folder, rel) in enumerate(files):
            if i % world_size != rank:
                continue
            name = Path(rel or folder).name
            m = _DUMP_RE.search(rel or folder)
            source = self.source or (m.group(0) if m else name.split(".")[0])
            self.stat_update("files")
            self._path, self._records_seen = str(Path(folder) / rel) if rel else folder, 0
            try:
                with self._open(folder, rel) as f:
                    yield from self.records(f, source)
                    raw = getattr(f, "raw", None)
                    size = self._count_network(raw) if isinstance(raw, RemoteFile) else f.seek(0, 2)
            except OSError as e:
                count_skipped_file(self, "unreadable_file", self._path, f"{type(e).__name__}: {e}")
                continue
            if not self._records_seen and size:  # bytes, but not one WARC record: not a WARC file
                count_skipped_file(self, "unreadable_file", self._path, f"{size:,} bytes and no WARC record")


def resolve_warc_inputs(inputs: list[str]) -> list[str]:
    out = []
    for inp in expand_inputs(inputs):  # globs and comma-separated lists
        if "://" in inp:
            check_url(inp)
            out.append(inp)
            continue
        p = Path(inp)
        if not p.exists():
            raise UserError(f"extract input not found: {inp}")
        if p.is_dir() and not any(any(p.rglob(g)) for g in WARC_GLOBS):
            raise UserError(f"extract input {inp}: no WARC/WET files ({', '.join(WARC_GLOBS)})")
        out.append(str(p))
    if not out:
        raise UserError("extract: no input; set extract.input in the config or pass --input")
    return out


def dry_run(cfg: Config, input_path: str | None = None) -> str:
    """`shikomi extract --dry-run`: the files and bytes the stage would read."""
    if cfg.extract.crawl and not input_path:
        return crawl_dry_run(cfg)
    configured = [p.replace("{run_dir}", str(cfg.run_dir)) for p in cfg.extract.input]
    inputs = resolve_warc_inputs([input_path] if input_path else configured)
    files = WarcExtractor(inputs).files()
    return crawl_dry_run(cfg, [str(Path(folder) / rel) if rel else folder for folder, rel in files])


def build(cfg: Config, input_path: str | None = None) -> Stage:
    ec = cfg.extract
    configured = [p.replace("{run_dir}", str(cfg.run_dir)) for p in ec.input]  # `{run_dir}` = the run folder
    if ec.generate_sample and not input_path:
        from shikomi.extract.demo_data import ensure_sample

        for inp in configured:
            ensure_sample(Path(inp).parent)
    if ec.crawl and not input_path:  # a crawl by name: the selected files of its listing
        inputs = crawl_inputs(ec, cfg.seed)
    else:
        inputs = resolve_warc_inputs([input_path] if input_path else configured)
    out = str(cfg.stage_dir("extract"))
    tasks = ec.tasks or cfg.executor.tasks
    step = WarcExtractor(
        inputs,
        extractor=ec.extractor,
        source=ec.source,
        max_body_bytes=ec.max_body_bytes,
        timeout_s=ec.extractor_timeout_s,
        min_text_chars=ec.min_text_chars,
        japanese_gate=ec.japanese_gate.enabled,
        gate=ec.japanese_gate.model_dump(exclude={"enabled"}),
        extractor_ja=ec.extractor_ja,
        network=retry_policy(ec),
    )
    extras = WithNetworkStats(gate_extras)
    return Stage("extract", out, [Job("extract", [step, StageWriter(out)], tasks=tasks)], extras=extras)
