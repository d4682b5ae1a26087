"""Property test (hypothesis): SOP pairs stay inside one document and fit the sequence length."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from albertkit.data.sop import build_sop_examples

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def documents(draw) -> tuple[np.ndarray, np.ndarray]:
    """Sentence offsets and document offsets (in sentences) of a small random split."""
    doc_sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=8))
    sentence_lengths = draw(st.lists(st.integers(1, 40), min_size=sum(doc_sizes), max_size=sum(doc_sizes)))
    return np.concatenate([[0], np.cumsum(sentence_lengths)]), np.concatenate([[0], np.cumsum(doc_sizes)])


@SETTINGS
@given(split=documents(), max_seq_length=st.integers(5, 64), short_seq_prob=st.sampled_from([0.0, 0.1, 1.0]),
       seed=st.integers(0, 2**32 - 1))
def test_sop_pairs_stay_inside_one_document_and_fit(split, max_seq_length, short_seq_prob, seed) -> None:
    sentence_offsets, document_offsets = split
    examples = build_sop_examples(sentence_offsets, document_offsets, max_seq_length, short_seq_prob,
                                  np.random.default_rng(seed))
    a_start, a_len, b_start, b_len, label = examples.T
    assert (a_len >= 1).all() and (b_len >= 1).all() and (a_len + b_len <= max_seq_length - 3).all()
    token_document = np.searchsorted(sentence_offsets[document_offsets], np.arange(sentence_offsets[-1]), "right")
    first, last = np.minimum(a_start, b_start), np.maximum(a_start + a_len, b_start + b_len) - 1
    assert (token_document[first] == token_document[last]).all()
    assert ((label == 0) == (a_start + a_len <= b_start)).all() and ((label == 1) == (b_start + b_len <= a_start)).all()
    # Pairs of one pass never share a token.
    covered = np.zeros(sentence_offsets[-1], dtype=np.int64)
    for start, length in zip(np.concatenate([a_start, b_start]), np.concatenate([a_len, b_len]), strict=True):
        covered[start : start + length] += 1
    assert covered.max(initial=0) <= 1
