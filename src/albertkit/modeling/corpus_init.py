"""Statistics of a token corpus that initialise or judge a model: the unigram distribution."""

from __future__ import annotations

import numpy as np


def unigram_log_probs(token_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Log-probabilities (float32, length `vocab_size`) of each id in `token_ids`, add-one smoothed, so that an id
    never seen gets a finite value."""
    parts = getattr(token_ids, "parts", [token_ids])  # several prepared folders: counted part by part
    counts = sum(np.bincount(np.asarray(part, dtype=np.int64), minlength=vocab_size)[:vocab_size] for part in parts)
    return (np.log(counts + 1.0) - np.log(counts.sum() + vocab_size)).astype(np.float32)
