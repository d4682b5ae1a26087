"""Neighbour classification: a text takes the label its k nearest labelled texts in a search index vote for.

A classifier with no training: `albertkit search build --label-column NAME` stores the labels, then
`classify_by_neighbours` scores a held-out labelled file with the usual classification metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.errors import UserError
from albertkit.inference.search import SearchIndex, index_encoder
from albertkit.io.atomic import write_text_atomic
from albertkit.io.tables import read_text_rows
from albertkit.tasks.metrics import accuracy, compute_metrics

VOTES = ("majority", "weighted")


def vote(labels: Sequence[str], scores: Sequence[float], how: str = "majority") -> str:
    """The label of one text from its neighbours' `labels` and cosine `scores`, nearest first.

    majority: the most frequent label, a tie going to the larger summed similarity; weighted: the largest summed
    similarity. A remaining tie goes to the label of the nearer neighbour.
    """
    if how not in VOTES:
        raise UserError(f"unknown vote {how!r}; choose one of {', '.join(VOTES)}")
    counts: Counter = Counter(labels)
    weights: dict[str, float] = {}
    for label, score in zip(labels, scores, strict=True):
        weights[label] = weights.get(label, 0.0) + float(score)
    first_seen = {label: rank for rank, label in reversed(list(enumerate(labels)))}

    def key(label: str) -> tuple:
        strength = (counts[label], weights[label]) if how == "majority" else (weights[label],)
        return (*strength, -first_seen[label])

    return max(counts, key=key)


def classify_by_neighbours(
    index_dir: str | Path,
    input_path: str | Path,
    k: int = 10,
    how: str = "majority",
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    model_dir: str | Path | None = None,
    output: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """`albertkit knn-classify`: accuracy, macro-F1 and MCC of neighbour votes on a labelled file.

    The label column defaults to the one the index was built with. The result also holds the accuracy of always
    answering the index's most frequent label (the floor to beat). `output` (JSONL) gets one record per row.
    """
    index = SearchIndex(index_dir)
    index_labels = index.labels
    if Path(input_path).resolve() == Path(index.meta["source"]):
        raise UserError("this is the file the index was built from: every text would find itself; "
                        "classify held-out data", input_path)
    if how not in VOTES:  # checked before the embedding work
        raise UserError(f"unknown vote {how!r}; choose one of {', '.join(VOTES)}")
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    column = label_column if label_column is not None else index.meta["label_column"]
    rows = read_text_rows(input_path, text_column, column)
    encoder = index_encoder(index, model_dir, device, precision)
    queries = encoder.encode([text for _, text, _ in rows], batch_size, index.meta["pooling"])
    scores, neighbours = index.top_k(queries, k)
    predicted = [vote([index_labels[n] for n in row], score, how) for row, score in zip(neighbours, scores,
                                                                                        strict=True)]
    truth = [label for _, _, label in rows]
    most_frequent = Counter(index_labels).most_common(1)[0][0]
    result = {
        "index": str(index_dir), "data": str(input_path), "examples": len(rows), "k": min(k, len(index)),
        "vote": how, **compute_metrics("classification", np.array(predicted), np.array(truth)),
        "majority_class_accuracy": accuracy(np.array([most_frequent] * len(truth)), np.array(truth)),
        "labels_not_in_index": sorted(set(truth) - set(index_labels)),
    }
    if output is not None:
        write_text_atomic(output, "".join(
            json.dumps({"line": line, "label": label, "predicted": guess,
                        "neighbours": [index.texts[n][0] for n in row]}, ensure_ascii=False) + "\n"
            for (line, _, label), guess, row in zip(rows, predicted, neighbours, strict=True)))
    return result
