"""Approximate nearest-neighbour indexes for large search indexes, on faiss (the optional `ann` extra).

`hnsw`: a graph (faiss IndexHNSWFlat, inner product on unit vectors = cosine); `ivf`: k-means cells, a query
scans the `nprobe` nearest (IndexIVFFlat). Both keep the float32 vectors, so scores are exact cosines of the
rows they return; what is approximate is which rows. At build time the search effort (efSearch, nprobe) is raised
until recall@10 against exact search reaches the target, measured with 1,000 rows as queries before they are added
(so that they are new to the index, as real queries are); that recall is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.errors import UserError

INDEX_TYPES = ("exact", "hnsw", "ivf")
ANN_FILE = "ann.faiss"
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 100
EFFORT_START, EFFORT_LIMIT = 16, 4096
RECALL_SAMPLE, RECALL_K = 1000, 10
ADD_CHUNK = 65_536  # rows added per call: bounds the float32 copy of a memory-mapped index


def require_faiss() -> Any:
    try:
        import faiss
    except ImportError as err:
        raise UserError("--index-type hnsw and ivf need faiss: pip install 'albertkit[ann]' (faiss-cpu)") from err
    return faiss


def held_out_rows(count: int, seed: int = 0) -> np.ndarray:
    """The rows kept out of the index until its recall has been measured with them as queries (sorted)."""
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(count, size=min(count // 2, RECALL_SAMPLE), replace=False))


def build_ann(vectors: np.ndarray, index_type: str, seed: int = 0, skip: np.ndarray | None = None) -> Any:
    """A faiss index over `vectors` (unit rows, float32; a memmap is read in chunks) whose ids are the row numbers;
    rows in `skip` are left out (`add_rows` adds them later)."""
    faiss = require_faiss()
    count, dimension = vectors.shape
    if index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif index_type == "ivf":
        cells = max(1, min(int(4 * math.sqrt(count)), count // 39))  # faiss wants >= 39 training rows per cell
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, cells, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(count, size=min(count, cells * 40), replace=False))
        inner.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    else:
        raise UserError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    index = faiss.IndexIDMap(inner)
    keep = np.ones(count, dtype=bool)
    if skip is not None:
        keep[skip] = False
    for start in range(0, count, ADD_CHUNK):
        rows = np.arange(start, min(start + ADD_CHUNK, count))[keep[start:start + ADD_CHUNK]]
        add_rows(index, vectors, rows)
    return index


def add_rows(index: Any, vectors: np.ndarray, rows: np.ndarray) -> None:
    if len(rows):
        index.add_with_ids(np.ascontiguousarray(vectors[rows], dtype=np.float32), rows.astype(np.int64))


def set_effort(index: Any, index_type: str, effort: int) -> None:
    """The search effort: HNSW's efSearch, or the cells an IVF query scans (nprobe)."""
    inner = require_faiss().downcast_index(index.index)
    if index_type == "hnsw":
        inner.hnsw.efSearch = max(effort, RECALL_K + 1)
    else:
        inner.nprobe = min(effort, inner.nlist)


def effort_limit(index: Any, index_type: str) -> int:
    return EFFORT_LIMIT if index_type == "hnsw" else require_faiss().downcast_index(index.index).nlist


def ann_top_k(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the `k` best rows per query, best first; rows of -1 (too few found) trimmed to the
    shortest complete length."""
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    found = int((rows >= 0).all(axis=0).sum())
    return scores[:, :found], rows[:, :found].astype(np.int64)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray, k: int = RECALL_K) -> float:
    """Share of each query's exact top-k rows that its approximate top-k holds."""
    return float(np.mean([len(set(got[:k]) & set(want[:k])) / len(want[:k]) for got, want in
                          zip(approximate, exact, strict=True)]))


def build_tuned(vectors: np.ndarray, index_type: str,
                exact_top_k: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], target_recall: float,
                seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """An index over every row whose search effort was raised (by half each time) until recall@10 reached `target_recall`
    (or the effort limit), measured with 1,000 rows as queries while they were not yet in the index, so that
    they are new to it as real queries are; returns (index, {"effort", "recall_at_10", "sample"})."""
    held_out = held_out_rows(len(vectors), seed)
    index = build_ann(vectors, index_type, seed, skip=held_out)
    queries = np.ascontiguousarray(vectors[held_out], dtype=np.float32)
    # Exact top-k among the rows in the index: asked for enough more to drop every held-out row.
    ranked = exact_top_k(queries, RECALL_K + len(held_out))[1]
    exact_rows = np.array([row[~np.isin(row, held_out)][:RECALL_K] for row in ranked])
    limit, effort = effort_limit(index, index_type), EFFORT_START
    while True:
        set_effort(index, index_type, effort)
        recall = recall_at_k(ann_top_k(index, queries, RECALL_K)[1], exact_rows)
        if recall >= target_recall or effort >= limit:
            break
        effort = math.ceil(effort * 1.5)
    add_rows(index, vectors, held_out)
    return index, {"effort": min(effort, limit), "recall_at_10": round(recall, 4), "sample": len(held_out)}


def write_ann(index: Any, path: Path) -> None:
    require_faiss().write_index(index, str(path))


def read_ann(path: Path, index_type: str, effort: int) -> Any:
    """The faiss index of an index folder, set to the search effort chosen at build time."""
    faiss = require_faiss()
    if not path.is_file():
        raise UserError(f"no {path.name}: the index is incomplete; build it again", path.parent)
    index = faiss.read_index(str(path))
    set_effort(index, index_type, effort)
    return index


def describe_ann(meta: dict[str, Any]) -> str:
    """One line on an index's approximate search (or its exactness)."""
    ann = meta.get("ann")
    if not ann:
        return "exact search (every query scores every row)"
    knob = "efSearch" if meta["index_type"] == "hnsw" else "nprobe"
    return (f"{meta['index_type']} index ({knob} {ann['effort']}): recall@10 {ann['recall_at_10']:.3f} against exact "
            f"search on {ann['sample']:,} of its rows")
