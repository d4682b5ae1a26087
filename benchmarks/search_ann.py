"""Approximate against exact search on 1,000,000 random unit vectors of dimension 256 (issue 16).

    python benchmarks/search_ann.py                       # 1M x 256, hnsw and ivf; about 15 minutes on 2 cores
    python benchmarks/search_ann.py --count 100000        # a quick look

Random unit vectors are the hard case for approximate search (no neighbourhoods to exploit). Each index is
built with albertkit's own code (`albertkit.inference.ann`, as `search build --index-type` builds it), its search
effort tuned to recall@10 >= 0.95 on 1,000 rows held out of it until then, then measured on 200 new random
queries: recall@10 against exact search, and the median latency of a single query (one query at a time, as a
server answers them) against exact search (`albertkit.inference.search.exact_top_k`, a torch matmul over the
whole matrix) in the same process. Memory: the vectors' bytes, and the index's serialized size. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from albertkit.inference import ann
from albertkit.inference.search import exact_top_k


def unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((count, dimension), dtype=np.float32)
    for start in range(0, count, 100_000):  # in blocks: no float64 copy of the whole matrix
        block = rng.standard_normal((min(100_000, count - start), dimension), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def single_query_ms(search, queries: np.ndarray, repeats: int) -> float:
    """Median milliseconds of one query at a time."""
    times = []
    for q in queries[:repeats]:
        started = time.perf_counter()
        search(q[None])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def recall(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx_rows, exact_rows, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--types", nargs="+", default=["hnsw", "ivf"], choices=["hnsw", "ivf"])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    vectors = unit_vectors(args.count, args.dimension, seed=0)
    queries = unit_vectors(args.queries, args.dimension, seed=1)
    exact_rows = exact_top_k(vectors, queries, 10)[1]
    exact_ms = single_query_ms(lambda q: exact_top_k(vectors, q, 10), queries, 30)
    base = {"count": args.count, "dimension": args.dimension, "vectors_mib": round(vectors.nbytes / 2**20),
            "exact_single_query_ms": round(exact_ms, 2), "threads": torch.get_num_threads()}
    print(json.dumps({"kind": "exact", **base}), flush=True)
    for index_type in args.types:
        started = time.perf_counter()
        index, tuned = ann.build_tuned(vectors, index_type, lambda q, k: exact_top_k(vectors, q, k), 0.95)
        build_s = time.perf_counter() - started  # with the tuning
        approx_rows = ann.ann_top_k(index, queries, 10)[1]
        approx_ms = single_query_ms(lambda q, index=index: ann.ann_top_k(index, q, 10), queries, args.queries)
        size = len(ann.require_faiss().serialize_index(index))
        print(json.dumps({
            "kind": index_type, "build_seconds": round(build_s, 1), **tuned,
            "recall_at_10_new_queries": round(recall(approx_rows, exact_rows), 4),
            "single_query_ms": round(approx_ms, 3), "speedup_vs_exact": round(exact_ms / approx_ms, 1),
            "index_mib": round(size / 2**20), **base,
        }), flush=True)
        del index


if __name__ == "__main__":
    main()
