"""Property test (hypothesis): the invariants of ALBERT's n-gram whole-word masking."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from albertkit.data.masking import assemble_pairs, mask_ngrams
from albertkit.modeling.model import IGNORE_INDEX

SETTINGS = settings(max_examples=80, deadline=None)


SPECIAL = {"cls": 2, "sep": 3, "pad": 0}
MASK_ID = 4
REPLACEMENTS = np.arange(5, 50)


@st.composite
def masking_batches(draw) -> dict:
    """[CLS] A [SEP] B [SEP] rows of random lengths, token ids and word-start bits, as `assemble_pairs` builds them."""
    rows = draw(st.integers(1, 6))
    a_len = np.array(draw(st.lists(st.integers(1, 30), min_size=rows, max_size=rows)))
    b_len = np.array(draw(st.lists(st.integers(1, 30), min_size=rows, max_size=rows)))
    tokens = int((a_len + b_len).sum())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start_share = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    token_ids = rng.integers(5, 50, tokens)
    word_starts = rng.random(tokens) < start_share
    a_start = np.concatenate([[0], np.cumsum(a_len + b_len)[:-1]])
    examples = np.stack([a_start, a_len, a_start + a_len, b_len, np.zeros(rows, dtype=np.int64)], axis=1)
    pairs = assemble_pairs(examples, token_ids, word_starts, cls_id=SPECIAL["cls"], sep_id=SPECIAL["sep"],
                           pad_id=SPECIAL["pad"])
    return {**pairs, "max_predictions": draw(st.integers(1, 20)), "max_ngram": draw(st.integers(1, 4)),
            "masked_lm_prob": draw(st.sampled_from([0.05, 0.15, 0.5])), "seed": draw(st.integers(0, 2**32 - 1))}


def words_of(maskable: np.ndarray, word_starts: np.ndarray) -> list[np.ndarray]:
    """Positions of each whole word of one row: a word starts at a word-start bit or after a non-maskable token."""
    words: list[list[int]] = []
    for position in np.flatnonzero(maskable):
        if word_starts[position] or not maskable[position - 1]:
            words.append([])
        words[-1].append(position)
    return [np.array(word) for word in words]


@SETTINGS
@given(batch=masking_batches())
def test_masking_invariants(batch: dict) -> None:
    input_ids, maskable, word_starts = batch["input_ids"], batch["maskable"], batch["word_starts"]
    output, labels, span_words = mask_ngrams(
        input_ids, maskable, word_starts, np.random.default_rng(batch["seed"]), mask_token_id=MASK_ID,
        replacement_ids=REPLACEMENTS, masked_lm_prob=batch["masked_lm_prob"],
        max_predictions_per_seq=batch["max_predictions"], max_ngram=batch["max_ngram"],
    )
    masked = labels != IGNORE_INDEX
    # Labels exactly where masked, holding the original ids; nothing else changes.
    assert not (masked & ~maskable).any()
    np.testing.assert_array_equal(labels[masked], input_ids[masked])
    np.testing.assert_array_equal(output[~masked], input_ids[~masked])
    changed = output[masked]
    assert ((changed == MASK_ID) | np.isin(changed, REPLACEMENTS) | (changed == input_ids[masked])).all()
    # The cap holds per row, spans are 1..max_ngram words and account for every masked token's word.
    assert (masked.sum(1) <= batch["max_predictions"]).all()
    assert ((span_words >= 1) & (span_words <= batch["max_ngram"])).all()
    for row in range(len(input_ids)):
        words = words_of(maskable[row], word_starts[row])
        taken = [masked[row, word] for word in words]
        assert all(t.all() or not t.any() for t in taken)  # whole words only
        # At least one word is masked whenever every word fits under the cap.
        if words and all(len(word) <= batch["max_predictions"] for word in words):
            assert masked[row].any()
    assert span_words.sum() == sum(
        sum(masked[row, word].all() for word in words_of(maskable[row], word_starts[row]))
        for row in range(len(input_ids))
    )
