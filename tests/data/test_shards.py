"""Token shards: chunked writing, memory-mapped reading, the index."""

import json

import numpy as np
import pytest

from albertkit.data.shards import (
    INDEX_NAME,
    TokenizedDocuments,
    TokenShards,
    TokenShardWriter,
    read_index,
    token_dtype,
    write_index,
)
from albertkit.errors import UserError


def _documents(sentences_per_doc, first_id=5):
    """Documents whose token ids count up from `first_id`; sentence i has i % 4 + 1 tokens."""
    lengths = np.arange(sum(sentences_per_doc)) % 4 + 1
    ids = np.arange(first_id, first_id + lengths.sum())
    return TokenizedDocuments(ids, ids % 2 == 0, lengths, np.array(sentences_per_doc))


def _write_split(folder, chunks, vocab_size):
    writer = TokenShardWriter(folder / "train", vocab_size)
    for chunk in chunks:
        writer.append(chunk)
    info = writer.close()
    write_index(folder, {"vocab_size": vocab_size, "max_seq_length": 128, "splits": {"train": info}})
    return info


def test_chunks_append_into_one_memory_mapped_split(tmp_path):
    first = _documents([2, 3])
    second = _documents([1, 4], first_id=5 + first.num_tokens)
    info = _write_split(tmp_path, [first, second], vocab_size=30000)
    shards = TokenShards(tmp_path, "train")
    assert (info["documents"], info["sentences"], info["tokens"]) == (4, 10, first.num_tokens + second.num_tokens)
    assert shards.token_ids.dtype == np.uint16 and isinstance(shards.token_ids, np.memmap)
    np.testing.assert_array_equal(shards.token_ids, np.concatenate([first.token_ids, second.token_ids]))
    np.testing.assert_array_equal(shards.word_starts, np.concatenate([first.word_starts, second.word_starts]))
    np.testing.assert_array_equal(shards.document_offsets, [0, 2, 5, 6, 10])
    # Sentence lengths 1,2,3,4,1 then 1,2,3,4,1 (the second chunk restarts its pattern).
    np.testing.assert_array_equal(np.diff(shards.sentence_offsets), [1, 2, 3, 4, 1, 1, 2, 3, 4, 1])
    assert [s.tolist() for s in shards.document(1)] == [[8, 9, 10], [11, 12, 13, 14], [15]]
    assert info["files"]["tokens.bin"] == 2 * shards.num_tokens


def test_token_dtype_follows_the_vocabulary(tmp_path):
    assert token_dtype(30000) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    docs = _documents([1], first_id=70000)
    _write_split(tmp_path, [docs], vocab_size=80000)
    shards = TokenShards(tmp_path)
    assert shards.token_ids.dtype == np.uint32 and shards.token_ids.tolist() == docs.token_ids.tolist()


def test_select_keeps_whole_documents():
    docs = _documents([2, 1, 3])
    kept = docs.select(np.array([True, False, True]))
    assert kept.document_lengths.tolist() == [2, 3]
    assert kept.sentence_lengths.tolist() == [1, 2, 4, 1, 2]
    assert kept.token_ids.tolist() == [5, 6, 7, 11, 12, 13, 14, 15, 16, 17]


def test_ids_outside_the_vocabulary_are_refused(tmp_path):
    writer = TokenShardWriter(tmp_path, vocab_size=10)
    with pytest.raises(ValueError, match="outside the vocabulary of 10"):
        writer.append(_documents([2], first_id=9))  # ids 9 and 10
    writer.close()


def test_truncated_files_and_old_formats_are_user_errors(tmp_path):
    _write_split(tmp_path, [_documents([3])], vocab_size=100)
    with open(tmp_path / "train" / "tokens.bin", "r+b") as handle:
        handle.truncate(2)
    with pytest.raises(UserError, match=r"tokens.bin: missing or truncated \(12 bytes expected\)"):
        TokenShards(tmp_path)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    (tmp_path / INDEX_NAME).write_text(json.dumps({**index, "format_version": 0}))
    with pytest.raises(UserError, match="format version 0 is not 1"):
        read_index(tmp_path)
    with pytest.raises(UserError, match="no index.json"):
        TokenShards(tmp_path / "train")
    with pytest.raises(UserError, match="no split 'valid'"):
        (tmp_path / INDEX_NAME).write_text(json.dumps(index))
        TokenShards(tmp_path, "valid")
