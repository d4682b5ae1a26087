"""Regression on a text or a pair of texts (STS-B-style scores): one output, mean squared error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from albertkit.tasks.base import register
from albertkit.tasks.metrics import mse, pearson, spearman
from albertkit.tasks.table import TextExample, TextTask, is_number

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec


@register
class RegressionTask(TextTask):
    """A number per text: the head's single output, unchanged; Spearman picks the best model."""

    name = "regression"
    outputs = "value"
    head = "AlbertForSequenceClassification"
    metric_names = ("pearson", "spearman", "mse")
    # Spearman: rank correlation is what STS-style evaluations report and ignores the output scale.
    primary_metric = "spearman"
    numeric_labels = True

    def num_labels(self, spec: TaskSpec) -> int:
        return 1

    def head_config(self, spec: TaskSpec) -> dict[str, Any]:
        return {"id2label": {0: "LABEL_0"}, "problem_type": "regression"}

    def fits(self, config: Any) -> bool:
        return config.problem_type == "regression" or config.num_labels == 1

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        fields = super().spec_from_config(architecture, config)
        return None if fields is None else {**fields, "labels": []}

    def label_problem(self, spec: TaskSpec, label: str, known: set[str]) -> tuple[str, str] | None:
        if not is_number(label):
            return f"regression label {label!r} is not a number", "a label that is not a number"
        return None

    def label_value(self, spec: TaskSpec, label: str) -> float:
        return float(label)

    def complete_from_train(self, spec: TaskSpec, examples: list[TextExample], path: Path) -> dict[str, Any]:
        return {}

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        values = self.logits(outputs).reshape(-1)
        return values, [{"value": float(v)} for v in values]

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        return np.array([float(ex.label) for ex in examples])

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        return {"pearson": pearson(predictions, references), "spearman": spearman(predictions, references),
                "mse": mse(predictions, references)}
