"""Statistics of a token corpus that initialise or judge a model: the unigram distribution, PPMI-SVD word vectors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

CHUNK_TOKENS = 1 << 24
# PPMI-SVD reads the corpus's first tokens only: a few million settle the vectors of the frequent pieces.
PPMI_MAX_TOKENS = 5_000_000


def unigram_log_probs(token_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Log-probabilities (float32, length `vocab_size`) of each id in `token_ids`, add-one smoothed, so that an id
    never seen gets a finite value."""
    parts = getattr(token_ids, "parts", [token_ids])  # several prepared folders: counted part by part
    counts = sum(np.bincount(np.asarray(part, dtype=np.int64), minlength=vocab_size)[:vocab_size] for part in parts)
    return (np.log(counts + 1.0) - np.log(counts.sum() + vocab_size)).astype(np.float32)


def _chunks(token_ids: Any, limit: int | None = None) -> Iterator[np.ndarray]:
    """The ids of a corpus (an array, or shards read as one with `.parts`) as int64 chunks, a memory-mapped corpus
    of any size a chunk at a time; the first `limit` ids only when given."""
    left = len(token_ids) if limit is None else min(limit, len(token_ids))
    for part in getattr(token_ids, "parts", [token_ids]):
        for start in range(0, len(part), CHUNK_TOKENS):
            if left <= 0:
                return
            chunk = np.asarray(part[start : start + min(CHUNK_TOKENS, left)], dtype=np.int64)
            left -= len(chunk)
            yield chunk


def ppmi_svd_embeddings(token_ids: np.ndarray, vocab_size: int, dim: int, window: int = 2,
                        alpha: float = 0.75, seed: int = 0) -> np.ndarray:
    """Word vectors from corpus statistics (Levy & Goldberg 2014): the positive pointwise mutual information of
    ids co-occurring within `window` tokens (context counts smoothed by the power `alpha`), factored by a rank-`dim`
    randomized SVD into U·sqrt(S); (vocab_size, dim) float32, rows of ids never seen zero. Only the first
    PPMI_MAX_TOKENS tokens are read."""
    ids = np.concatenate([np.zeros(0, np.int64), *_chunks(token_ids, PPMI_MAX_TOKENS)])
    pairs = [np.concatenate([ids[:-d], ids[d:]]) * vocab_size + np.concatenate([ids[d:], ids[:-d]])
             for d in range(1, window + 1) if len(ids) > d]
    keys, counts = np.unique(np.concatenate(pairs) if pairs else np.zeros(0, np.int64), return_counts=True)
    rows, cols = keys // vocab_size, keys % vocab_size
    row_sums = np.bincount(rows, weights=counts, minlength=vocab_size)
    context = np.bincount(cols, weights=counts, minlength=vocab_size) ** alpha
    pmi = np.log(counts * context.sum() / (row_sums[rows] * context[cols]))
    keep = pmi > 0
    matrix = torch.sparse_coo_tensor(np.stack([rows[keep], cols[keep]]), pmi[keep].astype(np.float32),
                                     (vocab_size, vocab_size), check_invariants=False).coalesce()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        u, s, _ = torch.svd_lowrank(matrix, q=dim, niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    return (u * s.sqrt()).numpy().astype(np.float32)


@torch.no_grad()
def warm_start(model: torch.nn.Module, token_ids: np.ndarray, *, unigram_bias: bool = True,
               embeddings: str = "random", seed: int = 0) -> None:
    """Initialise a new masked-LM model from its training corpus: the MLM output bias to the log unigram
    probabilities (the loss starts at the unigram's, not at log V), and with `embeddings="ppmi"` the word
    embeddings (tied to the MLM decoder) to PPMI-SVD vectors scaled to the config's initializer_range."""
    config = model.config
    if unigram_bias:
        model.predictions.bias.copy_(torch.from_numpy(unigram_log_probs(token_ids, config.vocab_size)))
    if embeddings == "ppmi":
        vectors = ppmi_svd_embeddings(token_ids, config.vocab_size, config.embedding_size, seed=seed)
        vectors *= config.initializer_range / max(float(vectors.std()), 1e-12)
        model.albert.embeddings.word_embeddings.weight.copy_(torch.from_numpy(vectors))
    elif embeddings != "random":
        raise ValueError(f"unknown embedding initialisation {embeddings!r}")
