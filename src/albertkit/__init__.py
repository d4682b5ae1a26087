"""albertkit: pretrain, fine-tune, evaluate and serve ALBERT models."""

from importlib import import_module
from typing import Any

from albertkit.errors import UserError
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import (
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
)
from albertkit.runtime.memory import keep_freed_memory

__version__ = "0.1.0"

# Imported on first use: they pull in sentencepiece, tqdm and friends.
_LAZY = {
    "AlbertTokenizer": "albertkit.tokenization.sentencepiece",
    "load_tokenizer": "albertkit.tokenization.loading",
    "WordPieceTokenizer": "albertkit.tokenization.wordpiece",
    "FastTokenizer": "albertkit.tokenization.fast",
    "Encoder": "albertkit.inference.embed",
    "Predictor": "albertkit.inference.predictor",
    "pretrain": "albertkit.api",
    "finetune": "albertkit.api",
    "evaluate": "albertkit.api",
    "train_embeddings": "albertkit.api",
    "PretrainSettings": "albertkit.train.pretrain",
    "FinetuneSettings": "albertkit.train.finetune",
    "ContrastiveSettings": "albertkit.train.contrastive",
    "TrainCallback": "albertkit.train.events",
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
    "ContrastiveSettings",
    "FinetuneSettings",
    "Predictor",
    "PretrainSettings",
    "TrainCallback",
    "UserError",
    "WordPieceTokenizer",
    "__version__",
    "evaluate",
    "finetune",
    "keep_freed_memory",
    "load_tokenizer",
    "pretrain",
    "train_embeddings",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'albertkit' has no attribute {name!r}")
