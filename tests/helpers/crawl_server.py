"""A fake CommonCrawl on the loopback interface: a `crawl-data/` tree built in a temporary
folder from the real WARC/WET files of ../shared/data/warc, served over HTTP by a
server that injects the network faults CommonCrawl's endpoint shows under load.

    build_crawl_tree(dest, shared_data)   the tree: warc.paths.gz, wet.paths.gz, files
    CrawlServer(root, faults=...)         127.0.0.1 only, port 0, a daemon thread; it
                                          stops by itself after `lifetime_s` seconds
                                          or `max_requests` requests

Faults are given per file key (the path under the root) as a list used up one request
at a time; once a key's list is empty its requests are served normally:

    "503"       HTTP 503
    "429"       HTTP 429 with Retry-After: 0
    "slowdown"  S3's 503 SlowDown (XML body)
    "stall"     headers and half the body, then silence past the client's timeout
    "cut"       Content-Length promised, half the body sent, connection closed
    "404"       HTTP 404
    "fail"      HTTP 503 on every request (not used up)

Range requests (`bytes=N-`) are honoured unless `range_ok=False`.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CRAWL = "CC-MAIN-TEST"
SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

# (segment, kind, name, file under ../shared/data/warc)
TREE = [
    ("1700000000000.10", "warc", "00000", "CC-MAIN-2020-34_sample_resiliparse-warcfile.warc.gz"),
    ("1700000000000.10", "warc", "00001", "wget-2024_dolma-sample-0000.warc.gz"),
    ("1700000000000.20", "warc", "00002", "CC-MAIN-2024-22_whirlwind.warc.gz"),
    ("1700000000000.20", "warc", "00003", "CC-2019_jwarc-cc.warc.gz"),
    ("1700000000000.20", "wet", "00002", "CC-MAIN-2024-22_whirlwind.warc.wet.gz"),
]


def build_crawl_tree(dest: Path, shared_data: Path) -> dict[str, list[str]]:
    """Write `dest/crawl-data/CC-MAIN-TEST/...` with the listings; return the keys
    listed per kind ("warc", "wet")."""
    keys: dict[str, list[str]] = {"warc": [], "wet": []}
    for seg, kind, num, src in TREE:
        ext = "warc.gz" if kind == "warc" else "warc.wet.gz"
        key = f"crawl-data/{CRAWL}/segments/{seg}/{kind}/{CRAWL}-{seg}-{num}.{ext}"
        (dest / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "warc" / src, dest / key)
        keys[kind].append(key)
    for kind, ks in keys.items():
        (dest / f"crawl-data/{CRAWL}/{kind}.paths.gz").write_bytes(
            gzip.compress(("\n".join(ks) + "\n").encode(), mtime=0)
        )
    return keys


class CrawlServer:
    def __init__(
        self,
        root: Path,
        faults: dict[str, list[str]] | None = None,
        *,
        range_ok: bool = True,
        stall_s: float = 1.0,
        lifetime_s: float = 120.0,
        max_requests: int = 400,
        port: int = 0,
    ):
        self.root = Path(root).resolve()
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.range_ok = range_ok
        self.stall_s = stall_s
        self.max_requests = max_requests
        self.log: list[tuple[str, str, str, str]] = []  # (method, key, Range header, what was done)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> CrawlServer:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def set_faults(self, faults: dict[str, list[str]]) -> None:
        with self._lock:
            self.faults = {k: list(v) for k, v in faults.items()}

    def requests_for(self, key: str) -> list[tuple[str, str, str, str]]:
        return [r for r in self.log if r[1] == key]

    def _next_fault(self, key: str) -> str:
        with self._lock:
            if len(self.log) >= self.max_requests:
                return "over-limit"
            q = self.faults.get(key) or []
            if q and q[0] == "fail":
                return "fail"
            return q.pop(0) if q else ""

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # quiet
                pass

            def _error(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                key = self.path.split("?")[0].lstrip("/")
                path = (server.root / key).resolve()
                fault = server._next_fault(key)
                rng = self.headers.get("Range") or ""
                with server._lock:
                    server.log.append((self.command, key, rng, fault or "ok"))
                if fault in ("503", "fail", "over-limit"):
                    return self._error(503, b"Service Unavailable")
                if fault == "429":
                    return self._error(429, b"Too Many Requests", {"Retry-After": "0"})
                if fault == "slowdown":
                    return self._error(503, SLOWDOWN, {"Content-Type": "application/xml"})
                if fault == "404" or not path.is_file() or server.root not in path.parents:
                    return self._error(404, b"Not Found")
                data = path.read_bytes()
                size, start = len(data), 0
                if rng.startswith("bytes=") and server.range_ok:
                    start = int(rng[6:].split("-")[0])
                    if start >= size:
                        return self._error(416, b"", {"Content-Range": f"bytes */{size}"})
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                    self.send_header("Accept-Ranges", "bytes" if server.range_ok else "none")
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{size}-{path.stat().st_mtime_ns}"')
                self.end_headers()
                if head:
                    return
                if fault in ("cut", "stall"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "stall":
                        time.sleep(server.stall_s)
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's name
                try:
                    self._serve(head=False)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_HEAD(self):  # noqa: N802
                self._serve(head=True)

        return Handler
