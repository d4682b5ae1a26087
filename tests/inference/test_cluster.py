"""Clustering: silhouette picks k, c-TF-IDF terms, central texts, label agreement, the output folder and map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import build_model_folders, movie_sentences

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.cluster import (
    by_size,
    central_rows,
    characteristic_terms,
    choose_k,
    cluster_file,
    label_agreement,
)

POSITIVE = ("wonderful", "gripping", "beautiful", "moving", "brilliant")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_folders(tmp_path_factory.mktemp("models"))["cls"]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.tsv"
    lines = movie_sentences(60, seed=3)
    rows = [f"{text}\t{'pos' if any(a in text for a in POSITIVE) else 'neg'}" for text in lines]
    rows[5] = "\tneg"  # a blank text is no row
    path.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight groups of 20 unit vectors around orthogonal directions."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1, 2], 20)
    vectors = np.eye(8)[truth] + 0.05 * rng.standard_normal((60, 8))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), truth


def test_silhouette_finds_three_groups_and_kmeans_recovers_them() -> None:
    vectors, truth = blobs()
    k, scores = choose_k(vectors, "kmeans")
    assert k == 3 and set(scores) == set(range(2, 11)) and scores[3] > 0.8 > scores[2]
    from albertkit.inference.cluster import fit_clusters

    for method in ("kmeans", "agglomerative"):
        assert label_agreement(fit_clusters(vectors, method, 3), truth.astype(str).tolist()) == {
            "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0), "purity": 1.0}
    found = fit_clusters(vectors, "hdbscan", None, min_cluster_size=5)
    assert len(set(found.tolist()) - {-1}) == 3


def test_label_agreement_numbers() -> None:
    assignment = np.array([0, 0, 0, 1, 1, 1])
    scores = label_agreement(assignment, ["a", "a", "b", "b", "b", "b"])
    assert scores["purity"] == pytest.approx(5 / 6)
    assert label_agreement(np.zeros(4, dtype=int), ["a", "b", "a", "b"]) == {"nmi": 0.0, "ari": 0.0, "purity": 0.5}


def test_by_size_renumbers_largest_first_and_keeps_noise() -> None:
    assert by_size(np.array([7, 3, 3, -1, 3, 7, 9])).tolist() == [1, 0, 0, -1, 0, 1, 2]


def test_class_tfidf_terms_and_central_rows() -> None:
    texts = ["goal match striker", "match referee goal", "striker goal", "stock market shares", "market bank shares",
             "the bank"]
    assignment = np.array([0, 0, 0, 1, 1, 1])
    terms = characteristic_terms(texts, assignment, top_n=2)
    assert terms == {0: ["goal", "match"], 1: ["bank", "market"]}  # "the" is a stop word
    vectors = np.array([[1, 0], [0.9, 0.1], [0.6, 0.4], [0, 1], [0.1, 0.9], [0.5, 0.5]], dtype=float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert central_rows(vectors, assignment, top_n=2) == {0: [1, 0], 1: [4, 3]}


def test_chinese_terms_are_ideograph_pairs() -> None:
    terms = characteristic_terms(["足球比赛", "足球进球", "股票市场", "市场股票"], np.array([0, 0, 1, 1]), 1)
    assert terms == {0: ["足球"], 1: ["市场"]}


def test_cluster_file_writes_the_folder(model: Path, reviews: Path, tmp_path: Path) -> None:
    metrics = cluster_file(model, reviews, tmp_path / "out", k=3, label_column="label")
    out = tmp_path / "out"
    assert metrics["texts"] == 59 and metrics["clusters"] == 3 and metrics["projection"] == "pca"
    assert 0 <= metrics["nmi"] <= 1 and 0.5 <= metrics["purity"] <= 1 and -1 <= metrics["silhouette"] <= 1
    assert json.loads((out / "metrics.json").read_text()) == metrics
    table = (out / "assignments.tsv").read_text().splitlines()
    assert table[0] == "line\tcluster\tlabel\ttext" and len(table) == 60
    assert table[1].split("\t")[0] == "2" and all(r.split("\t")[0] != "7" for r in table[1:])  # line 7: blank
    clusters = json.loads((out / "clusters.json").read_text())
    sizes = [c["size"] for c in clusters]
    assert [c["cluster"] for c in clusters] == [0, 1, 2] and sum(sizes) == 59 and sizes == sorted(sizes, reverse=True)
    assert all(len(c["central"]) == 3 and len(c["terms"]) == 10 and sum(c["labels"].values()) == c["size"]
               for c in clusters)
    page = (out / "map.html").read_text()
    assert page.count("<circle") == 59 and "<script" not in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    assert "<title>cluster" in page and "the " in page


def test_cluster_command_and_bad_inputs(model: Path, reviews: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "--model", str(model), "--input", str(reviews), "--out", str(tmp_path / "c"),
                 "--method", "agglomerative", "--k", "2"]) == 0
    assert '"clusters": 2' in capsys.readouterr().out
    assert "nmi" not in json.loads((tmp_path / "c" / "metrics.json").read_text())  # no labels given
    assert main(["cluster", "--model", str(model), "--input", str(reviews), "--out", str(tmp_path / "d"),
                 "--k", "60"]) == 2
    assert capsys.readouterr().err.strip() == f"albertkit: error: {reviews}: k 60 is more than the 59 texts to cluster"
    with pytest.raises(UserError, match="hdbscan finds the number of clusters itself"):
        cluster_file(model, reviews, tmp_path / "e", k=3, method="hdbscan")
    with pytest.raises(UserError, match="k must be at least 2"):
        cluster_file(model, reviews, tmp_path / "e", k=1)
    with pytest.raises(UserError, match="no column 'topic' in the header"):
        cluster_file(model, reviews, tmp_path / "e", k=2, label_column="topic")
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_map_escapes_texts_and_samples_large_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import albertkit.inference.embedding_map as embedding_map

    texts = ['<script>alert("x")</script> & more', "plain", "x" * 400, "fourth"]
    coords, projection = embedding_map.project_2d(np.eye(4, 6), seed=0)
    assert projection == "pca" and coords.shape == (4, 2)
    summary = [{"cluster": 0, "size": 3, "terms": ["<b>"]}, {"cluster": -1, "size": 1, "terms": []}]
    embedding_map.write_cluster_map(tmp_path / "map.html", coords, np.array([0, 0, 0, -1]), texts,
                                    ["a", "b", "a", "b"], summary, "t", projection)
    page = (tmp_path / "map.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "x" * 300 + "…" in page and "x" * 301 not in page and "&lt;b&gt;" in page
    assert 'fill="#c8c8c8"' in page and "<b>noise</b> (1)" in page
    monkeypatch.setattr(embedding_map, "MAX_POINTS", 2)
    embedding_map.write_cluster_map(tmp_path / "small.html", coords, np.array([0, 0, 0, -1]), texts, None, summary,
                                    "t", projection)
    small = (tmp_path / "small.html").read_text()
    assert small.count("<circle") == 2 and "4 texts (a random 2 of them drawn)" in small
