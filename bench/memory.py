"""Peak memory of one task of every stage at 1x and 10x the input.

Each stage runs as one task in a fresh process (`python -c`), on the output of the
stage before it: extract on a CommonCrawl-like WARC (bench/ccmix.py), then langid ->
dedup -> clean -> mix -> tokenize on a Japanese corpus with near-duplicates (the
corpus of bench/dedup.py; 10x = the corpus repeated with new edits and ids). Peak RSS
is the VmHWM of the process (or `ru_maxrss` of its children, when larger). Target: the 10x run within 20 % of
the 1x run for every stage.

All stages (the default, as in `make bench`):

    python -m bench memory

Some stages only (`extract` covers the WARC and WET runs; `extract_wet` the WET run alone):

    python -m bench.memory --stage mix                      # or --stage mix --stage tokenize
    BENCH_MEMORY_STAGES=mix,tokenize python -m bench memory  # the same through `python -m bench`

A chain stage needs the stages before it (langid -> dedup -> clean -> mix ->
train-tokenizer -> tokenize): they run too, at 1x and 10x, but only the named stages
get a row. `--work DIR` (or BENCH_MEMORY_WORK=DIR) keeps the inputs and run folders in
DIR, and a later run with the same DIR reuses the corpus and every complete stage that is
not named, so a second `--stage tokenize --work DIR` runs tokenize alone; the named
stages always run again (from scratch). Delete DIR to start over, e.g. after changing an
upstream stage. `--quick` uses smaller inputs; `--json` prints the raw results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHAIN = ["langid", "dedup", "clean", "mix", "train-tokenizer", "tokenize"]

CHILD = r"""
import json, resource, sys, time
from shikomi.config import load_config
from shikomi.pipeline.chain import run_one
name, run_dir, inp, overrides, out, force = sys.argv[1:7]
cfg = load_config(None, {"run_dir": run_dir, "executor": {"kind": "local", "tasks": 1, "workers": 1},
                         **json.loads(overrides)})
t0 = time.perf_counter()
c0 = resource.getrusage(resource.RUSAGE_SELF)
stats = run_one(name, cfg, inp or None, workers=1, kind="local", force=force == "1")
wall = time.perf_counter() - t0
s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (s.ru_utime - c0.ru_utime) + (s.ru_stime - c0.ru_stime) + c.ru_utime + c.ru_stime
keep = {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}
# peak RSS of this process (VmHWM: ru_maxrss would count the parent's RSS at fork) and of its children
hwm = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")]
rss = max(hwm[0] if hwm else s.ru_maxrss, c.ru_maxrss) / 1024
open(out, "w").write(json.dumps({"rss_mb": rss, "wall_s": wall, "cpu_s": cpu,
                                 "stats": keep}))
