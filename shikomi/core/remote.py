"""Reading input files over HTTP(S): a streaming, file-like reader that survives the
network (standard library only).

    RetryPolicy        how often and how long to retry, and the socket timeout
    RemoteFile         a readable stream of one URL: retries with exponential backoff
                       and jitter on 429/500/502/503/504 (and S3's SlowDown), timeouts,
                       dropped connections and short reads; a dropped download resumes
                       from its byte offset with a Range request, or, where the server
                       ignores Range, restarts and skips the bytes already read
    open_input         a binary stream of a local path or a URL
    head_size          the size of a URL (HEAD, with the same retries)
    http_url           `s3://commoncrawl/<key>` -> CommonCrawl's public HTTPS endpoint

A file that still fails after the retries raises `RemoteReadError`, one line naming
the URL: the task that read it fails (and is rerun), nothing of it is counted.
"""

from __future__ import annotations

import http.client
import importlib.util
import io
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from shikomi.errors import UserError

CC_HTTPS = "https://data.commoncrawl.org/"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "shikomi/0.1 (pretraining corpus builder; python urllib)"


class RemoteReadError(UserError):
    """A URL that could not be read (after the retries, or a status that retrying
    cannot fix). The message is one line and names the URL."""


class _Retryable(Exception):
    """A failure worth another attempt (a status, a timeout, a dropped connection)."""

    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` attempts in a row without a new byte are allowed before a file fails
    (progress resets the count, so a long download survives many separate drops).
    The n-th wait is drawn from [d/2, d] with d = min(backoff_max_s, backoff_s * 2**(n-1));
    a server's Retry-After is honoured up to backoff_max_s."""

    retries: int = 8
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 60.0

    def delay(self, n: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        d = min(self.backoff_max_s, self.backoff_s * 2 ** max(0, n - 1))
        d = d / 2 + (rng or random).uniform(0, d / 2)
        if retry_after is not None:
            d = max(d, min(retry_after, self.backoff_max_s))
        return d


def is_http(path: str) -> bool:
    return str(path).startswith(("http://", "https://"))


def is_url(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def http_url(url: str) -> str:
    """The HTTP(S) URL that serves `url`: http(s) as is, `s3://commoncrawl/<key>` on
    CommonCrawl's public HTTPS endpoint. Other schemes raise UserError."""
    if is_http(url):
        return url
    if url.startswith("s3://"):
        bucket, _, key = url[5:].partition("/")
        if bucket == "commoncrawl":
            return CC_HTTPS + key
        raise UserError(
            f"{url}: only s3://commoncrawl/ is read without credentials (over {CC_HTTPS}); for another bucket "
            "pip install s3fs and configure AWS credentials, or give presigned https:// URLs"
        )
    raise UserError(f"{url}: not an http(s):// or s3://commoncrawl/ URL")


def _retry_after(headers) -> float | None:
    v = (headers or {}).get("Retry-After") if headers is not None else None
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _classify(e: BaseException) -> _Retryable | None:
    """A retryable failure, or None when retrying cannot help (raised as it is)."""
    if isinstance(e, _Retryable):
        return e
    if isinstance(e, urllib.error.HTTPError):
        body = b""
        try:
            body = e.read(4096) or b""
        except Exception:  # noqa: BLE001 - the body is only a hint
            pass
        if e.code in RETRY_STATUS or b"SlowDown" in body:
            what = "SlowDown" if b"SlowDown" in body else f"HTTP {e.code}"
            return _Retryable(what, _retry_after(e.headers))
        return None
    if isinstance(e, urllib.error.URLError):
        return _Retryable(f"connection failed ({e.reason})")
    if isinstance(e, http.client.IncompleteRead):
        return _Retryable("connection closed mid-file")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return _Retryable("timed out")
    if isinstance(e, (http.client.HTTPException, OSError)):
        return _Retryable(f"{type(e).__name__}: {e}".rstrip(": "))
    return None


def _fatal(url: str, e: BaseException) -> RemoteReadError:
    if isinstance(e, urllib.error.HTTPError):
        return RemoteReadError(f"{url}: HTTP {e.code} {e.reason}")
    return RemoteReadError(f"{url}: {type(e).__name__}: {e}")


