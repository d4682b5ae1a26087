"""Sentence-pair classification (paraphrase, entailment): a text and a pair text per row, one label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from albertkit.tasks.base import register
from albertkit.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec


@register
class PairTask(ClassificationTask):
    """Classification of [CLS] text [SEP] pair [SEP]; API inputs are (text, pair) tuples."""

    name = "pair"

    def complete_spec(self, spec: TaskSpec) -> None:
        if spec.text_pair_column is None:
            spec.text_pair_column = 1  # sentence1, sentence2, label: the usual pair layout

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        return None  # a folder's config cannot tell a pair classifier from a single-text one
