"""Text classification: one label per text (softmax), or any number of labels per text (multi-label, sigmoid).

Files are tables (see `table`); a multi-label file lists a row's labels in its label cell separated by commas
("sports,politics"). Predictions: {"label", "probabilities"} (single label) or {"labels", "probabilities"}
(every label whose probability reaches 0.5), scored by accuracy, macro-F1 and MCC, or by micro-F1 and the share
of texts whose label set is exactly right.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from albertkit.tasks.base import register
from albertkit.tasks.metrics import accuracy, macro_f1, matthews_corrcoef
from albertkit.tasks.table import TextExample, TextTask, sorted_labels

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec

LABEL_SEPARATOR = ","
MULTI_LABEL_THRESHOLD = 0.5


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis (float64 inputs keep float64)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


@register
class ClassificationTask(TextTask):
    """One label per text: cross-entropy on the pooled [CLS], softmax at prediction."""

    name = "classification"
    head = "AlbertForSequenceClassification"
    metric_names = ("accuracy", "macro_f1", "mcc")
    primary_metric = "accuracy"

    def fits(self, config: Any) -> bool:
        return config.problem_type in (None, "single_label_classification") and config.num_labels > 1

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        probs = softmax(self.logits(outputs))
        ids = probs.argmax(-1)
        records = [{"label": spec.labels[i], "probabilities": dict(zip(spec.labels, map(float, p), strict=True))}
                   for i, p in zip(ids, probs, strict=True)]
        return ids, records

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        return np.array([spec.label2id[ex.label] for ex in examples])

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        return {"accuracy": accuracy(predictions, references), "macro_f1": macro_f1(predictions, references),
                "mcc": matthews_corrcoef(predictions, references)}

    def metrics(self, spec: TaskSpec, predictions: Any, references: Any) -> dict[str, Any]:
        """The scores and the confusion matrix (rows: gold, columns: predicted)."""
        matrix = np.zeros((len(spec.labels), len(spec.labels)), dtype=np.int64)
        np.add.at(matrix, (references, predictions), 1)
        return {**self.scores(predictions, references), "confusion_matrix": matrix.tolist(),
                "labels": list(spec.labels)}


@register
class MultiLabelTask(TextTask):
    """Any number of labels per text: binary cross-entropy per label, sigmoid at prediction."""

    name = "multi_label"
    outputs = "labels"
    head = "AlbertForSequenceClassification"
    metric_names = ("micro_f1", "exact_match")
    primary_metric = "micro_f1"

    def head_config(self, spec: TaskSpec) -> dict[str, Any]:
        return {"id2label": spec.id2label, "problem_type": "multi_label_classification"}

    def fits(self, config: Any) -> bool:
        return config.problem_type == "multi_label_classification"

    @staticmethod
    def split(label: str) -> list[str]:
        return [part.strip() for part in label.split(LABEL_SEPARATOR) if part.strip()]

    def label_problem(self, spec: TaskSpec, label: str, known: set[str]) -> tuple[str, str] | None:
        unknown = [part for part in self.split(label) if known and part not in known]
        if unknown:
            return f"unknown label {unknown[0]!r}; the training labels are {spec.labels}", "an unknown label"
        return None if self.split(label) else ("empty label", "an empty label")

    def label_value(self, spec: TaskSpec, label: str) -> list[float]:
        hot = np.zeros(len(spec.labels), dtype=np.float32)
        hot[[spec.label2id[part] for part in self.split(label)]] = 1.0
        return hot.tolist()

    def labels_of(self, examples: list[TextExample]) -> list[str]:
        return sorted_labels({part for ex in examples for part in self.split(ex.label or "")})

    def complete_from_train(self, spec: TaskSpec, examples: list[TextExample], path: Path) -> dict[str, Any]:
        return {"labels": spec.labels or self.labels_of(examples)}

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        probs = sigmoid(self.logits(outputs).astype(np.float64))
        chosen = probs >= MULTI_LABEL_THRESHOLD
        records = [{"labels": [label for label, on in zip(spec.labels, row, strict=True) if on],
                    "probabilities": dict(zip(spec.labels, map(float, p), strict=True))}
                   for row, p in zip(chosen, probs, strict=True)]
        return chosen, records

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        return np.array([self.label_value(spec, ex.label) for ex in examples]) > 0.5

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        """Micro-F1 over every (text, label) decision and the share of texts with exactly the gold label set."""
        true_positives = float((predictions & references).sum())
        denominator = float(predictions.sum() + references.sum())
        return {"micro_f1": 2 * true_positives / denominator if denominator else 0.0,
                "exact_match": float((predictions == references).all(axis=1).mean()) if len(references) else 0.0}
