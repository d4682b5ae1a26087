"""Approximate search (faiss HNSW and IVF): recall@10 measured honestly at build time and reached on new
queries, exact scores for the rows returned, the CLI's report, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from albertkit.errors import UserError
from albertkit.inference import ann
from albertkit.inference.search import (
    INDEX_META,
    INDEX_VECTORS,
    SearchIndex,
    add_approximate_index,
    exact_top_k,
)

pytest.importorskip("faiss")


def clustered_unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 centres: the shape real embeddings have (random ones have no neighbourhoods)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    vectors = centres[rng.integers(0, 50, count)] + 0.6 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def index_folder(root: Path, vectors: np.ndarray, index_type: str) -> Path:
    folder = root / index_type
    folder.mkdir()
    np.save(folder / INDEX_VECTORS, vectors)
    tuned = add_approximate_index(folder, index_type, target_recall=0.95)
    meta = {"count": len(vectors), "dimension": vectors.shape[1], "pooling": "mean", "index_type": index_type,
            "ann": tuned}
    (folder / INDEX_META).write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_recall_target_is_met_on_new_queries(tmp_path: Path, index_type: str) -> None:
    vectors = clustered_unit_vectors(6000, 32, seed=0)
    folder = index_folder(tmp_path, vectors, index_type)
    index = SearchIndex(folder)
    assert index.meta["ann"]["recall_at_10"] >= 0.95 and index.meta["ann"]["sample"] == 1000
    queries = clustered_unit_vectors(6200, 32, seed=0)[6000:]  # the same centres, rows not in the index
    approx_scores, approx_rows = index.top_k(queries, 10)
    exact_scores, exact_rows = index.top_k(queries, 10, exact=True)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_rows, exact_rows, strict=True)])
    assert recall >= 0.9, recall  # held-out queries: close to the build-time sample's recall
    # The scores of the rows returned are their exact cosines.
    np.testing.assert_allclose(approx_scores, np.take_along_axis(queries @ vectors.T, approx_rows, 1), atol=1e-5)
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)  # best first


def test_recall_counts_the_exact_top_k_found() -> None:
    exact = np.array([[7, 1, 2], [8, 3, 4]])
    approximate = np.array([[7, 2, 9], [3, 8, 5]])
    assert ann.recall_at_k(approximate, exact, k=2) == 0.75  # {7} of {7, 1}; {3, 8} of {8, 3}


def test_held_out_rows_are_new_to_the_index_when_recall_is_measured() -> None:
    vectors = clustered_unit_vectors(3000, 16, seed=5)
    held_out = ann.held_out_rows(len(vectors))
    assert len(held_out) == 1000 and len(np.unique(held_out)) == 1000
    index = ann.build_ann(vectors, "ivf", skip=held_out)
    assert index.ntotal == 2000
    ann.add_rows(index, vectors, held_out)
    ann.set_effort(index, "ivf", 10**6)  # every cell: exact
    rows = ann.ann_top_k(index, vectors[held_out[:5]], 1)[1]
    assert rows[:, 0].tolist() == held_out[:5].tolist()  # ids are row numbers; each finds itself


def test_unknown_type_and_missing_faiss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown index type 'lsh'; choose one of exact, hnsw, ivf"):
        ann.build_ann(np.zeros((10, 4), np.float32), "lsh")
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(UserError, match=r"need faiss: pip install 'albertkit\[ann\]'"):
        ann.require_faiss()


def test_exact_top_k_is_the_brute_force_ranking() -> None:
    vectors = clustered_unit_vectors(500, 16, seed=3)
    queries = vectors[:5]
    scores, rows = exact_top_k(vectors, queries, 4)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :4]
    np.testing.assert_array_equal(rows, expected)


def test_cli_builds_and_queries_an_hnsw_index(model_folders: dict[str, Path], tmp_path: Path, capsys) -> None:
    from albertkit.cli import main

    index = tmp_path / "idx"
    args = ["search", "build", "--model", str(model_folders["cls"]), "--input", str(model_folders["corpus"]),
            "--index", str(index), "--index-type", "hnsw", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "indexed 400 texts" in out and "hnsw index (efSearch " in out and "recall@10 " in out
    meta = json.loads((index / INDEX_META).read_text())
    assert meta["index_type"] == "hnsw" and meta["ann"]["recall_at_10"] >= 0.95 and (index / ann.ANN_FILE).is_file()
    assert main(["search", "query", "--index", str(index), "a wonderful film", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out.strip())["hits"]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
