"""Property tests (hypothesis): the text reader, sentence splitting, SOP example construction, n-gram masking.

Tokenizer round trips on random Unicode live in test_tokenizer.py.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from albertkit.data.corpus import split_sentences
from albertkit.data.masking import assemble_pairs, mask_ngrams
from albertkit.data.sop import build_sop_examples
from albertkit.io.text import iter_text_lines
from albertkit.modeling.model import IGNORE_INDEX

SETTINGS = settings(max_examples=80, deadline=None)
# Any text of a line: no line break, no surrogate (not encodable), no U+FEFF (a leading one is a byte order mark).
LINE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\ufeff"), max_size=40)
# Characters that vertical-tab, form-feed, NEL and Unicode line separators: str.splitlines breaks there, files not.
ODD_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@SETTINGS
@given(
    lines=st.lists(st.one_of(LINE, st.sampled_from(["", " ", "\t", ODD_BREAKS])), min_size=1, max_size=12),
    endings=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=12, max_size=12),
    lone_cr=st.booleans(),
    bom=st.booleans(),
    last_terminated=st.booleans(),
    gz=st.booleans(),
)
def test_reader_yields_exactly_the_lines(lines, endings, lone_cr, bom, last_terminated, gz) -> None:
    if lone_cr:  # old Mac files: every line ends in CR alone (mixing it with LF would make CR LF one break)
        endings = ["\r"] * len(endings)
    if not last_terminated:
        lines = [*lines[:-1], lines[-1] or "x"]  # an unterminated empty last line is no line at all
    text = "".join(line + ending for line, ending in zip(lines, endings, strict=False))
    if not last_terminated:
        text = text[: -len(endings[len(lines) - 1])]
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("lines.txt.gz" if gz else "lines.txt")
        path.write_bytes(gzip.compress(data) if gz else data)
        assert list(iter_text_lines(path)) == [(path, i, line) for i, line in enumerate(lines, start=1)]


SENTENCE_PARTS = st.sampled_from([
    "The", "film", "was", "good", ".", "!", "?", "...", "…", "Mr.", "U.S.", "J.", "e.g.", "3.5", "\"", "'", ")",
    "(", "”", "“", " ", "  ", "\t", "\n", "。", "！", "？", "；", "」", "』", "他", "说", "好", "电影", "A", "9",
])
PARAGRAPH = st.one_of(
    st.lists(SENTENCE_PARTS, max_size=30).map(lambda parts: "".join(
        part if part in ".!?…。！？；\"')”」』" else " " + part for part in parts)),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
)


def non_space(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


@SETTINGS
@given(paragraph=PARAGRAPH, lang=st.sampled_from(["en", "zh"]))
def test_sentence_splitting_loses_nothing(paragraph: str, lang: str) -> None:
    sentences = split_sentences(paragraph, lang)
    assert non_space("".join(sentences)) == non_space(paragraph)
    assert all(s and s == s.strip() for s in sentences)
    # In order and in place: each sentence is found after the previous one.
    position = 0
    for sentence in sentences:
        position = paragraph.index(sentence, position) + len(sentence)


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
