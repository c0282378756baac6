"""Job 4 of dedup (1 task): connected components of the pairs, one survivor per cluster.

The survivor of a cluster is chosen from the documents themselves, never from how
the input was split into tasks: a document of an earlier run's index first, then
the earliest crawl date (documents without one last), then the lowest id. Every
other member of the cluster from this run is dropped as `exact_duplicate` when its
folded text is identical to the survivor's, else `near_duplicate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.dedup import common as C
from shikomi.dedup.verify import ShingleStore, jaccard, near_pair_files


def components(nodes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of each of the sorted `nodes` in the graph of `edges`
    (pairs of values of `nodes`). Arrays throughout (scipy's connected components on a
    sparse graph): about 30 bytes per node and per edge at the peak, where a dict-based
    union-find of Python ints takes about 170 bytes per node."""
    n = len(nodes)
    if n == 0 or len(edges) == 0:
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.searchsorted(nodes, edges[:, 0])
    b = np.searchsorted(nodes, edges[:, 1])
    graph = coo_matrix((np.ones(len(a), dtype=np.int32), (a, b)), shape=(n, n)).tocsr()
    del a, b
    _, labels = connected_components(graph, directed=False)
    return labels


def _load_pairs(files: list[Path]) -> np.ndarray:
    """The distinct pairs of the files, each as (smaller node, larger node), sorted."""
    arrs = [C.load_npy(f) for f in files]
    arrs = [a for a in arrs if len(a)]
    if not arrs:
        return np.zeros((0, 2), dtype=np.uint64)
    n = sum(len(a) for a in arrs)
    lo, hi = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    k = 0
    for a in arrs:
        x, y = np.asarray(a["a"]), np.asarray(a["b"])
        np.minimum(x, y, out=lo[k : k + len(a)])
        np.maximum(x, y, out=hi[k : k + len(a)])
        k += len(a)
    del arrs
    order = np.lexsort((hi, lo))
    lo, hi = lo[order], hi[order]
    del order
    keep = np.ones(n, dtype=bool)
    keep[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return np.stack([lo[keep], hi[keep]], axis=1)


def _node_info(work: Path, index_works: list[str], nodes: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(id, date, exact key) of each of the sorted `nodes`, as arrays in `nodes` order."""
    ids = []
    where = []
    dates = np.zeros(len(nodes), dtype=np.int64)
    exact = np.zeros(len(nodes), dtype=np.uint64)
    src, rank, idx = C.node_src(nodes), C.node_rank(nodes), C.node_idx(nodes)
    works = [work] + [Path(w) for w in index_works]
    for s in np.unique(src):
        for r in np.unique(rank[src == s]):
            want = pa.array(idx[(src == s) & (rank == r)].astype(np.uint32))
            f = pq.ParquetFile(C.docs_file(works[int(s)], int(r)))
            for batch in f.iter_batches(batch_size=65536, columns=["idx", "id", "date", "exact"], use_threads=False):
                t = pa.Table.from_batches([batch])
                t = t.filter(pc.is_in(t["idx"], value_set=want))
                if not t.num_rows:
                    continue
                pos = np.searchsorted(nodes, C.node(int(s), int(r), t["idx"].to_numpy()))
                dates[pos] = t["date"].to_numpy()
                exact[pos] = t["exact"].to_numpy()
                ids.append(t["id"].combine_chunks())
                where.append(pos)
    if not ids:
        return pa.array([], type=pa.string()), dates, exact
    id_arr = pa.concat_arrays(ids)
    return id_arr.take(pa.array(np.argsort(np.concatenate(where), kind="stable"))), dates, exact


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
            ids, dates, keys = _node_info(work, self.index_works, nodes)
            summary["exact_pairs"] = int(len(exact))
            summary["candidate_pairs"] = int(len(near))

            # near pairs between identical texts need no verification
            if len(near) and p["exact"]:
                same = keys[np.searchsorted(nodes, near[:, 0])] == keys[np.searchsorted(nodes, near[:, 1])]
            else:
                same = np.zeros(len(near), dtype=bool)
            near_check = near[~same]
            kept_near = [near[same]]
            if p["verify"] and len(near_check):
                store = ShingleStore(work, self.sig_tasks)
                ok = np.zeros(len(near_check), dtype=bool)
                sims = np.empty(len(near_check), dtype=np.float64)
                n_sims = 0
                unverified = 0
                for i, (a, b) in enumerate(near_check.tolist()):
                    sa = store.get((a >> 32) & 0xFFFFFF, a & 0xFFFFFFFF) if a >> 56 == 0 else None
                    sb = store.get((b >> 32) & 0xFFFFFF, b & 0xFFFFFFFF) if b >> 56 == 0 else None
                    if sa is None or sb is None:
                        ok[i] = True  # a match with an earlier run's index: no text to compare
                        unverified += 1
                        continue
                    j = jaccard(sa, sb)
                    sims[n_sims] = j
                    n_sims += 1
                    ok[i] = j >= p["threshold"]
                store.close()
                sims = sims[:n_sims]
                kept_near.append(near_check[ok])
                summary["verified_pairs"] = n_sims
                summary["verified_pairs_below_threshold"] = int(n_sims - int(ok.sum()) + unverified)
                summary["unverified_index_pairs"] = unverified
                hist, _ = np.histogram(sims, bins=np.linspace(0, 1, 11))
                summary["verified_jaccard_histogram"] = {
                    f"{i / 10:.1f}-{(i + 1) / 10:.1f}": int(c) for i, c in enumerate(hist)
                }
            else:
                kept_near.append(near_check)
            edges = np.concatenate([exact, *kept_near])
            del exact, near, near_check, kept_near

            # connected components on dense ids, in arrays (docs/dedup.md: memory)
            labels = components(nodes, edges)
            del edges
            label_size = np.bincount(labels, minlength=1)
            sizes = label_size[label_size >= 2]

            # survivor of each cluster: an index document first, then the earliest date,
            # then the lowest id (then the node, for equal ids); one array sort
            src = C.node_src(nodes)
            members = np.flatnonzero(label_size[labels] >= 2)
            id_rank = pc.rank(ids, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
            order = members[
                np.lexsort(
                    (
                        nodes[members],
                        id_rank[members],
                        dates[members],
                        (src[members] == 0).astype(np.int8),
                        labels[members],
                    )
                )
            ]
            lab = labels[order]
            head = np.ones(len(order), dtype=bool)
            head[1:] = lab[1:] != lab[:-1]
            surv = order[np.maximum.accumulate(np.where(head, np.arange(len(order)), 0))]
            size = label_size[lab]

            keep_pos, keep_size = order[head], size[head]
            from_run = src[keep_pos] == 0
            keep_pos, keep_size = keep_pos[from_run], keep_size[from_run]
            # documents of an earlier run are not ours to drop
            drop = ~head & (src[order] == 0)
            drop_pos, drop_surv, drop_size = order[drop], surv[drop], size[drop]
            is_exact = (keys[drop_pos] == keys[drop_surv]) if p["exact"] else np.zeros(len(drop_pos), dtype=bool)

            summary["clusters"] = len(sizes)
            summary["cluster_sizes"] = size_histogram(sizes.tolist())
            summary["largest_cluster"] = int(sizes.max()) if len(sizes) else 0
            summary["documents_in_clusters"] = int(sizes.sum())
            summary["exact_duplicates"] = int(is_exact.sum())
            summary["near_duplicates"] = int(len(drop_pos) - is_exact.sum())
            summary["index_matches"] = int((src[drop_surv] != 0).sum())

            keep_rank, keep_idx = C.node_rank(nodes[keep_pos]), C.node_idx(nodes[keep_pos])
            drop_rank, drop_idx = C.node_rank(nodes[drop_pos]), C.node_idx(nodes[drop_pos])
            for r in range(self.sig_tasks):
                sel = np.flatnonzero(keep_rank == r)
                sel = sel[np.argsort(keep_idx[sel], kind="stable")]
                C.save_parquet(
                    C.keep_file(work, r),
                    pa.table(
                        {
                            "idx": pa.array(keep_idx[sel], type=pa.int64()),
                            "cluster_size": pa.array(keep_size[sel], type=pa.int64()),
                        }
                    ),
                )
            for r in range(self.sig_tasks):
                sel = np.flatnonzero(drop_rank == r)
                sel = sel[np.argsort(drop_idx[sel], kind="stable")]
                reasons = np.where(is_exact[sel], "exact_duplicate", "near_duplicate").tolist()
                C.save_parquet(
                    C.remove_file(work, r),
                    pa.table(
                        {
                            "idx": pa.array(drop_idx[sel], type=pa.int64()),
                            "reason": pa.array(reasons, type=pa.string()),
                            "duplicate_of": ids.take(pa.array(drop_surv[sel], type=pa.int64())),
                            "cluster_size": pa.array(drop_size[sel], type=pa.int64()),
                        }
                    ),
                )
                if r == 0:
                    C.maybe_die("cluster")
            C.save_json(work / "cluster" / "summary.json", summary)
        self.stat_update("clusters", value=len(sizes))
        return
        yield
