"""extract.crawl: a crawl by name read over HTTP with injected faults (a loopback
server over a fake crawl tree of real WARC/WET files), the selection, --dry-run,
a file that keeps failing, the rerun, and --input globs and lists."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from shikomi.cli import main
from shikomi.config import load_config
from shikomi.core.documents import read_documents
from shikomi.errors import UserError
from shikomi.executor.run import run_stage
from shikomi.extract.crawl import select_crawl
from shikomi.extract.stage import build
from tests.helpers.crawl_server import CRAWL, CrawlServer, build_crawl_tree

# tiny backoff and timeout: the faults cost milliseconds; the gate is off so that
# every record of the real files becomes a document or a counted skip
NET = {"retries": 3, "backoff_s": 0.01, "backoff_max_s": 0.05, "network_timeout_s": 0.5}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("cc")
    return root, build_crawl_tree(root, shared_data)


def overrides(run_dir, base, **extract):
    ex = {"crawl": CRAWL, "crawl_base": str(base), "japanese_gate": {"enabled": False}, **NET, **extract}
    return {"run_dir": str(run_dir), "extract": ex, "executor": {"tasks": 2, "workers": 1}}


def run_crawl(run_dir, base, **extract):
    cfg = load_config(None, overrides(run_dir, base, **extract))
    return run_stage(build(cfg), cfg)


def parquet_digests(run_dir) -> dict[str, str]:
    out = Path(run_dir) / "extract"
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.parquet"))
        if "logs" not in p.parts
    }


def doc_ids(run_dir) -> list[str]:
    return [d.id for d in read_documents(Path(run_dir) / "extract")]


@pytest.fixture(scope="module")
def disk_run(tree, tmp_path_factory):
    """The same crawl read from the tree on disk (crawl_base = a local mirror)."""
    root, _ = tree
    run_dir = tmp_path_factory.mktemp("disk")
    stats = run_crawl(run_dir, root)
    return run_dir, stats


def test_crawl_over_http_with_faults_is_byte_identical_to_disk(tree, disk_run, tmp_path):
    root, keys = tree
    disk_dir, disk_stats = disk_run
    faults = {
        keys["warc"][0]: ["503", "cut", "stall"],
        keys["warc"][1]: ["slowdown", "cut", "429", "cut"],
        keys["warc"][2]: ["503"],
    }
    with CrawlServer(root, faults) as server:
        stats = run_crawl(tmp_path, server.url)
        for key, fs in faults.items():  # every fault was met, then the file was read whole
            assert [r[3] for r in server.requests_for(key) if r[0] == "GET"] == [*fs, "ok"]
    assert disk_stats["documents_out"] >= 30  # real records from four real WARC files
    assert stats["documents_out"] == disk_stats["documents_out"]
    assert stats["skipped"] == disk_stats["skipped"]
    assert parquet_digests(tmp_path) == parquet_digests(disk_dir)
    assert doc_ids(tmp_path) == doc_ids(disk_dir)
    net = stats["network"]
    assert net["files"] == 4 and net["retries"] == 8 and net["attempts"] == 4 + 8 and net["files_retried"] == 3
    # after a file's first drop every answered request is a Range request from the byte
    # reached: 00000 after its cut (stall, ok), 00001 after its first cut (cut, ok)
    assert net["resumed"] == 4 and "restarted" not in net
    assert net["bytes"] == sum((root / k).stat().st_size for k in keys["warc"])
    assert "network" not in disk_stats  # nothing was read over the network
    saved = json.loads((tmp_path / "extract" / "stats.json").read_text())
    assert saved["network"] == net


def test_a_file_that_keeps_failing_fails_its_task_and_the_rerun_completes(tree, disk_run, tmp_path, capsys):
    root, keys = tree
    disk_dir, _ = disk_run
    # files are sharded in listing order (i % 2): task 0 reads 00000 then 00002. 00002
    # fails after task 0 has already extracted 00000; task 1 is never reached.
    bad = keys["warc"][2]
    with CrawlServer(root, {bad: ["fail"]}) as server:
        cfg_file = tmp_path / "crawl.yaml"
        cfg_file.write_text(yaml.safe_dump(overrides(tmp_path / "run", server.url)))
        rc = main(["extract", "--config", str(cfg_file)])
        err = capsys.readouterr().err
        error_lines = [line for line in err.splitlines() if "error" in line.lower()]
        assert rc == 2
        assert error_lines == [
            f"shikomi: error: {server.url}{bad}: failed after 4 attempts in a row (HTTP 503) at byte 0"
        ]
        assert "Traceback" not in err
        assert not (tmp_path / "run" / "extract" / "stats.json").exists()  # nothing counted
        assert not (tmp_path / "run" / "extract" / "logs" / "extract" / "completions" / "00000").exists()

        server.set_faults({})  # the fault clears; the same command again
        n_before = len(server.log)
        assert main(["extract", "--config", str(cfg_file)]) == 0
        reread = {r[1] for r in server.log[n_before:] if r[0] == "GET"}
    assert bad in reread and keys["warc"][0] in reread  # task 0 from the start
    ids = doc_ids(tmp_path / "run")
    assert len(ids) == len(set(ids))  # nothing twice
    assert sorted(ids) == sorted(doc_ids(disk_dir))  # nothing lost
    assert parquet_digests(tmp_path / "run") == parquet_digests(disk_dir)


def test_rerun_skips_the_tasks_that_completed(tree, tmp_path):
    root, keys = tree
    bad = keys["warc"][3]  # task 1's second file; task 0 completes first
    with CrawlServer(root, {bad: ["fail"]}) as server:
        with pytest.raises(UserError, match=bad):
            run_crawl(tmp_path, server.url)
        server.set_faults({})
        n_before = len(server.log)
        run_crawl(tmp_path, server.url)
        reread = {r[1] for r in server.log[n_before:] if r[0] == "GET" and not r[1].endswith(".paths.gz")}
    assert reread == {keys["warc"][1], keys["warc"][3]}  # exactly task 1's files, not task 0's


def test_selection_segments_file_range_and_sample(tree):
    root, keys = tree

    def sel(seed=1, **kw):
        cfg = load_config(None, overrides("/tmp/unused", root, **kw))
        return select_crawl(cfg.extract, seed).keys

    assert sel() == keys["warc"]
    assert sel(files="wet") == keys["wet"]
    assert sel(segments="1") == keys["warc"][2:]  # the second segment in sorted order
    assert sel(segments="0-1", file_range="1-2") == keys["warc"][1:3]
    assert sel(file_range="3,0") == [keys["warc"][0], keys["warc"][3]]
    # sample: the same seed gives the same files; a file's draw depends on the seed and
    # its key only, so a narrower listing keeps the same files of what is left
    half = {s: sel(seed=s, sample=0.5) for s in range(12)}
    assert half[3] == sel(seed=3, sample=0.5)
    assert len({tuple(v) for v in half.values()}) > 3
    for s, chosen in half.items():
        assert sel(seed=s, sample=0.5, segments="1") == [k for k in chosen if k in keys["warc"][2:]]
    with pytest.raises(UserError, match="file_range"):
        sel(file_range="7-9")
    with pytest.raises(UserError, match="segments"):
        sel(segments="one")
    with pytest.raises(UserError, match="no listing"):
        sel(files="wet", crawl="CC-MAIN-1999-99")


def test_dry_run_prints_files_and_bytes_and_extracts_nothing(tree, tmp_path, capsys):
    root, keys = tree
    total = sum((root / k).stat().st_size for k in keys["warc"])
    with CrawlServer(root) as server:
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text(yaml.safe_dump(overrides(tmp_path / "run", server.url)))
        assert main(["extract", "--config", str(cfg_file), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"crawl {CRAWL} (warc): 4 files listed in 2 segments" in out
        assert "sample 1 (seed 1234) -> 4 files over 2 tasks" in out
        assert f"({total:,} bytes)" in out
        assert {r[0] for r in server.log} == {"GET", "HEAD"} and len(server.log) == 1 + 4  # listing + 4 HEADs
        # more files than dry_run_head_files: an estimate from a few HEADs, said so
        assert main(["extract", "--config", str(cfg_file), "--dry-run", "--set", "extract.dry_run_head_files=2"]) == 0
        out = capsys.readouterr().out
        assert "bytes: about" in out and "estimate: 4 files x the mean size of 2 of them" in out
    assert not (tmp_path / "run" / "extract").exists()


def test_input_globs_and_several_paths(shared_data, tmp_path, capsys):
    warc = shared_data / "warc"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "all"), "extract": {"japanese_gate": {"enabled": False}}}))
    assert main(["extract", "--config", str(cfg), "--input", str(warc)]) == 0
    whole = sorted(doc_ids(tmp_path / "all"))
    # a glob, a repeated --input and a comma-separated list, in one run over three tasks
    args = ["--input", f"{warc}/CC-*.warc.gz", "--input", f"{warc}/wget-2024_dolma-sample-0000.warc.gz"]
    args[-1] += f",{warc}/CC-MAIN-2024-22_whirlwind.warc.wet.gz"
    assert main(["extract", "--config", str(cfg), "-o", str(tmp_path / "list"), *args, "--tasks", "3"]) == 0
    ids = doc_ids(tmp_path / "list")
    assert sorted(ids) == whole and len(ids) == len(set(ids))
    capsys.readouterr()
    assert main(["extract", "--config", str(cfg), "-o", str(tmp_path / "none"), "--input", f"{warc}/*.nothing.gz"]) == 2
    assert capsys.readouterr().err.strip() == f"shikomi: error: input glob matches nothing: {warc}/*.nothing.gz"


def test_several_document_inputs_are_read_once_each_over_tasks(shared_data):
    from shikomi.core.documents import reader_for

    en = shared_data / "en"
    spec = f"{en}/us_*.jsonl,{en}/dolma_ccnet_cc_en_head-*.jsonl.gz"
    alone = [d.id for p in sorted(en.glob("us_*.jsonl")) for d in read_documents(p)]
    alone += [d.id for p in sorted(en.glob("dolma_ccnet_cc_en_head-*.jsonl.gz")) for d in read_documents(p)]
    assert len(alone) >= 59 + 65 + 20
    assert [d.id for d in read_documents(spec)] == alone
    sharded = [d.id for rank in range(3) for d in reader_for(spec).run(None, rank, 3)]
    assert sorted(sharded) == sorted(alone)


def test_document_inputs_over_http_with_faults(shared_data, tmp_path):
    import shutil

    from shikomi.core.documents import reader_for

    en = shared_data / "en"
    for p in [*en.glob("us_*.jsonl"), *en.glob("dolma_ccnet_cc_en_head-*.jsonl.gz")]:
        shutil.copyfile(p, tmp_path / p.name)
    local = sorted(tmp_path.glob("*.jsonl*"))
    keys = [p.name for p in local]
    with CrawlServer(tmp_path, {keys[0]: ["503", "cut"], keys[-1]: ["cut", "slowdown"]}) as server:
        urls = [server.url + k for k in keys]
        for p, u in zip(local, urls):
            want = [(d.id, d.text) for d in read_documents(p)]
            assert want and [(d.id, d.text) for d in read_documents(u)] == want
        # a URL and a local file in one input, over two tasks: each document once
        spec = f"{urls[0]},{local[1]}"
        both = [d.id for rank in range(2) for d in reader_for(spec).run(None, rank, 2)]
    assert sorted(both) == sorted(d.id for p in local[:2] for d in read_documents(p))
