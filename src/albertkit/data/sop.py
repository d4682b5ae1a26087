"""ALBERT's examples: token shards -> sentence-order pairs (segments A and B, swapped or not).

Examples follow google-research/albert `create_pretraining_data.py`: per chunk of contiguous sentences of one
document, a target length (max_seq_length - 3, or with probability `short_seq_prob` a random one in
[2, max_seq_length - 3]), segments A and B split at a random sentence, swapped in half the pairs for sentence-order
prediction (label 1 = swapped), and longest-first truncation that cuts from the front or back at random.
Two choices differ from the reference: the target length is drawn per chunk rather than per document (so about
`short_seq_prob` of the examples have a short target), and a chunk of a single sentence is split at a random
token instead of taking B from another document (so A and B always come from the same document and the SOP
label always means "swapped"). Masking is ALBERT's n-gram masking of whole words, drawn afresh every epoch.
"""

from __future__ import annotations

import numpy as np

MAX_SEQ_LENGTH = 512
MIN_SEQ_LENGTH = 5  # [CLS] a [SEP] b [SEP]


def build_sop_examples(
    sentence_offsets: np.ndarray,
    document_offsets: np.ndarray,
    max_seq_length: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One pass of ALBERT's example construction over a split; returns an (n, 5) int64 array of
    (a_start, a_length, b_start, b_length, sentence_order_label), token ranges into the split's tokens."""
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    num_sentences = len(offsets) - 1
    if num_sentences == 0:
        return np.zeros((0, 5), dtype=np.int64)
    max_tokens = max_seq_length - 3
    doc_offsets = np.asarray(document_offsets, dtype=np.int64)
    document_end = np.repeat(doc_offsets[1:], np.diff(doc_offsets))
    # The target a chunk would have if it started at each sentence (each chunk starts at a different sentence).
    short = rng.random(num_sentences) < short_seq_prob
    targets = np.where(short, rng.integers(2, max_tokens + 1, num_sentences), max_tokens)
    # A chunk takes sentences until it reaches its target or the document ends.
    chunk_end = np.minimum(np.searchsorted(offsets, offsets[:-1] + targets, side="left"), document_end)
    starts = _chunk_starts(chunk_end.tolist())
    ends = chunk_end[starts]
    first, stop = offsets[starts], offsets[ends]
    n_sentences = ends - starts
    # A sentences [start, split) and B the rest: split at a random sentence, or inside a lone sentence.
    u = rng.random(len(starts))
    split_sentence = starts + 1 + np.floor(u * (n_sentences - 1)).astype(np.int64)
    split = np.where(
        n_sentences >= 2,
        offsets[split_sentence],
        first + 1 + np.floor(u * (stop - first - 1)).astype(np.int64),
    )
    usable = (n_sentences >= 2) | (stop - first >= 2)
    first, split, stop = first[usable], split[usable], stop[usable]
    swapped = rng.random(len(first)) < 0.5
    a_start, a_len = np.where(swapped, split, first), np.where(swapped, stop - split, split - first)
    b_start, b_len = np.where(swapped, first, split), np.where(swapped, split - first, stop - split)
    new_a, new_b = _truncated_lengths(a_len, b_len, max_tokens)
    # Each removed token came off the front or the back with probability 1/2, as in the reference.
    a_start = a_start + rng.binomial(a_len - new_a, 0.5)
    b_start = b_start + rng.binomial(b_len - new_b, 0.5)
    return np.stack([a_start, new_a, b_start, new_b, swapped.astype(np.int64)], axis=1)


def _chunk_starts(chunk_end: list[int]) -> np.ndarray:
    """Sentences where chunks start: 0, then each chunk's end (a cheap walk over chunks, not tokens)."""
    starts, sentence, total = [], 0, len(chunk_end)
    while sentence < total:
        starts.append(sentence)
        sentence = chunk_end[sentence]
    return np.array(starts, dtype=np.int64)


def _truncated_lengths(
    a_len: np.ndarray, b_len: np.ndarray, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths after the reference's truncate_seq_pair: remove from the longer side (B on ties) until they fit."""
    excess = np.maximum(a_len + b_len - max_tokens, 0)
    # First the longer side shrinks to the shorter one's length, then both shrink in turns, B first.
    head = np.minimum(excess, np.abs(a_len - b_len))
    even = excess - head
    a_cut = np.where(a_len > b_len, head, 0) + even // 2
    b_cut = np.where(a_len < b_len, head, 0) + (even + 1) // 2
    return a_len - a_cut, b_len - b_cut

