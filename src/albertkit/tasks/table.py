"""Classification, pair and regression files (TSV, CSV, JSONL) -> TextExample -> features.

Files are read by `io.tables` (format by suffix, anything else TSV). Rows whose column count differs from the
file's (a stray tab, a cut line), rows with an empty label and labels the task cannot use are bad rows: an error
naming the line, or skipped and reported under `--skip-bad-rows`; a file left with no rows is an error.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from albertkit.errors import UserError
from albertkit.io.tables import BadRows, Row, keep_width, read_table, separator_hint
from albertkit.runtime.console import progress_bar
from albertkit.tasks.base import Task, get_task, label_names
from albertkit.tasks.files import repair_html

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec

# Header cells that name a column rather than hold data (lowercased).
_LABEL_HEADER_NAMES = frozenset(
    "label labels class category target y sentiment gold_label score tag polarity topic is_duplicate".split()
)
_TEXT_HEADER_NAMES = frozenset(
    "text text_a text_b sentence sentence1 sentence2 question question1 question2 review content title query "
    "premise hypothesis document s1 s2 id".split()
)
_ENCODE_CHUNK = 8192


@dataclass(slots=True)
class TextExample:
    """One row: text (and pair text) with its label as written in the file (None when unlabeled)."""

    text: str
    text_pair: str | None = None
    label: str | None = None
    line: int = 0


def _read_rows(path: Path, bad_rows: BadRows) -> tuple[list[str] | None, list[Row]]:
    """The file's header (JSONL only; TSV/CSV rows may start with one) and its non-blank rows."""
    table = read_table(path, bad_rows)
    return table.header, list(table.rows)


def _position(column: int, width: int) -> int | None:
    """A (possibly negative) 0-based column index within `width` columns; None when out of range."""
    index = column + width if column < 0 else column
    return index if 0 <= index < width else None


def _column_index(
    column: str | int, header: list[str] | None, width: int, path: Path, what: str
) -> int | None:
    """0-based index of a column given by name or (possibly negative) index; None when the file lacks it."""
    if isinstance(column, int):
        return _position(column, width)
    if header is None:
        raise UserError(
            f"{what} {column!r} is a name but the file has no header row; give a 0-based index", path
        )
    return header.index(column) if column in header else None


def is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _training_headers(spec: TaskSpec) -> list[list[str]]:
    """The training file's header row, with and without its label column (files to predict lack labels)."""
    if not spec.column_names:
        return []
    names = spec.column_names
    column = spec.label_column
    label = (names.index(column) if column in names else None) if isinstance(column, str) else _position(column, len(names))
    return [names, [name for i, name in enumerate(names) if i != label]]


def _first_row_is_header(spec: TaskSpec, rows: list[Row], width: int, numeric_labels: bool) -> bool:
    """Whether the first row names the columns: columns are asked for by name, it repeats the training
    header, or its label cell is no label but looks like a column name."""
    first = [cell.strip() for cell in rows[0][1]]
    columns = [spec.text_column, spec.text_pair_column, spec.label_column]
    if any(isinstance(column, str) for column in columns) or first in _training_headers(spec):
        return True
    text, pair, label_index = (None if column is None else _position(column, width) for column in columns)
    if label_index is None or label_index in (text, pair) or label_index >= len(first):
        return False  # an unlabeled file: only a repeated training header counts
    label = first[label_index]
    if numeric_labels:
        return not is_number(label)
    other_labels = {cells[label_index].strip() for _, cells in rows[1:] if label_index < len(cells)}
    if label in other_labels or label in spec.labels:
        return False
    numeric_labels = bool(other_labels) and all(is_number(value) for value in other_labels)
    looks_like_names = label.lower() in _LABEL_HEADER_NAMES or any(
        c.lower() in _TEXT_HEADER_NAMES for c in first
    )
    return looks_like_names or (numeric_labels and not is_number(label))


def read_table_examples(
    spec: TaskSpec, path: Path, *, require_labels: bool, bad_rows: BadRows | None = None,
    task: TextTask | None = None,
) -> tuple[list[TextExample], list[str] | None]:
    """Examples of a TSV/CSV/JSONL file and its header row (None without one); see the module notes. `task`
    (default: the spec's) says which labels it can use."""
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    task = task if task is not None else get_task(spec.task)
    header, rows = _read_rows(path, bad_rows)
    if not rows:
        raise UserError("the file has no rows", path)
    width = len(header) if header is not None else Counter(len(c) for _, c in rows).most_common(1)[0][0]
    if header is None:
        has_header = spec.header if spec.header is not None else _first_row_is_header(spec, rows, width, task.numeric_labels)
        if has_header:
            header = [cell.strip() for cell in rows.pop(0)[1]]
            width = len(header)
    columns = _resolve_columns(spec, header, width, path, require_labels)
    examples = _rows_to_examples(spec, keep_width(path, rows, width, bad_rows, separator_hint(path)), columns,
                                 path, bad_rows, task)
    bad_rows.report(path)
    if not examples:
        raise UserError(f"no usable rows ({bad_rows.count_in(path)} skipped, see the warning above)", path)
    return examples, header


def _resolve_columns(
    spec: TaskSpec, header: list[str] | None, width: int, path: Path, require_labels: bool
) -> tuple[int, int | None, int | None]:
    columns = f"columns: {header}" if header is not None else f"{width} columns"
    text = _column_index(spec.text_column, header, width, path, "text column")
    if text is None:
        raise UserError(f"no text column {spec.text_column!r} ({columns})", path)
    pair = None
    if spec.text_pair_column is not None:
        pair = _column_index(spec.text_pair_column, header, width, path, "text pair column")
        if pair is None:
            raise UserError(f"no text pair column {spec.text_pair_column!r} ({columns})", path)
    label = _column_index(spec.label_column, header, width, path, "label column")
    if label in (text, pair):
        label = None  # e.g. the default last column of an unlabeled file is its text
    if label is None and require_labels:
        raise UserError(f"no label column {spec.label_column!r} ({columns})", path)
    return text, pair, label


