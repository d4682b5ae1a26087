"""Labeled files -> examples -> model features, for classification, pairs, regression, NER and QA.

    spec, train = read_train_examples(TaskSpec("classification"), "train.tsv")  # learns labels, header
    dev = read_examples(spec, "dev.tsv")                                        # checks labels against train
    features = featurize(spec, tokenizer, dev)                                  # dicts of lists, see collate

The `TaskSpec` (task type, label set, column options) is saved in the model folder's albertkit.json, so
prediction reads files the way training did. The work is done by the spec's registered task (`tasks.base`):
classification, multi_label, pair, regression, ner, qa.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.io.tables import BadRows, SkippedRowsWarning
from albertkit.tasks.base import TASK_NAMES, get_task
from albertkit.tasks.ner import NerEntity, NerExample, ner_entities, ner_word_tags, split_words
from albertkit.tasks.qa import QaExample, QaPrediction, qa_best_spans, qa_predictions
from albertkit.tasks.table import TextExample

WORD_SPLITS = ("whitespace", "char")

__all__ = [
    "TASK_NAMES",
    "TaskSpec",
    "read_train_examples",
    "read_examples",
    "featurize",
    "TextExample",
    "NerExample",
    "NerEntity",
    "QaExample",
    "QaPrediction",
    "SkippedRowsWarning",
    "ner_word_tags",
    "ner_entities",
    "split_words",
    "qa_best_spans",
    "qa_predictions",
]


@dataclass
class TaskSpec:
    """What a fine-tuning task is and how its files are read; saved as JSON beside the model.

    Columns are names (a header row is then required) or 0-based indexes, negative from the end.
    `header`: True / False declares whether files start with a header row; None detects it.
    `labels`: label names by id (classification, pair, ner), learned from the training file when empty.
    """

    task: str
    labels: list[str] = field(default_factory=list)
    text_column: str | int = 0
    text_pair_column: str | int | None = None
    label_column: str | int = -1
    header: bool | None = None
    # The training file's header row, recognised again at the top of dev, test and prediction files.
    column_names: list[str] | None = None
    max_seq_length: int | None = None
    # Repairs "&amp;"-style entities and AG News's broken " #39;" form (the "&" became a space).
    unescape_html: bool = True
    # NER: "char" makes every non-space character a word (Chinese character-level tags).
    word_split: str = "whitespace"
    # QA
    doc_stride: int = 128
    max_query_length: int = 64
    version_2: bool = False

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if self.word_split not in WORD_SPLITS:
            raise UserError(f"word_split must be one of {', '.join(WORD_SPLITS)} (got {self.word_split!r})")
        if self.max_seq_length is None:
            self.max_seq_length = task.default_max_seq_length
        if self.max_seq_length < 8:
            raise UserError(f"max_seq_length must be at least 8 (got {self.max_seq_length})")
        task.complete_spec(self)
        self.labels = [str(label) for label in self.labels]
        if len(set(self.labels)) != len(self.labels):
            raise UserError(f"labels repeat a name: {self.labels}")

    @property
    def num_labels(self) -> int:
        """Outputs of the task head: one per label, 1 for regression, 2 (start, end) for QA."""
        return get_task(self.task).num_labels(self)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        """A spec from `to_dict()` output; unknown keys are an error (a typo would silently do nothing)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown task settings {unknown}; known: {sorted(known)}")
        if "task" not in data:
            raise UserError("task settings need a 'task' entry")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write the spec as a JSON file (atomically)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TaskSpec:
        """Read a spec written by `save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError("no such file", path) from None
        except json.JSONDecodeError as err:
            raise UserError(f"invalid JSON ({err.msg})", path, err.lineno) from None
        if not isinstance(data, dict):
            raise UserError("task settings must be a JSON object", path)
        return cls.from_dict(data)


Example = TextExample | NerExample | QaExample


def read_train_examples(
    spec: TaskSpec, path: str | Path, bad_rows: BadRows | None = None
) -> tuple[TaskSpec, list[Example]]:
    """Read the training file and complete the spec from it (label set, header row, NER word split, QA version).

    Labels come out sorted (numerically when they all look like numbers; NER: "O" first, then by type);
    labels given in `spec.labels` are kept in their order and checked instead.
    """
    return get_task(spec.task).read_train(spec, Path(path), bad_rows if bad_rows is not None else BadRows())


def read_examples(
    spec: TaskSpec, path: str | Path, *, require_labels: bool = True, bad_rows: BadRows | None = None
) -> list[Example]:
    """Read a dev, test or prediction file the way the training file was read.

    Labels outside `spec.labels` are bad rows naming the file and line. With `require_labels=False`, files
    without a label column (or NER files without tags) give examples whose label is None. Bad rows follow
    `bad_rows` (default: the first one is an error).
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    return get_task(spec.task).read(spec, Path(path), require_labels, bad_rows)


def featurize(spec: TaskSpec, tokenizer: Any, examples: list[Example]) -> list[dict[str, Any]]:
    """Model inputs for each example (QA: each window), as dicts of lists; `batching.collate` pads them.

    Every feature has input_ids, token_type_ids and attention_mask, plus labels when the examples have them:
    an id, float or multi-hot list (text tasks), one id per token with -100 off the first piece of each word
    (NER), or start_positions / end_positions (QA). NER and QA features also carry what post-processing needs.
    """
    return get_task(spec.task).featurize(spec, tokenizer, examples)
