"""albertkit: pretrain, fine-tune, evaluate and serve ALBERT models."""

from importlib import import_module
from typing import Any

from albertkit.config import AlbertConfig
from albertkit.cpu_memory import keep_freed_memory
from albertkit.errors import UserError
from albertkit.model import (
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
)

__version__ = "0.1.0"

# Imported on first use: they pull in sentencepiece, tqdm and friends.
_LAZY = {
    "AlbertTokenizer": "albertkit.tokenizer",
    "load_tokenizer": "albertkit.tokenizer",
    "WordPieceTokenizer": "albertkit.wordpiece",
    "FastTokenizer": "albertkit.fast_tokenizer",
    "Encoder": "albertkit.embed",
}

__all__ = [
    "AlbertConfig",
    "AlbertForMaskedLM",
    "AlbertForPreTraining",
    "AlbertForQuestionAnswering",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertModel",
    "AlbertTokenizer",
    "Encoder",
    "FastTokenizer",
    "UserError",
    "WordPieceTokenizer",
    "__version__",
    "keep_freed_memory",
    "load_tokenizer",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'albertkit' has no attribute {name!r}")
