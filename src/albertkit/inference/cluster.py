"""Clusters of a collection's embeddings: k-means, agglomerative or HDBSCAN (scikit-learn, the `explore` extra).

`cluster_file` embeds every line of a file and writes, into one output folder: `assignments.tsv` (each line's
cluster), `clusters.json` (per cluster its size, most characteristic terms by class-based TF-IDF and most central
texts), `metrics.json` (silhouette; with a label column NMI, ARI and purity) and `map.html` (a 2-D map).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.inference.embedding_map import project_2d, write_cluster_map
from albertkit.io.atomic import atomic_folder
from albertkit.io.tables import read_text_rows
from albertkit.tokenization.cjk import CJK_IDEOGRAPH

METHODS = ("kmeans", "agglomerative", "hdbscan")
MAX_AUTO_K = 10  # automatic k tries 2..10 clusters
SILHOUETTE_SAMPLE = 2000  # texts the silhouette is computed on (it is quadratic in their number)
NOISE = -1  # HDBSCAN's cluster for texts in no dense region
CLUSTERS_META = "clusters.json"


def require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as err:
        raise UserError("clustering needs scikit-learn: pip install 'albertkit[explore]'") from err


def fit_clusters(vectors: np.ndarray, method: str, k: int | None, seed: int = 0,
                 min_cluster_size: int | None = None) -> np.ndarray:
    """The cluster of each row of `vectors` (unit rows): k-means and agglomerative (Ward) need `k`; HDBSCAN finds
    the number itself and puts outliers in cluster -1."""
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans

    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters=k).fit_predict(vectors)
    size = min_cluster_size or max(5, len(vectors) // 100)
    return HDBSCAN(min_cluster_size=min(size, len(vectors)), copy=True).fit_predict(vectors)


def by_size(assignment: np.ndarray) -> np.ndarray:
    """The clusters renumbered 0, 1, ... from the largest (ties: the first seen); noise stays -1."""
    sizes = Counter(assignment.tolist())
    order = sorted((c for c in sizes if c != NOISE), key=lambda c: (-sizes[c], int(np.argmax(assignment == c))))
    mapping = {NOISE: NOISE, **{old: new for new, old in enumerate(order)}}
    return np.array([mapping[c] for c in assignment.tolist()], dtype=np.int64)


def silhouette(vectors: np.ndarray, assignment: np.ndarray, seed: int = 0) -> float | None:
    """Mean cosine silhouette over a seeded sample of the clustered texts (noise left out); None below 2 clusters."""
    from sklearn.metrics import silhouette_score

    kept = assignment != NOISE
    if len(set(assignment[kept])) < 2 or len(set(assignment[kept])) >= kept.sum():
        return None
    return float(silhouette_score(vectors[kept], assignment[kept], metric="cosine",
                                  sample_size=min(SILHOUETTE_SAMPLE, int(kept.sum())), random_state=seed))


def choose_k(vectors: np.ndarray, method: str, seed: int = 0) -> tuple[int, dict[int, float]]:
    """The k of 2..10 (fewer for a small collection) with the best silhouette, and the silhouette of each."""
    candidates = range(2, min(MAX_AUTO_K, len(vectors) - 1) + 1)
    if not candidates:
        raise UserError(f"choosing k automatically needs at least 3 texts, got {len(vectors)}; pass --k")
    scores = {k: silhouette(vectors, fit_clusters(vectors, method, k, seed), seed) for k in candidates}
    scores = {k: s for k, s in scores.items() if s is not None}
    if not scores:
        raise UserError("every text has the same embedding: there is nothing to cluster")
    return max(scores, key=scores.__getitem__), scores


def _analyzer(texts: list[str]) -> Callable[[str], list[str]]:
    """Words of two or more letters; for mostly-CJK text, pairs of adjacent ideographs (Chinese has no spaces)."""
    sample = "".join(texts[:2000])
    if len(CJK_IDEOGRAPH.findall(sample)) > 0.3 * max(1, sum(c.isalnum() for c in sample)):
        return lambda text: [a + b for a, b in zip(text, text[1:], strict=False)
                             if CJK_IDEOGRAPH.match(a) and CJK_IDEOGRAPH.match(b)]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = re.compile(r"(?u)\b\w\w+\b")
    return lambda text: [w for w in words.findall(text.lower()) if w not in ENGLISH_STOP_WORDS and not w.isdigit()]


def characteristic_terms(texts: list[str], assignment: np.ndarray, top_n: int = 10) -> dict[int, list[str]]:
    """Each cluster's `top_n` terms by class-based TF-IDF (BERTopic's c-TF-IDF): a term's share of the cluster's
    words times log(1 + average words per cluster / the term's count over all clusters)."""
    analyze = _analyzer(texts)
    counts: dict[int, Counter] = {int(c): Counter() for c in np.unique(assignment)}
    for text, cluster in zip(texts, assignment, strict=True):
        counts[int(cluster)].update(analyze(text))
    overall: Counter = sum(counts.values(), Counter())
    average_words = sum(overall.values()) / len(counts)
    terms = {}
    for cluster, words in counts.items():
        total = sum(words.values()) or 1
        scores = {w: n / total * math.log(1 + average_words / overall[w]) for w, n in words.items()}
        terms[cluster] = [w for w, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_n]]
    return terms


