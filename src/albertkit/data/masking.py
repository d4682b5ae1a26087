"""ALBERT's n-gram masking of whole words, vectorized over a batch."""

from __future__ import annotations

import numpy as np

from albertkit.modeling.model import IGNORE_INDEX


def assemble_pairs(
    examples: np.ndarray,
    token_ids: np.ndarray,
    word_starts: np.ndarray,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> dict[str, np.ndarray]:
    """[CLS] A [SEP] B [SEP] rows for (a_start, a_length, b_start, b_length, ...) examples, right-padded.

    Returns int64 `input_ids`, `token_type_ids`, `attention_mask` and bool `word_starts` (special tokens and the
    first token of each segment count as word starts) and `maskable` (the text tokens)."""
    a_start, a_len, b_start, b_len = (examples[:, i, None] for i in range(4))
    length = a_len + b_len + 3
    pos = np.arange(int(length.max()))[None, :]
    b_first = a_len + 2
    in_a = (pos >= 1) & (pos <= a_len)
    in_b = (pos >= b_first) & (pos < length - 1)
    text = in_a | in_b
    source = np.where(text, np.where(in_a, a_start + pos - 1, b_start + pos - b_first), 0)
    input_ids = np.where(text, np.asarray(token_ids[source], dtype=np.int64), pad_id)
    input_ids[:, 0] = cls_id
    input_ids[pos == a_len + 1] = sep_id
    input_ids[pos == length - 1] = sep_id
    starts = np.where(text, np.asarray(word_starts[source], dtype=bool), True) | (pos == 1) | (pos == b_first)
    return {
        "input_ids": input_ids,
        "token_type_ids": ((pos >= b_first) & (pos < length)).astype(np.int64),
        "attention_mask": (pos < length).astype(np.int64),
        "word_starts": starts,
        "maskable": text,
    }


def mask_ngrams(
    input_ids: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray, rng: np.random.Generator, *,
    mask_token_id: int, replacement_ids: np.ndarray, masked_lm_prob: float = 0.15,
    max_predictions_per_seq: int = 20, max_ngram: int = 3, mask_share: float = 0.8, random_share: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ALBERT's n-gram masking of whole words for a whole batch at once; returns (input_ids, labels, span_words).

    Each row masks on average `masked_lm_prob` of its maskable tokens (at least one span, at most
    `max_predictions_per_seq` tokens) in spans of 1..max_ngram whole words with p(n) ∝ 1/n; of the masked tokens
    `mask_share` (80%) become [MASK], `random_share` (10%) a random id of `replacement_ids` and the rest stay
    (evaluation shows every scored token as [MASK]: mask_share 1, so that no answer can be copied from the input). Labels hold the original ids there and
    -100 elsewhere; `span_words` lists the length in words of every masked span.

    How: each row's words are cut into consecutive n-grams of random lengths, the n-grams are put in a random
    order, and those that start (counting the tokens of the n-grams before them in that order) below a threshold
    K are masked. Whether an n-gram is taken does not depend on its own length, so the masked spans keep the
    1/n law exactly (the reference's greedy budget filling favours short spans); K = target - E[S²]/2E[S] (the mean
    overshoot of the last span, over the row's n-gram sizes S in tokens) makes the expected count the target.
    The cap trims the last span by whole words.
    """
    batch, width = input_ids.shape
    rows = np.arange(batch)[:, None]
    starts = word_starts & maskable
    word_of_token = np.maximum(np.cumsum(starts, axis=1) - 1, 0)
    num_words = starts.sum(1)
    max_words = max(int(num_words.max()), 1)
    real_word = np.arange(max_words) < num_words[:, None]
    word_tokens = np.bincount((rows * max_words + word_of_token)[maskable], minlength=batch * max_words)
    word_tokens = word_tokens.reshape(batch, max_words)
    # Cut each row's words into n-grams; n-gram t covers words first_word[t] .. first_word[t + 1] - 1.
    p = 1.0 / np.arange(1, max_ngram + 1)
    ngram = 1 + np.searchsorted(np.cumsum(p / p.sum())[:-1], rng.random((batch, max_words)), side="right")
    first_word = np.cumsum(ngram, axis=1) - ngram
    real_span = first_word < num_words[:, None]
    span_starts = np.zeros((batch, max_words), dtype=bool)
    span_starts[np.nonzero(real_span)[0], first_word[real_span]] = True
    span_of_word = np.maximum(np.cumsum(span_starts, axis=1) - 1, 0)
    span_tokens = np.bincount(
        (rows * max_words + span_of_word)[real_word], weights=word_tokens[real_word], minlength=batch * max_words
    ).reshape(batch, max_words)
    # Random order; an n-gram's start is the number of tokens of the n-grams before it in that order.
    order = np.argsort(rng.random((batch, max_words)) + ~real_span, axis=1)
    sorted_tokens = np.take_along_axis(span_tokens, order, axis=1)
    span_begin = np.empty_like(sorted_tokens)
    np.put_along_axis(span_begin, order, np.cumsum(sorted_tokens, axis=1) - sorted_tokens, axis=1)
    target = np.minimum(masked_lm_prob * maskable.sum(1), max_predictions_per_seq)
    threshold = target - (span_tokens**2).sum(1) / (2 * span_tokens.sum(1))
    # At least the first n-gram in the order (begin 0), as the reference masks at least one token.
    taken = real_span & (span_begin < np.maximum(threshold, 0.5)[:, None])
    # A word stays masked while its n-gram's begin plus its tokens so far in that n-gram fit the cap.
    cumulative = np.cumsum(word_tokens, axis=1)
    before_span = np.take_along_axis(cumulative - word_tokens, np.minimum(first_word, max_words - 1), axis=1)
    tokens_so_far = cumulative - np.take_along_axis(before_span, span_of_word, axis=1)
    masked_word = real_word & np.take_along_axis(taken, span_of_word, axis=1) & (
        np.take_along_axis(span_begin, span_of_word, axis=1) + tokens_so_far <= max_predictions_per_seq
    )
    masked = maskable & np.take_along_axis(masked_word, word_of_token, axis=1)
    span_words = np.bincount((rows * max_words + span_of_word)[masked_word], minlength=batch * max_words)
    labels = np.where(masked, input_ids, IGNORE_INDEX)
    action = rng.random((batch, width))
    random_ids = replacement_ids[rng.integers(0, len(replacement_ids), (batch, width))]
    output = np.where(masked & (action < mask_share), mask_token_id, input_ids)
    output = np.where(masked & (action >= mask_share) & (action < mask_share + random_share), random_ids, output)
    return output, labels, span_words[span_words > 0]

