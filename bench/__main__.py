"""Run the benchmarks and print/write a markdown table per stage.

Each module in BENCHES exposes `bench(data: Path, quick: bool) -> dict` returning
{"title": str, "columns": [...], "rows": [[...], ...], "notes": [str, ...]}.
Results go to bench/results/<name>.md and .json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCHES = ["extract", "gate", "dedup", "clean", "tokenize", "speed", "memory", "cost", "train", "inspect"]


def to_markdown(res: dict) -> str:
    lines = [f"### {res['title']}", ""]
    cols = res["columns"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in res["rows"]:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    for n in res.get("notes", []):
        lines.append("")
        lines.append(n)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("names", nargs="*", default=BENCHES, help=f"benchmarks to run (default all: {' '.join(BENCHES)})")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"bench: the real-data folder {data} is missing (pass --data)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"# shikomi benchmarks ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')})\n"
    )
    for name in args.names:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            print(f"(bench {name}: not available: {e})\n")
            continue
        t0 = time.time()
        res = mod.bench(data, args.quick)
        md = to_markdown(res)
        print(md)
        print(f"_(took {time.time() - t0:.0f}s)_\n", flush=True)
        (out / f"{name}.md").write_text(md)
        (out / f"{name}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
