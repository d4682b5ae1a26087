"""What albertkit's tokenizers (SentencePiece, `tokenizers` Unigram and WordPiece) share: the special tokens and
word starts, and the model inputs built from piece ids ([CLS] a [SEP] b [SEP], truncation, padding, tensors)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.errors import UserError

TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"


class TokenizerBase(ABC):
    """A vocabulary of pieces with five special tokens; subclasses encode text into piece ids.

    A subclass sets `kind` and `vocab_file` (the file that defines its vocabulary), implements `encode_batch` and
    `encode_with_offsets`, and offers `tokenize`, `convert_tokens_to_ids`, `decode`, `from_pretrained` and
    `save_pretrained`.
    """

    kind: str  # SentencePiece, Unigram or WordPiece
    vocab_file: str
    model_max_length: int

    def _index_vocabulary(self, pieces: list[str], special_ids: list[int], word_starts: Iterable[bool]) -> None:
        """Set the vocabulary's arrays; `special_ids` are the ids of pad, unk, cls, sep and mask in that order."""
        self.vocab_size = len(pieces)
        self._pieces = np.array(pieces, dtype=object)
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = special_ids
        self.all_special_ids = sorted(special_ids)
        self._is_special = np.zeros(self.vocab_size, dtype=bool)
        self._is_special[self.all_special_ids] = True
        # Pieces that start a word (whole-word masking); special tokens count as words of their own.
        self.word_start_mask = self._is_special | np.fromiter(word_starts, dtype=bool, count=self.vocab_size)

    def __len__(self) -> int:
        return self.vocab_size

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each text, without [CLS]/[SEP]; special-token strings in the text map to their ids."""

    @abstractmethod
    def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Like `encode_batch`, with each piece's [start, end) characters in its text (a piece that spells
        nothing, such as a lone "▁", spans no characters)."""

    def encode(self, text: str) -> list[int]:
        """Piece ids of one text, without [CLS]/[SEP]."""
        return self.encode_batch([text])[0]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        """Piece string of an id, or the list of piece strings of ids."""
        if isinstance(ids, int | np.integer):
            return str(self._pieces[ids])
        return self._pieces[np.asarray(ids, dtype=np.int64)].tolist()

    def build_inputs(
        self, ids_a: list[int], ids_b: list[int] | None = None, max_length: int | None = None
    ) -> dict[str, list[int]]:
        """[CLS] a [SEP] (b [SEP]) with token_type_ids and attention_mask; longest-first truncation to max_length."""
        if max_length is not None:
            ids_a, ids_b = _truncate_longest_first(ids_a, ids_b, max_length - (2 if ids_b is None else 3))
        input_ids = [self.cls_token_id, *ids_a, self.sep_token_id]
        token_type_ids = [0] * len(input_ids)
        if ids_b is not None:
            input_ids += [*ids_b, self.sep_token_id]
            token_type_ids += [1] * (len(ids_b) + 1)
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": [1] * len(input_ids),
        }

    def __call__(
        self,
        text: str | list[str],
        text_pair: str | list[str] | None = None,
        *,
        truncation: bool | str = False,
        max_length: int | None = None,
        padding: bool | str = False,
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        """Encode texts (and pairs) with special tokens, like transformers' tokenizer call.

        truncation: True or "longest_first" cuts to max_length (default model_max_length); padding: True or
        "longest" pads to the longest in the batch, "max_length" to max_length; return_tensors: None (lists),
        "pt" or "np" (these add a batch dimension to a single text).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = (
            None if text_pair is None else ([text_pair] if isinstance(text_pair, str) else list(text_pair))
        )
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        if truncation not in (False, True, "longest_first", "do_not_truncate"):
            raise ValueError(f"truncation must be True, False or 'longest_first', not {truncation!r}")
        truncate = truncation in (True, "longest_first")
        limit = max_length or self.model_max_length
        ids_a = self.encode_batch(texts)
        ids_b = self.encode_batch(pairs) if pairs is not None else [None] * len(texts)
        rows = [
            self.build_inputs(a, b, limit if truncate else None) for a, b in zip(ids_a, ids_b, strict=True)
        ]
        batch = {key: [row[key] for row in rows] for key in ("input_ids", "token_type_ids", "attention_mask")}
        if padding in (True, "longest"):
            batch = self._pad(batch, max((len(ids) for ids in batch["input_ids"]), default=0))
        elif padding == "max_length":
            batch = self._pad(batch, limit)
        elif padding not in (False, "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', not {padding!r}")
        if return_tensors is not None:
            return _to_tensors(batch, return_tensors)
        return {key: value[0] for key, value in batch.items()} if single else batch

    def _pad(self, batch: dict[str, list[list[int]]], length: int) -> dict[str, list[list[int]]]:
        pad_values = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0}
        return {
            key: [row + [pad_values[key]] * (length - len(row)) for row in rows]
            for key, rows in batch.items()
        }


def _truncate_longest_first(
    ids_a: list[int], ids_b: list[int] | None, budget: int
) -> tuple[list[int], list[int] | None]:
    """Cut the pair to `budget` tokens as `tokenizers` does: the longer side first, then both halves."""
    if budget < 0:
        raise ValueError("max_length is too small to hold the special tokens")
    if ids_b is None:
        return ids_a[:budget], None
    if len(ids_a) + len(ids_b) <= budget:
        return ids_a, ids_b
    short, long = sorted((len(ids_a), len(ids_b)))
    keep_short, keep_long = (
        (short, budget - short) if short <= budget // 2 else (budget // 2, budget - budget // 2)
    )
    keep_a, keep_b = (keep_long, keep_short) if len(ids_a) > len(ids_b) else (keep_short, keep_long)
    return ids_a[:keep_a], ids_b[:keep_b]


def _to_tensors(batch: dict[str, list[list[int]]], kind: str) -> dict[str, Any]:
    if len({len(row) for row in batch["input_ids"]}) > 1:
        raise ValueError("texts have different lengths: pass padding=True to return tensors")
    arrays = {key: np.array(rows, dtype=np.int64) for key, rows in batch.items()}
    if kind == "np":
        return arrays
    if kind == "pt":
        return {key: torch.from_numpy(array) for key, array in arrays.items()}
    raise ValueError(f"return_tensors must be None, 'pt' or 'np', not {kind!r}")


def read_tokenizer_config(directory: Path) -> dict[str, Any]:
    """A folder's `tokenizer_config.json` as a dict ({} when there is none)."""
    path = directory / TOKENIZER_CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"invalid JSON ({err.msg})", path, err.lineno) from None
    if not isinstance(config, dict):
        raise UserError("expected a JSON object", path)
    return config


def configured_max_length(config: dict[str, Any]) -> int:
    """A tokenizer config's `model_max_length`, 512 when absent or set to transformers' "unbounded" placeholder
    (a huge number)."""
    value = config.get("model_max_length", 512)
    return int(value) if isinstance(value, int | float) and value < 1e9 else 512
