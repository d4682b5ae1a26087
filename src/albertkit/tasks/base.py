"""What a fine-tuning task is, and the registry of tasks.

A task owns its whole path, the way a transformers pipeline does (preprocess / _forward / postprocess):
reading its files (`read_train`, `read`), turning an API input into an example (`example`), featurizing
(`featurize`), which head it trains (`head`, `head_config`), decoding the head's outputs into predictions and
output records (`decode`), and scoring them (`references`, `metrics`). `finetune`, `evaluate`, `predict` and
`serve` only ever call these methods, so the same model gives the same answer everywhere.

Adding a task is one module with a `Task` subclass decorated with `@register`, imported in `tasks/__init__.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from albertkit.errors import UserError

if TYPE_CHECKING:
    from albertkit.io.tables import BadRows
    from albertkit.tasks.spec import TaskSpec


class Task:
    """One task type; subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    head: ClassVar[str]  # the model class name (modeling.model.HEADS) this task trains
    head_modules: ClassVar[tuple[str, ...]] = ("classifier",)  # trained in full beside LoRA adapters
    endpoint: ClassVar[str] = "classify"  # the serve endpoint answering with this task's predictions
    # What the head outputs, for code that treats outputs alike across tasks (distillation's losses):
    # "classes" (one softmax per text), "labels" (a sigmoid per label), "value" (one number), "token_classes"
    # (a softmax per token), "spans" (start and end logits).
    outputs: ClassVar[str] = "classes"
    metric_names: ClassVar[tuple[str, ...]]
    primary_metric: ClassVar[str]  # what model selection and early stopping follow
    greater_is_better: ClassVar[bool] = True
    default_max_seq_length: ClassVar[int] = 128

    def complete_spec(self, spec: TaskSpec) -> None:
        """Fill this task's defaults into a new spec and check its settings (UserError when they cannot work)."""

    def num_labels(self, spec: TaskSpec) -> int:
        """Outputs of the head."""
        return len(spec.labels)

    def head_config(self, spec: TaskSpec) -> dict[str, Any]:
        """Config overrides for the head built on a pretrained encoder."""
        return {"id2label": spec.id2label}

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        """TaskSpec fields for a model folder without albertkit's task settings (any HF folder), or None when
        this task does not fit its head."""
        return None

    def read_train(self, spec: TaskSpec, path: Path, bad_rows: BadRows) -> tuple[TaskSpec, list[Any]]:
        """The training file's examples and the spec completed from it (labels, header, ...)."""
        raise NotImplementedError

    def read(self, spec: TaskSpec, path: Path, require_labels: bool, bad_rows: BadRows) -> list[Any]:
        """Examples of a dev, test or prediction file, read the way the training file was."""
        raise NotImplementedError

    def example(self, spec: TaskSpec, item: Any, index: int) -> Any:
        """An unlabeled example from an API input (a text; a (text, pair) or (question, context) tuple)."""
        raise NotImplementedError

    def featurize(self, spec: TaskSpec, tokenizer: Any, examples: list[Any]) -> list[dict[str, Any]]:
        """Model inputs per example (or per window), dicts of lists; `batching.collate` pads them."""
        raise NotImplementedError

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        """(predictions in the form `metrics` takes, one JSON-ready output record per example)."""
        raise NotImplementedError

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        """Gold answers of labeled examples, in the form `metrics` takes."""
        raise NotImplementedError

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        """The task's scores, named by `metric_names` (fractions in [0, 1] except errors such as mse)."""
        raise NotImplementedError

    def metrics(self, spec: TaskSpec, predictions: Any, references: Any) -> dict[str, Any]:
        """What evaluation reports: the scores, and whatever else this task shows (a confusion matrix)."""
        return self.scores(predictions, references)


_TASKS: dict[str, Task] = {}
TASK_NAMES: list[str] = []  # in registration order; filled as the task modules are imported


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task subclass available by its `name` (`get_task`, `--task`)."""
    if cls.name in _TASKS:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls()
    TASK_NAMES.append(cls.name)
    return cls


def get_task(name: str) -> Task:
    """The registered task called `name`; an unknown name is a UserError listing the known ones."""
    task = _TASKS.get(name)
    if task is None:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    return task


def spec_fields_for_model(architecture: str, config: Any) -> dict[str, Any] | None:
    """TaskSpec fields of the first registered task that fits a model's head (None: no task does)."""
    for task in _TASKS.values():
        fields = task.spec_from_config(architecture, config)
        if fields is not None:
            return fields
    return None


def label_names(config: Any) -> list[str]:
    """A config's label names by id (LABEL_i where it has none)."""
    id2label = config.id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}
    return [str(id2label[i]) for i in range(len(id2label))]