def central_rows(vectors: np.ndarray, assignment: np.ndarray, top_n: int = 3) -> dict[int, list[int]]:
    """Each cluster's `top_n` rows nearest (cosine) to the cluster's mean direction."""
    central = {}
    for cluster in np.unique(assignment):
        rows = np.flatnonzero(assignment == cluster)
        centre = vectors[rows].mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        central[int(cluster)] = rows[np.argsort(-(vectors[rows] @ centre), kind="stable")[:top_n]].tolist()
    return central


def label_agreement(assignment: np.ndarray, labels: list[str]) -> dict[str, float]:
    """NMI, ARI and purity (the share of texts whose cluster's most frequent label is their own; HDBSCAN's noise
    counts as one cluster) of the clusters against the given labels."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    majority = sum(Counter(np.asarray(labels)[assignment == c].tolist()).most_common(1)[0][1]
                   for c in np.unique(assignment))
    return {"nmi": float(normalized_mutual_info_score(labels, assignment)),
            "ari": float(adjusted_rand_score(labels, assignment)), "purity": majority / len(labels)}


def check_cluster_options(method: str, k: int | None, count: int, path: str | Path) -> None:
    """One-line errors for an unknown method, a k HDBSCAN does not take, and a k below 2 or above the texts."""
    if method not in METHODS:
        raise UserError(f"unknown clustering method {method!r}; choose one of {', '.join(METHODS)}")
    if k is None:
        return
    if method == "hdbscan":
        raise UserError("hdbscan finds the number of clusters itself: drop --k (or set --min-cluster-size)")
    if k < 2:
        raise UserError(f"k must be at least 2, got {k}")
    if k > count:
        raise UserError(f"k {k} is more than the {count} texts to cluster", path)


def cluster_file(
    model_dir: str | Path,
    input_path: str | Path,
    out_dir: str | Path,
    k: int | None = None,
    method: str = "kmeans",
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    pooling: str = "mean",
    batch_size: int = 32,
    seed: int = 0,
    min_cluster_size: int | None = None,
    top_terms: int = 10,
    top_texts: int = 3,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """`albertkit cluster`: cluster the non-blank texts of a file by their embeddings into the folder `out_dir`;
    returns the metrics written to `metrics.json`. `k` None: the k of 2..10 with the best silhouette."""
    require_sklearn()
    rows = read_text_rows(input_path, text_column, label_column)
    check_cluster_options(method, k, len(rows), input_path)
    texts = [text for _, text, _ in rows]
    vectors = Encoder(model_dir, device, precision=precision).encode(texts, batch_size, pooling, normalize=True)
    silhouettes = None
    if k is None and method != "hdbscan":
        k, silhouettes = choose_k(vectors, method, seed)
    assignment = by_size(fit_clusters(vectors, method, k, seed, min_cluster_size))
    metrics: dict[str, Any] = {
        "method": method, "texts": len(rows), "clusters": int(len(set(assignment.tolist()) - {NOISE})),
        "noise": int((assignment == NOISE).sum()), "silhouette": silhouette(vectors, assignment, seed),
        **({"silhouette_by_k": silhouettes} if silhouettes else {}),
    }
    labels = [label for _, _, label in rows] if label_column is not None else None
    if labels is not None:
        metrics.update(label_agreement(assignment, labels))
    coords, metrics["projection"] = project_2d(vectors, seed)
    summary = summarize_clusters(rows, vectors, assignment, top_terms, top_texts)
    with atomic_folder(out_dir, CLUSTERS_META, "cluster output") as tmp:
        write_assignments(tmp / "assignments.tsv", rows, assignment)
        (tmp / CLUSTERS_META).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        write_cluster_map(tmp / "map.html", coords, assignment, texts, labels, summary,
                          f"{len(rows):,} texts of {Path(input_path).name}", metrics["projection"])
    return metrics


def summarize_clusters(rows: list[tuple[int, str, str | None]], vectors: np.ndarray, assignment: np.ndarray,
                       top_terms: int, top_texts: int) -> list[dict[str, Any]]:
    """Per cluster (largest first, noise last): size, characteristic terms, central texts, label counts."""
    texts = [text for _, text, _ in rows]
    terms = characteristic_terms(texts, assignment, top_terms)
    central = central_rows(vectors, assignment, top_texts)
    sizes = Counter(assignment.tolist())
    summary = []
    for cluster in sorted(sizes, key=lambda c: (c == NOISE, -sizes[c], c)):
        entry: dict[str, Any] = {"cluster": cluster, "size": sizes[cluster], "terms": terms[cluster],
                                 "central": [{"line": rows[r][0], "text": rows[r][1]} for r in central[cluster]]}
        if rows[0][2] is not None:
            entry["labels"] = dict(Counter(rows[r][2] for r in np.flatnonzero(assignment == cluster)).most_common())
        summary.append(entry)
    return summary


def write_assignments(path: Path, rows: list[tuple[int, str, str | None]], assignment: np.ndarray) -> None:
    """line<TAB>cluster[<TAB>label]<TAB>text, with a header; tabs and line breaks inside texts become spaces."""
    labelled = rows[0][2] is not None
    clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("line\tcluster\t" + ("label\t" if labelled else "") + "text\n")
        for (line, text, label), cluster in zip(rows, assignment, strict=True):
            handle.write(f"{line}\t{cluster}\t" + (f"{label.translate(clean)}\t" if labelled else "")
                         + text.translate(clean) + "\n")