def _rows_to_examples(
    spec: TaskSpec,
    rows: Iterable[Row],
    columns: tuple[int, int | None, int | None],
    path: Path,
    bad_rows: BadRows,
    task: TextTask,
) -> list[TextExample]:
    text_index, pair_index, label_index = columns
    known_labels = set(spec.labels)
    clean = repair_html if spec.unescape_html else str
    examples: list[TextExample] = []
    for line, cells in rows:
        label = None
        if label_index is not None:
            label = cells[label_index].strip()
            problem = ("empty label", "an empty label") if not label else task.label_problem(spec, label, known_labels)
            if problem is not None:
                bad_rows.reject(path, line, *problem)
                continue
        pair = clean(cells[pair_index]).strip() if pair_index is not None else None
        examples.append(TextExample(clean(cells[text_index]).strip(), pair, label, line))
    return examples


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """Labels in a stable order: numerically when all look like numbers ("2" before "10"), else as text."""
    labels = set(labels)
    if all(is_number(label) for label in labels):
        return sorted(labels, key=lambda label: (float(label), label))
    return sorted(labels)


def featurize_text(spec: TaskSpec, tokenizer: Any, examples: list[TextExample],
                   task: TextTask | None = None) -> list[dict[str, Any]]:
    """input_ids / token_type_ids / attention_mask (+ labels: the task's `label_value`) per example.

    Texts go to the tokenizer in large batches (one C++ call each); pairs are cut longest-first.
    """
    task = task if task is not None else get_task(spec.task)
    features: list[dict[str, Any]] = []
    with progress_bar(total=len(examples), desc="featurizing", unit=" examples") as progress:
        for start in range(0, len(examples), _ENCODE_CHUNK):
            chunk = examples[start : start + _ENCODE_CHUNK]
            ids_a = tokenizer.encode_batch([ex.text for ex in chunk])
            if spec.text_pair_column is not None:
                ids_b = tokenizer.encode_batch([ex.text_pair or "" for ex in chunk])
            else:
                ids_b = [None] * len(chunk)
            for example, a, b in zip(chunk, ids_a, ids_b, strict=True):
                feature = tokenizer.build_inputs(a, b, spec.max_seq_length)
                if example.label is not None:
                    feature["labels"] = task.label_value(spec, example.label)
                features.append(feature)
            progress.update(len(chunk))
    return features


class TextTask(Task):
    """What the tasks on a text (or a pair of texts) with one label cell share: reading TSV/CSV/JSONL, the
    features of `featurize_text`, one head output row per example. Subclasses say which labels they use."""

    numeric_labels: ClassVar[bool] = False  # labels are numbers (a header row is recognised by a word there)

    def label_problem(self, spec: TaskSpec, label: str, known: set[str]) -> tuple[str, str] | None:
        """(message, kind) for a non-empty label this task cannot use, None for a good one."""
        if known and label not in known:
            return f"unknown label {label!r}; the training labels are {spec.labels}", "an unknown label"
        return None

    def label_value(self, spec: TaskSpec, label: str) -> Any:
        """The `labels` entry of a feature."""
        return spec.label2id[label]

    def labels_of(self, examples: list[TextExample]) -> list[str]:
        """The label set of a training file, in a stable order."""
        return sorted_labels({ex.label for ex in examples})

    def complete_from_train(self, spec: TaskSpec, examples: list[TextExample], path: Path) -> dict[str, Any]:
        """Spec fields learned from the training examples (the label set)."""
        labels = spec.labels or self.labels_of(examples)
        if len(labels) < 2:
            raise UserError(f"the training file has only one label ({labels[0]!r}): a classifier needs two", path)
        return {"labels": labels}

    def read_train(self, spec: TaskSpec, path: Path, bad_rows: BadRows) -> tuple[TaskSpec, list[Any]]:
        examples, column_names = read_table_examples(spec, path, require_labels=True, bad_rows=bad_rows, task=self)
        updates = {"column_names": column_names, **self.complete_from_train(spec, examples, path)}
        return dataclasses.replace(spec, **updates), examples

    def read(self, spec: TaskSpec, path: Path, require_labels: bool, bad_rows: BadRows) -> list[Any]:
        return read_table_examples(spec, path, require_labels=require_labels, bad_rows=bad_rows, task=self)[0]

    def example(self, spec: TaskSpec, item: Any, index: int) -> TextExample:
        text, pair = (item, None) if isinstance(item, str) else item
        return TextExample(text, pair, None, index + 1)

    def featurize(self, spec: TaskSpec, tokenizer: Any, examples: list[Any]) -> list[dict[str, Any]]:
        return featurize_text(spec, tokenizer, examples, self)

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        if architecture != self.head or not self.fits(config):
            return None
        return {"task": self.name, "labels": label_names(config),
                "max_seq_length": min(self.default_max_seq_length, config.max_position_embeddings)}

    def fits(self, config: Any) -> bool:
        """Whether a sequence-classification config is this task's head."""
        return False

    @staticmethod
    def logits(outputs: list[dict[str, np.ndarray]]) -> np.ndarray:
        return np.stack([o["logits"] for o in outputs])