class RemoteFile(io.RawIOBase):
    """A raw, read-only stream of one URL (wrap it in io.BufferedReader, as
    `open_input` does). Counters after reading: `attempts` (requests made), `retries`
    (attempts that failed), `resumed` (Range requests after a drop), `restarted`
    (downloads restarted from 0 because the server ignored Range), `pos` (bytes
    read). `error` holds the RemoteReadError once raised."""

    def __init__(self, url: str, policy: RetryPolicy | None = None, sleep=time.sleep):
        super().__init__()
        self.source = url
        self.url = http_url(url)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random()
        self._resp = None
        self._eof = False
        self._failed_in_row = 0
        self.pos = 0
        self.size: int | None = None
        self.etag: str | None = None
        self.attempts = 0
        self.retries = 0
        self.resumed = 0
        self.restarted = 0
        self.error: RemoteReadError | None = None

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    # -- one attempt -------------------------------------------------------------------
    def _request(self):
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        self.attempts += 1
        resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.policy.timeout_s)
        etag = resp.headers.get("ETag")
        if self.etag and etag and etag != self.etag:
            resp.close()
            raise RemoteReadError(f"{self.url}: the file changed while it was read (ETag {self.etag} -> {etag})")
        self.etag = self.etag or etag
        if resp.status == 206:
            start = (resp.headers.get("Content-Range") or "").split(" ")[-1].split("-")[0]
            if not self.pos or start != str(self.pos):
                resp.close()
                raise _Retryable(f"unexpected Content-Range {resp.headers.get('Content-Range')!r}")
            self.resumed += 1
        elif resp.status == 200:
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit():
                self.size = int(length)
            if self.pos:  # Range ignored: restart and skip what was already read
                self.restarted += 1
                left = self.pos
                buf = bytearray(min(left, 1 << 20))
                try:
                    while left:
                        n = resp.readinto(memoryview(buf)[: min(left, len(buf))])
                        if not n:
                            raise http.client.IncompleteRead(b"")
                        left -= n
                except BaseException:
                    resp.close()
                    raise
        else:
            resp.close()
            raise _Retryable(f"HTTP {resp.status}")
        self._resp = resp

    def _failed(self, e: BaseException) -> None:
        """Count a failed attempt; wait, or raise RemoteReadError when out of retries."""
        self._close_resp()
        why = _classify(e)
        if why is None:
            self.error = e if isinstance(e, RemoteReadError) else _fatal(self.url, e)
            raise self.error from None
        self.retries += 1
        self._failed_in_row += 1
        if self._failed_in_row > self.policy.retries:
            self.error = RemoteReadError(
                f"{self.url}: failed after {self._failed_in_row} attempts in a row ({why}) at byte {self.pos:,}"
            )
            raise self.error from None
        self._sleep(self.policy.delay(self._failed_in_row, why.retry_after, self._rng))

    def _close_resp(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._resp = None

    # -- reading -----------------------------------------------------------------------
    def readinto(self, b) -> int:
        if self.error is not None:
            raise self.error
        if self._eof or not len(b):
            return 0
        while True:
            try:
                if self._resp is None:
                    self._request()
                n = self._resp.readinto(b)
                if not n:
                    if self.size is not None and self.pos < self.size:
                        raise http.client.IncompleteRead(b"", self.size - self.pos)
                    self._eof = True
                    self._close_resp()
                    return 0
                self.pos += n
                self._failed_in_row = 0
                return n
            except RemoteReadError as e:
                self.error = e
                self._close_resp()
                raise
            except Exception as e:  # noqa: BLE001 - classified in _failed
                self._failed(e)

    def close(self) -> None:
        self._close_resp()
        super().close()


_FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def check_url(path: str) -> None:
    """A UserError saying what to install or do when `path` is a URL this machine
    cannot read: http(s) and s3://commoncrawl/ always work; other s3://, gs:// and
    az:// URLs need their fsspec filesystem package."""
    if is_http(path) or path.startswith("s3://commoncrawl/"):
        return
    scheme = path.split("://", 1)[0]
    needs = _FSSPEC_PACKAGES.get(scheme)
    if needs and importlib.util.find_spec(needs) is not None:
        return
    if scheme == "s3":
        http_url(path)  # raises: names s3://commoncrawl/ and what else to do
    raise UserError(f"{path}: reading {scheme}:// needs {needs or 'an fsspec filesystem'} installed")


def open_input(path: str, policy: RetryPolicy | None = None, buffer_size: int = 1 << 20):
    """A binary stream of a local file or a URL: http(s) and s3://commoncrawl/ through
    `RemoteFile` (the stream's `raw`); other URLs through fsspec (see `check_url`)."""
    if not is_url(path):
        return open(path.removeprefix("file://"), "rb")
    check_url(path)
    if is_http(path) or path.startswith("s3://commoncrawl/"):
        return io.BufferedReader(RemoteFile(path, policy), buffer_size=buffer_size)
    import fsspec

    return fsspec.open(path, "rb").open()


def head_size(url: str, policy: RetryPolicy | None = None, sleep=time.sleep) -> int | None:
    """Content-Length of `url` from a HEAD request (retried like a read); None when
    the server does not say."""
    policy = policy or RetryPolicy()
    target = http_url(url)
    rng = random.Random()
    n = 0
    while True:
        try:
            req = urllib.request.Request(target, method="HEAD", headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=policy.timeout_s) as resp:
                v = resp.headers.get("Content-Length")
                return int(v) if v and v.isdigit() else None
        except Exception as e:  # noqa: BLE001 - classified below
            why = _classify(e)
            if why is None:
                raise _fatal(target, e) from None
            n += 1
            if n > policy.retries:
                raise RemoteReadError(f"{target}: failed after {n} attempts ({why})") from None
            sleep(policy.delay(n, why.retry_after, rng))


def read_url(url: str, policy: RetryPolicy | None = None) -> bytes:
    """The whole content of a (small) URL, with retries."""
    with open_input(url, policy) as f:
        return f.read()
