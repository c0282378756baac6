"""core.remote: reading a URL through 503s, SlowDown, stalls and cut connections, with
and without Range support, against the loopback crawl server."""

import random

import pytest

from shikomi.core.remote import RemoteReadError, RetryPolicy, check_url, head_size, http_url, open_input
from shikomi.errors import UserError
from tests.helpers.crawl_server import CrawlServer, build_crawl_tree

FAST = RetryPolicy(retries=3, backoff_s=0.01, backoff_max_s=0.05, timeout_s=0.5)
FAULTS = ["503", "slowdown", "cut", "stall", "429", "cut"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("crawl")
    return root, build_crawl_tree(root, shared_data)


@pytest.mark.parametrize("range_ok", [True, False])
def test_faults_are_retried_and_the_bytes_are_exact(tree, range_ok):
    root, keys = tree
    key = keys["warc"][1]  # the largest file (214 kB): cuts land mid-file
    with CrawlServer(root, {key: FAULTS}, range_ok=range_ok) as server:
        # without Range a restart that dies at the same byte is no progress: allow them all
        policy = FAST if range_ok else RetryPolicy(len(FAULTS), 0.01, 0.05, 0.5)
        with open_input(server.url + key, policy) as f:
            data = f.read()
            raw = f.raw
        log = server.requests_for(key)
    assert data == (root / key).read_bytes()
    assert raw.attempts == len(FAULTS) + 1 and raw.retries == len(FAULTS)
    assert [r[3] for r in log] == [*FAULTS, "ok"]
    cut_at = [r[2] for r in log if r[2]]  # Range headers sent after a drop
    if range_ok:
        # each drop resumes from the byte reached: the offsets only grow, nothing is read twice
        starts = [int(r[6:-1]) for r in cut_at]
        assert starts == sorted(starts) and starts[0] > 0
        served = [r for r in log if r[2] and r[3] in ("ok", "cut", "stall")]  # 206 responses
        assert raw.resumed == len(served) and raw.restarted == 0
    else:
        # the server ignores Range: the download restarts and skips what was read
        assert raw.restarted >= 1 and raw.resumed == 0


def test_a_file_that_keeps_failing_raises_one_line_naming_the_url(tree):
    root, keys = tree
    key = keys["warc"][0]
    with CrawlServer(root, {key: ["fail"]}) as server:
        url = server.url + key
        with pytest.raises(RemoteReadError) as e:
            open_input(url, FAST).read()
        assert len(server.requests_for(key)) == FAST.retries + 1
    msg = str(e.value)
    assert msg.startswith(url) and "\n" not in msg and "4 attempts" in msg and "HTTP 503" in msg
    assert isinstance(e.value, UserError)  # printed by the CLI as one line


def test_not_found_is_not_retried(tree):
    root, keys = tree
    with CrawlServer(root) as server:
        with pytest.raises(RemoteReadError, match="HTTP 404"):
            open_input(server.url + "crawl-data/nope.warc.gz", FAST).read()
        assert len(server.log) == 1


def test_head_size_retries_and_reports_the_length(tree):
    root, keys = tree
    key = keys["warc"][2]
    with CrawlServer(root, {key: ["503", "slowdown"]}) as server:
        assert head_size(server.url + key, FAST) == (root / key).stat().st_size
        assert [r[3] for r in server.requests_for(key)] == ["503", "slowdown", "ok"]


def test_backoff_is_exponential_with_jitter_and_capped():
    p = RetryPolicy(retries=5, backoff_s=1.0, backoff_max_s=8.0)
    rng = random.Random(0)
    for n, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        draws = [p.delay(n, rng=rng) for _ in range(200)]
        assert min(draws) >= full / 2 and max(draws) <= full
        assert len({round(d, 6) for d in draws}) > 100  # jittered, not a constant
    assert p.delay(1, retry_after=5.0, rng=rng) >= 5.0  # Retry-After honoured...
    assert p.delay(1, retry_after=500.0, rng=rng) <= 8.0  # ...up to the cap


def test_s3_urls():
    assert http_url("s3://commoncrawl/crawl-data/CC-MAIN-2024-22/warc.paths.gz") == (
        "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths.gz"
    )
    check_url("s3://commoncrawl/crawl-data/x.warc.gz")
    f = open_input("s3://commoncrawl/crawl-data/x.warc.gz")  # nothing is requested before the first read
    assert f.raw.url == "https://data.commoncrawl.org/crawl-data/x.warc.gz" and f.raw.attempts == 0
    import importlib.util

    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(UserError, match="s3fs") as e:
            check_url("s3://my-bucket/x.warc.gz")
        assert "\n" not in str(e.value) and "s3://my-bucket/x.warc.gz" in str(e.value)
    with pytest.raises(UserError, match="ftp://"):
        check_url("ftp://host/x.warc.gz")
