"""dedup stage: Local and Ray executors keep the same documents (skipped without Ray)."""

from __future__ import annotations

import random

import pytest
from helpers.dedup import (
    edit_header,
    edit_swap,
    fullwidth_copy,
    make_config,
    outputs,
    run_dedup,
    synthetic_ja,
    write_jsonl,
)

pytestmark = pytest.mark.slow


def test_local_and_ray_keep_the_same_documents(tmp_path):
    pytest.importorskip("ray")
    try:
        from shikomi.executor import ray  # noqa: F401
    except ModuleNotFoundError:
        pytest.skip("the Ray executor is not part of this checkout")
    from shikomi.dedup.stage import build
    from shikomi.executor.run import run_stage

    rng = random.Random(2)
    docs = [{"id": f"d{i:03d}", "text": synthetic_ja(rng, rng.randint(20, 30))} for i in range(60)]
    for i in range(0, 60, 6):
        docs.append({"id": f"copy{i:03d}", "text": fullwidth_copy(docs[i]["text"]), "metadata": {"date": "2030-01-01"}})
        docs.append(
            {
                "id": f"near{i:03d}",
                "text": edit_header(rng, edit_swap(rng, docs[i + 1]["text"]))[1],
                "metadata": {"date": "2030-01-01"},
            }
        )
    folder = write_jsonl(tmp_path / "in", docs, files=4)
    # fewer bands than the default: Ray starts a worker per task, slow on a small machine;
    # the comparison holds for any parameters as long as both runs use the same
    params = dict(bands=4, rows=8, lines={"max_docs": 3})
    local = run_dedup(tmp_path / "local", folder, tasks=2, workers=2, **params)
    cfg = make_config(tmp_path / "ray", tasks=2, workers=2, **params)
    ray_stats = run_stage(build(cfg, str(folder)), cfg, kind="ray")
    kept_local, rej_local = outputs(tmp_path / "local" / "dedup")
    kept_ray, rej_ray = outputs(tmp_path / "ray" / "dedup")
    assert len(rej_local) >= 15
    assert kept_ray == kept_local
    assert {k: m["duplicate_of"] for k, m in rej_ray.items()} == {k: m["duplicate_of"] for k, m in rej_local.items()}
    assert ray_stats["documents_out"] == local["documents_out"]
