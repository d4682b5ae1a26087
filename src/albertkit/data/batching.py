"""Length-bucketed batches (little padding) and dynamic padding of feature dicts into tensors."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

# Keys collate turns into tensors; other keys (data for post-processing) are left out of the batch.
_SCALAR_KEYS = ("start_positions", "end_positions")


def length_bucketed_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    bucket_size_multiplier: int = 50,
) -> list[np.ndarray]:
    """Batches of indices whose items have similar lengths, so padding wastes little.

    shuffle=True (training): shuffle all indices, sort each chunk of batch_size * bucket_size_multiplier by
    length, cut it into batches, then shuffle the batch order; the same (seed, epoch) gives the same batches.
    shuffle=False (inference): all indices sorted longest first; `restore_order` undoes it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    lengths = np.asarray(lengths)
    if not len(lengths):
        return []
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")
        return np.array_split(order, range(batch_size, len(order), batch_size))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_size_multiplier
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(np.array_split(part, range(batch_size, len(part), batch_size)))
    return [batches[i] for i in rng.permutation(len(batches))]


def token_budget_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Batches of indices, longest first, each holding at most `max_tokens` padded tokens (rows x its longest).

    Short texts travel in large batches and long ones in small batches, so a GPU's memory holds every batch and
    its work per batch stays even; a text longer than the budget goes alone. `restore_order` undoes the order.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 (got {max_tokens})")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted longest first: the first row sets the padding
        rows = max(1, max_tokens // longest)
        batches.append(order[start:start + rows])
        start += rows
    return batches


def restore_order(batches: list[np.ndarray]) -> np.ndarray:
    """The permutation that puts outputs concatenated in batch order back into the original order.

    `np.concatenate(outputs)[restore_order(batches)]` lines up with the input rows.
    """
    order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse


def collate(features: list[dict[str, Any]], pad_id: int, label_pad: int = -100) -> dict[str, torch.Tensor]:
    """Pad a batch of features to its longest sequence and stack them into tensors.

    input_ids pad with pad_id, token_type_ids / attention_mask with 0, per-token labels with label_pad;
    scalar labels (ids or regression floats) and QA start/end positions become 1-D tensors.
    """
    batch: dict[str, torch.Tensor] = {}
    first = features[0]
    pad_values = {"input_ids": pad_id, "token_type_ids": 0, "attention_mask": 0, "labels": label_pad}
    for key, pad in pad_values.items():
        if key not in first:
            continue
        if isinstance(first[key], list | np.ndarray):
            batch[key] = torch.from_numpy(_pad_rows([feature[key] for feature in features], pad))
        else:
            batch[key] = torch.tensor([feature[key] for feature in features])
    for key in _SCALAR_KEYS:
        if key in first:
            batch[key] = torch.tensor([feature[key] for feature in features], dtype=torch.long)
    return batch


def _pad_rows(rows: list[list[int]], pad: int) -> np.ndarray:
    """One (rows, longest) int64 array: all values laid in at once through a mask, no per-token Python."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    padded = np.full((len(rows), int(lengths.max(initial=0))), pad, dtype=np.int64)
    padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]] = values
    return padded
