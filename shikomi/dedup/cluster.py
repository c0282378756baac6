"""Job 4 of dedup (1 task): union-find over candidate pairs, one survivor per cluster.

The survivor of a cluster is chosen from the documents themselves, never from how
the input was split into tasks: a document of an earlier run's index first, then
the earliest crawl date (documents without one last), then the lowest id. Every
other member of the cluster from this run is dropped as `exact_duplicate` when its
folded text is identical to the survivor's, else `near_duplicate`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C
from shikomi.dedup.verify import ShingleStore, jaccard, near_pair_files


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


def components(nodes: np.ndarray, edges: np.ndarray) -> dict[int, list[int]]:
    """The clusters of 2+ nodes that `edges` (pairs of values of the sorted `nodes`)
    join, each as its nodes in `nodes` order. Arrays throughout (scipy's connected
    components on a sparse graph): about 30 bytes per node and per edge at the peak,
    where a dict-based union-find of Python ints takes about 170 bytes per node."""
    if len(nodes) == 0 or len(edges) == 0:
        return {}
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(nodes)
    a = np.searchsorted(nodes, edges[:, 0])
    b = np.searchsorted(nodes, edges[:, 1])
    graph = coo_matrix((np.ones(len(a), dtype=np.int32), (a, b)), shape=(n, n)).tocsr()
    del a, b
    _, labels = connected_components(graph, directed=False)
    del graph
    order = np.argsort(labels, kind="stable")
    sl = labels[order]
    starts = np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])
    ends = np.r_[starts[1:], n]
    return {int(k): nodes[order[s:e]].tolist() for k, (s, e) in enumerate(zip(starts, ends)) if e - s >= 2}


def _load_pairs(files: list[Path]) -> np.ndarray:
    arrs = [np.asarray(C.load_npy(f)) for f in files]
    arrs = [a for a in arrs if len(a)]
    if not arrs:
        return np.zeros((0, 2), dtype=np.uint64)
    p = np.concatenate(arrs)
    both = np.stack([p["a"], p["b"]], axis=1)
    both.sort(axis=1)
    return np.unique(both, axis=0)


def _node_info(work: Path, index_works: list[str], nodes: np.ndarray) -> dict[int, tuple]:
    """node -> (id, date, exact key) for the given nodes."""
    info: dict[int, tuple] = {}
    src, rank, idx = C.node_src(nodes), C.node_rank(nodes), C.node_idx(nodes)
    works = [work] + [Path(w) for w in index_works]
    for s in np.unique(src):
        for r in np.unique(rank[src == s]):
            want = idx[(src == s) & (rank == r)]
            t = pq.read_table(C.docs_file(works[int(s)], int(r)), columns=["idx", "id", "date", "exact"])
            t = t.filter(pc.is_in(t["idx"], value_set=pa.array(want.astype(np.uint32))))
            for i, did, date, ex in zip(
                t["idx"].to_pylist(), t["id"].to_pylist(), t["date"].to_pylist(), t["exact"].to_pylist()
            ):
                info[int(C.node(int(s), int(r), i))] = (did, date, ex)
    return info


def size_histogram(sizes: list[int]) -> dict[str, int]:
    bins = [(2, 2), (3, 3), (4, 5), (6, 10), (11, 100), (101, 1000), (1001, None)]
    out = {}
    for lo, hi in bins:
        label = str(lo) if lo == hi else (f"{lo}-{hi}" if hi else f"{lo}+")
        out[label] = sum(1 for s in sizes if s >= lo and (hi is None or s <= hi))
    return out


class ClusterDuplicates(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 dedup clusters"

    def __init__(self, work: str, params: dict, sig_tasks: int, index_works: list[str]):
        super().__init__()
        self.work = work
        self.p = params
        self.sig_tasks = sig_tasks
        self.index_works = index_works

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work)
        p = self.p
        summary: dict = {}
        with self.track_time():
            exact_files = sorted((work / "buckets").glob(f"{C.EXACT_BAND}_*.npy"))
            exact = _load_pairs(exact_files)
            near = _load_pairs(near_pair_files(work))
            nodes = np.unique(np.concatenate([exact.ravel(), near.ravel()]))
            info = _node_info(work, self.index_works, nodes)
            summary["exact_pairs"] = int(len(exact))
            summary["candidate_pairs"] = int(len(near))

            # near pairs between identical texts need no verification
            if len(near):
                same = (
                    np.array([info[int(a)][2] == info[int(b)][2] for a, b in near], dtype=bool)
                    if p["exact"]
                    else np.zeros(len(near), bool)
                )
                near_check = near[~same]
                near_same = near[same]
            else:
                near_check = near_same = near
            kept_near = [near_same]
            if p["verify"] and len(near_check):
                store = ShingleStore(work, self.sig_tasks)
                ok = np.zeros(len(near_check), dtype=bool)
                sims = []
                unverified = 0
                for i, (a, b) in enumerate(near_check):
                    a, b = int(a), int(b)
                    sa = (
                        store.get(int(C.node_rank(np.uint64(a))), int(C.node_idx(np.uint64(a))))
                        if a >> 56 == 0
                        else None
                    )
                    sb = (
                        store.get(int(C.node_rank(np.uint64(b))), int(C.node_idx(np.uint64(b))))
                        if b >> 56 == 0
                        else None
                    )
                    if sa is None or sb is None:
                        ok[i] = True  # a match with an earlier run's index: no text to compare
                        unverified += 1
                        continue
                    j = jaccard(sa, sb)
                    sims.append(j)
                    ok[i] = j >= p["threshold"]
                kept_near.append(near_check[ok])
                summary["verified_pairs"] = len(sims)
                summary["verified_pairs_below_threshold"] = int(len(sims) - int(ok.sum()) + unverified)
                summary["unverified_index_pairs"] = unverified
                hist, _ = np.histogram(np.asarray(sims, dtype=float), bins=np.linspace(0, 1, 11))
                summary["verified_jaccard_histogram"] = {
                    f"{i / 10:.1f}-{(i + 1) / 10:.1f}": int(c) for i, c in enumerate(hist)
                }
            else:
                kept_near.append(near_check)
            edges = (
                np.concatenate([exact] + kept_near)
                if (len(exact) or any(len(k) for k in kept_near))
                else np.zeros((0, 2), np.uint64)
            )

            # connected components on dense ids, in arrays (docs/dedup.md: memory)
            members = components(nodes, edges)

            removes: dict[int, list[tuple]] = {r: [] for r in range(self.sig_tasks)}
            keeps: dict[int, list[tuple]] = {r: [] for r in range(self.sig_tasks)}
            sizes = []
            counts = Counter()
            for group in members.values():
                if len(group) < 2:
                    continue
                sizes.append(len(group))

                def key(n: int):
                    did, date, _ = info[n]
                    return (0 if (n >> 56) else 1, date, did, n)

                group.sort(key=key)
                surv = group[0]
                s_id, _, s_exact = info[surv]
                from_index = bool(surv >> 56)
                if not from_index:
                    keeps[int(C.node_rank(np.uint64(surv)))].append((int(C.node_idx(np.uint64(surv))), len(group)))
                for n in group[1:]:
                    if n >> 56:
                        continue  # documents of an earlier run are not ours to drop
                    did, _, ex = info[n]
                    reason = "exact_duplicate" if (p["exact"] and ex == s_exact) else "near_duplicate"
                    counts[reason] += 1
                    if from_index:
                        counts["index_matches"] += 1
                    removes[int(C.node_rank(np.uint64(n)))].append(
                        (int(C.node_idx(np.uint64(n))), reason, s_id, len(group))
                    )

            summary["clusters"] = len(sizes)
            summary["cluster_sizes"] = size_histogram(sizes)
            summary["largest_cluster"] = max(sizes) if sizes else 0
            summary["documents_in_clusters"] = int(sum(sizes))
            summary["exact_duplicates"] = counts["exact_duplicate"]
            summary["near_duplicates"] = counts["near_duplicate"]
            summary["index_matches"] = counts["index_matches"]
            for r, rows in keeps.items():
                rows.sort()
                C.save_parquet(
                    C.keep_file(work, r),
                    pa.table(
                        {
                            "idx": pa.array([x[0] for x in rows], type=pa.int64()),
                            "cluster_size": pa.array([x[1] for x in rows], type=pa.int64()),
                        }
                    ),
                )
            for r, rows in removes.items():
                rows.sort()
                C.save_parquet(
                    C.remove_file(work, r),
                    pa.table(
                        {
                            "idx": pa.array([x[0] for x in rows], type=pa.int64()),
                            "reason": pa.array([x[1] for x in rows], type=pa.string()),
                            "duplicate_of": pa.array([x[2] for x in rows], type=pa.string()),
                            "cluster_size": pa.array([x[3] for x in rows], type=pa.int64()),
                        }
                    ),
                )
                if r == 0:
                    C.maybe_die("cluster")
            C.save_json(work / "cluster" / "summary.json", summary)
        self.stat_update("clusters", value=len(sizes))
        return
        yield