"""


def run_stage_child(
    name: str, run_dir: Path, inp: str | None = None, overrides: dict | None = None, force: bool = True
) -> dict:
    """Run chain stage `name` as one task in a fresh process; its peak RSS (MB), wall and
    CPU seconds and the scalar entries of its stats. `force=False` leaves a complete
    stage as it is (the numbers are then those of a run that did nothing)."""
    out = run_dir.parent / f"{run_dir.name}-{name}.json"
    env = dict(os.environ, PYTHONHASHSEED="0")
    p = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(run_dir), inp or "", json.dumps(overrides or {}), str(out)]
        + ["1" if force else "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    if p.returncode != 0:
        raise RuntimeError(f"bench: stage {name} failed: {p.stderr[-3000:]}")
    return json.loads(out.read_text())


def chain_overrides(vocab: int = 8000) -> dict:
    """Settings of the Japanese chain runs: ja only, a small tokenizer trained on one thread."""
    return {
        "langid": {"languages": ["ja"]},
        "mix": {"sources": [{"name": "ja"}], "ratios": {"ja": 1.0}},
        "tokenizer": {"vocab_size": vocab, "num_threads": 1, "sample_mb": 20},
        "tokenize": {"val_min_docs": 10},
    }


def run_chain(corpus_dir: Path, run_dir: Path, stages: list[str] | None = None, reuse: bool = False) -> dict[str, dict]:
    """langid .. tokenize on a folder of JSONL documents, each stage one task in its own
    process. `stages`: run the chain only up to the last of these (default: all of it);
    with `reuse`, a complete stage not in `stages` is left as it is."""
    res = {}
    ov = chain_overrides()
    todo = CHAIN if stages is None else CHAIN[: max(CHAIN.index(n) for n in stages) + 1]
    for name in todo:
        force = not reuse or stages is None or name in stages
        res[name] = run_stage_child(name, run_dir, str(corpus_dir) if name == "langid" else None, ov, force)
    return res


def japanese_corpus(data: Path, folder: Path, n_docs: int) -> int:
    """The first `n_docs` documents of the (shuffled) corpus of bench/dedup.py, repeated
    with new edits and ids as often as needed, as one JSONL file."""
    from bench.dedup import corpus, write_corpus

    docs, _ = corpus(data, copies=1)
    if len(docs) < n_docs:
        docs, _ = corpus(data, copies=-(-n_docs // len(docs)))
    write_corpus(docs[:n_docs], folder, files=1)
    return n_docs


_MEASURED: dict = {}


def measure(data: Path, quick: bool, stages: list[str] | None = None, work: Path | None = None) -> dict:
    """Stages as one task at 1x and SCALE x input, once per process (the memory and cost
    benches share it): {mult: {"docs", "mix", "stages": {name: result}}}. `stages`: some
    of MEASURED_STAGES (default: all, plus the crawl mix through langid..clean for the
    cost bench); `work`: keep inputs and run folders there and reuse them (module docstring)."""
    from bench.ccmix import build_mix

    key = (str(data), quick, tuple(stages or ()), str(work))
    if key in _MEASURED:
        return _MEASURED[key]
    unknown = sorted(set(stages or ()) - set(MEASURED_STAGES))
    if unknown:
        raise SystemExit(f"bench memory: unknown stage {', '.join(unknown)} (choose from {' '.join(MEASURED_STAGES)})")
    base_pages = 300 if quick else 1000
    base_docs = 1000 if quick else 3000
    tmp = work or Path(tempfile.mkdtemp(prefix="shikomi-bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    chain = None if stages is None else [n for n in stages if n in CHAIN]
    crawl = stages is None or any(n.startswith("extract") for n in stages)
    results: dict = {}
    try:
        for mult in (1, SCALE):
            r: dict = {}
            mix: dict = {}
            if crawl:
                mix = build_mix(data, tmp / f"cc{mult}", pages=base_pages * mult, seed=mult)
                if stages is None or "extract" in stages:
                    r["extract"] = run_stage_child("extract", tmp / f"warc{mult}", str(mix["warc"]))
                if stages is None or "extract" in stages or "extract_wet" in stages:
                    r["extract_wet"] = run_stage_child("extract", tmp / f"wet{mult}", str(mix["wet"]))
                mix = {k: (str(v) if isinstance(v, Path) else v) for k, v in mix.items()}
            if stages is None and mult == SCALE:  # what of the crawl mix survives each stage
                ov = chain_overrides()
                r["mix_chain"] = {
                    name: run_stage_child(name, tmp / f"warc{mult}", None, ov) for name in ("langid", "dedup", "clean")
                }
            n = base_docs * mult
            if chain is None or chain:
                corpus = tmp / f"ja{mult}"
                if work is None or not any(corpus.glob("*")):
                    japanese_corpus(data, corpus, n)
                r.update(run_chain(corpus, tmp / f"run{mult}", chain, reuse=work is not None))
            results[mult] = {"docs": n, "mix": mix, "stages": r}
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    _MEASURED[key] = results
    return results


SCALE = 10
MEASURED_STAGES = ["extract", "extract_wet", "langid", "dedup", "clean", "mix", "tokenize"]


def env_stages() -> list[str] | None:
    """The stages named in BENCH_MEMORY_STAGES (comma-separated), or None (all)."""
    names = [n.strip() for n in os.environ.get("BENCH_MEMORY_STAGES", "").split(",") if n.strip()]
    return names or None


def bench(data: Path, quick: bool, stages: list[str] | None = None, work: Path | None = None) -> dict:
    """The table; `stages` (default: BENCH_MEMORY_STAGES, else all) and `work` (default:
    BENCH_MEMORY_WORK, else a temporary folder) as in the module docstring."""
    stages = stages or env_stages()
    if work is None and os.environ.get("BENCH_MEMORY_WORK"):
        work = Path(os.environ["BENCH_MEMORY_WORK"])
    results = measure(data, quick, stages, work)
    rows = []
    shown = [
        n
        for n in MEASURED_STAGES
        if n in results[1]["stages"] and (stages is None or n in stages or (n == "extract_wet" and "extract" in stages))
    ]
    for name in shown:
        a, b = results[1]["stages"][name], results[SCALE]["stages"][name]
        if name.startswith("extract"):
            k = "records" if name == "extract" else "wet_records"
            unit = f"{results[1]['mix'][k]:,} -> {results[SCALE]['mix'][k]:,} records"
        else:
            unit = f"{results[1]['docs']:,} -> {results[SCALE]['docs']:,} docs in"
        ratio = b["rss_mb"] / a["rss_mb"]
        label = "extract (WET)" if name == "extract_wet" else name
        rows.append(
            [label, unit, f"{a['rss_mb']:.0f}", f"{b['rss_mb']:.0f}", f"{ratio:.2f}", "yes" if ratio <= 1.2 else "NO"]
        )
    return {
        "title": f"peak RSS of one task at 1x and {SCALE}x input (each stage in its own process)",
        "columns": ["stage", "input", "1x peak RSS MB", f"{SCALE}x peak RSS MB", "ratio", "within 20 %"],
        "rows": rows,
        "notes": [
            "extract: the CommonCrawl-like WARC and WET of bench/ccmix.py (every record kind, ~5 % Japanese "
            "pages, default extract config); langid..tokenize: the Japanese corpus of bench/dedup.py (Wikipedia "
            f"paragraphs and leads with edited near-duplicates), {SCALE}x = repeated with 30 % character edits. "
            "One task, one worker per stage; peak RSS = VmHWM of the process, or ru_maxrss of its children when larger."
        ],
        "raw": {str(k): v for k, v in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--stage", action="append", choices=MEASURED_STAGES, help="measure this stage (repeatable)")
    ap.add_argument("--work", type=Path, help="keep and reuse inputs and run folders in this folder")
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON, not the table")
    args = ap.parse_args(argv)
    res = bench(Path(args.data), args.quick, args.stage, args.work)
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
    else:
        from bench.__main__ import to_markdown

        print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
