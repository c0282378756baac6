"""Console progress of a running job (a tqdm bar on stderr, only on a terminal)."""

from __future__ import annotations

import json
import os
from pathlib import Path


class TaskProgress:
    """Console progress of one job of a stage while the executor runs it: tasks
    done, documents per second (from the finished tasks' datatrove stats) and ETA,
    as a tqdm bar on stderr. Only on a terminal; a no-op in logs, tests and CI."""

    def __init__(self, stage: str, job: str, logs_dir: str | Path, tasks: int, enabled: bool | None = None):
        import sys
        import threading

        self.stage, self.job, self.tasks = stage, job, tasks
        self.logs = Path(logs_dir)
        if enabled is None:
            enabled = sys.stderr.isatty() and job != "summary" and not os.environ.get("SHIKOMI_NO_PROGRESS")
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = None
        self._bar = None
        self._seen: dict[str, int] = {}

    def _done(self) -> list[str]:
        d = self.logs / "completions"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def _docs(self, rank: str) -> int:
        if rank not in self._seen:
            n = 0
            try:
                steps = json.loads((self.logs / "stats" / f"{int(rank):05d}.json").read_text())
                for st in steps:
                    v = (st.get("stats") or {}).get("docs_in")
                    if v is not None:
                        n = int(v.get("total", 0) if isinstance(v, dict) else v)
                        break
            except (OSError, ValueError, TypeError, AttributeError):
                n = 0
            self._seen[rank] = n
        return self._seen[rank]

    def _update(self) -> None:
        import time

        done = self._done()
        new = [r for r in done if r not in self._seen]
        docs_before = sum(self._seen.values())
        docs = sum(self._docs(r) for r in done)
        if self._bar is not None:
            self._bar.update(len(done) - self._bar.n)
            dt = max(time.time() - self._t0, 1e-6)
            if docs > 0 and (new or docs != docs_before):
                self._bar.set_postfix_str(
                    f"{docs - self._docs_at_start:,} docs, {(docs - self._docs_at_start) / dt:,.0f} docs/s"
                )

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._update()
            except Exception:  # noqa: BLE001 - progress must never break a stage
                pass

    def __enter__(self):
        if not self.enabled:
            return self
        import threading
        import time

        from tqdm import tqdm

        already = self._done()
        self._docs_at_start = sum(self._docs(r) for r in already)
        self._t0 = time.time()
        self._bar = tqdm(
            total=self.tasks,
            initial=len(already),
            desc=f"[{self.stage}] {self.job}",
            unit="task",
            dynamic_ncols=True,
            leave=False,
        )
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2)
            try:
                self._update()
            except Exception:  # noqa: BLE001
                pass
        if self._bar is not None:
            self._bar.close()
        return False
