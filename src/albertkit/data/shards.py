"""Token shards on disk: flat token ids, word-start bits, sentence and document offsets, and their index.json.

A prepared data folder holds `index.json` and one sub-folder per split (`train/`, `valid/`) with four raw
little-endian arrays that numpy memory-maps:

    tokens.bin             token ids, uint16 when the vocabulary fits in 16 bits, else uint32
    word_starts.bin        uint8, 1 where a token starts a word (whole-word masking)
    sentence_offsets.bin   int64, num_sentences + 1 token offsets (sentence i is tokens[o[i]:o[i+1]])
    document_offsets.bin   int64, num_documents + 1 sentence offsets (document j is sentences d[j]:d[j+1])

Writers append in chunks; the whole folder is built under a temporary name and renamed into place at the end,
so an interrupted prepare never leaves an `index.json` beside incomplete data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SPLITS = ("train", "valid")
TOKENS, WORD_STARTS, SENTENCE_OFFSETS, DOCUMENT_OFFSETS = (
    "tokens.bin", "word_starts.bin", "sentence_offsets.bin", "document_offsets.bin",
)
OFFSET_DTYPE = np.dtype("<i8")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a vocabulary."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


@dataclass
class TokenizedDocuments:
    """Documents as flat arrays: all token ids, their word-start bits, tokens per sentence, sentences per document."""

    token_ids: np.ndarray
    word_starts: np.ndarray
    sentence_lengths: np.ndarray
    document_lengths: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.document_lengths)

    @property
    def num_sentences(self) -> int:
        return len(self.sentence_lengths)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    def select(self, keep: np.ndarray) -> TokenizedDocuments:
        """The documents where `keep` (one bool per document) is True, in order."""
        keep_sentences = np.repeat(keep, self.document_lengths)
        keep_tokens = np.repeat(keep_sentences, self.sentence_lengths)
        return TokenizedDocuments(
            self.token_ids[keep_tokens], self.word_starts[keep_tokens],
            self.sentence_lengths[keep_sentences], self.document_lengths[keep],
        )


class TokenShardWriter:
    """Appends tokenized documents of one split to the four files of `folder`, chunk by chunk."""

    def __init__(self, folder: str | Path, vocab_size: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = vocab_size
        self.num_tokens = self.num_sentences = self.num_documents = 0
        self._files = {name: open(self.folder / name, "wb") for name in (TOKENS, WORD_STARTS, SENTENCE_OFFSETS,
                                                                         DOCUMENT_OFFSETS)}
        zero = np.zeros(1, dtype=OFFSET_DTYPE).tobytes()
        self._files[SENTENCE_OFFSETS].write(zero)
        self._files[DOCUMENT_OFFSETS].write(zero)

    def append(self, documents: TokenizedDocuments) -> None:
        """Write the documents' tokens, bits and offsets after those already written."""
        ids = np.asarray(documents.token_ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids outside the vocabulary of {self.vocab_size}")
        self._files[TOKENS].write(ids.astype(self.dtype).tobytes())
        self._files[WORD_STARTS].write(np.asarray(documents.word_starts, dtype=np.uint8).tobytes())
        sentence_ends = self.num_tokens + np.cumsum(documents.sentence_lengths, dtype=np.int64)
        self._files[SENTENCE_OFFSETS].write(sentence_ends.astype(OFFSET_DTYPE).tobytes())
        document_ends = self.num_sentences + np.cumsum(documents.document_lengths, dtype=np.int64)
        self._files[DOCUMENT_OFFSETS].write(document_ends.astype(OFFSET_DTYPE).tobytes())
        self.num_tokens += documents.num_tokens
        self.num_sentences += documents.num_sentences
        self.num_documents += documents.num_documents

    def close(self) -> dict[str, Any]:
        """Flush and fsync the files; return the split's entry for index.json (counts, dtype, file sizes)."""
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        return {
            "documents": self.num_documents, "sentences": self.num_sentences, "tokens": self.num_tokens,
            "token_dtype": self.dtype.name,
            "files": {name: (self.folder / name).stat().st_size for name in self._files},
        }


def write_index(folder: str | Path, index: dict[str, Any]) -> None:
    """Write index.json (atomically) with the format version first."""
    write_text_atomic(Path(folder) / INDEX_NAME, json.dumps({"format_version": FORMAT_VERSION, **index}, indent=2) + "\n")


def read_index(data_dir: str | Path) -> dict[str, Any]:
    """The index.json of a prepared data folder, checked for its format version."""
    path = Path(data_dir) / INDEX_NAME
    if not path.is_file():
        raise UserError("not a prepared data folder (no index.json): run `albertkit pretrain prepare`", data_dir)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"invalid JSON ({err.msg})", path, err.lineno) from None
    if index.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"data format version {index.get('format_version')} is not {FORMAT_VERSION}: prepare the data again", path
        )
    return index


class TokenShards:
    """One split of a prepared data folder, memory-mapped: tokens, word-start bits, sentence and document offsets."""

    def __init__(self, data_dir: str | Path, split: str = "train"):
        self.data_dir = Path(data_dir)
        self.index = read_index(data_dir)
        if split not in self.index["splits"]:
            raise UserError(f"no split {split!r}; this folder has {', '.join(self.index['splits'])}", data_dir)
        self.split = split
        info = self.index["splits"][split]
        folder = self.data_dir / split
        for name, size in info["files"].items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != size:
                raise UserError(f"missing or truncated ({size} bytes expected): prepare the data again", path)
        self.token_ids = _map(folder / TOKENS, np.dtype(info["token_dtype"]).newbyteorder("<"))
        self.word_starts = _map(folder / WORD_STARTS, np.dtype(np.uint8))
        self.sentence_offsets = _map(folder / SENTENCE_OFFSETS, OFFSET_DTYPE)
        self.document_offsets = _map(folder / DOCUMENT_OFFSETS, OFFSET_DTYPE)

    @property
    def vocab_size(self) -> int:
        return int(self.index["vocab_size"])

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_sentences(self) -> int:
        return len(self.sentence_offsets) - 1

    @property
    def num_documents(self) -> int:
        return len(self.document_offsets) - 1

    def sentence(self, i: int) -> np.ndarray:
        """Token ids of sentence `i`."""
        return np.asarray(self.token_ids[self.sentence_offsets[i] : self.sentence_offsets[i + 1]])

    def document(self, j: int) -> list[np.ndarray]:
        """Token ids of each sentence of document `j`."""
        return [self.sentence(i) for i in range(self.document_offsets[j], self.document_offsets[j + 1])]


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    # np.memmap refuses empty files; an empty split is an empty array.
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class ConcatenatedArray:
    """Several 1-D arrays (memory-mapped shards) read as one, without copying them: integer-array indexing and
    slices within one part, as the pretraining data reads tokens."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(part) for part in parts])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self))
            part = int(np.searchsorted(self.starts, start, side="right")) - 1 if start < len(self) else 0
            if stop > self.starts[part + 1]:
                raise IndexError("a slice of a ConcatenatedArray must lie within one part")
            offset = self.starts[part]
            return np.asarray(self.parts[part][start - offset:stop - offset])
        index = np.asarray(index)
        out = np.empty(index.shape, dtype=self.dtype)
        part_of = np.searchsorted(self.starts, index, side="right") - 1
        for part in np.unique(part_of):
            chosen = part_of == part
            out[chosen] = self.parts[part][index[chosen] - self.starts[part]]
        return out


class ShardUnion:
    """The same split of several prepared folders (say, the slices `pretrain prepare --shard-index` wrote on
    several machines) read as one TokenShards: their documents one after another."""

    def __init__(self, data_dirs: list[str | Path], split: str = "train"):
        parts = [TokenShards(d, split) for d in data_dirs]
        check_compatible([p.index for p in parts], data_dirs)
        self.data_dir = Path(data_dirs[0])
        self.index = parts[0].index
        self.split = split
        self.token_ids = ConcatenatedArray([p.token_ids for p in parts])
        self.word_starts = ConcatenatedArray([p.word_starts for p in parts])
        token_shift = np.cumsum([0] + [p.num_tokens for p in parts])
        sentence_shift = np.cumsum([0] + [p.num_sentences for p in parts])
        self.sentence_offsets = _join_offsets([p.sentence_offsets for p in parts], token_shift)
        self.document_offsets = _join_offsets([p.document_offsets for p in parts], sentence_shift)

    vocab_size = TokenShards.vocab_size
    num_tokens = TokenShards.num_tokens
    num_sentences = TokenShards.num_sentences
    num_documents = TokenShards.num_documents
    sentence = TokenShards.sentence
    document = TokenShards.document


def _join_offsets(offsets: list[np.ndarray], shifts: np.ndarray) -> np.ndarray:
    """One offsets array (n + 1 entries) from each part's, each shifted by the items of the parts before it."""
    joined = [np.zeros(1, dtype=OFFSET_DTYPE)]
    joined += [np.asarray(o[1:], dtype=OFFSET_DTYPE) + shift for o, shift in zip(offsets, shifts, strict=False)]
    return np.concatenate(joined)


# What must agree between prepared folders read together: the same tokenizer, ids and sequence length.
COMPATIBLE_KEYS = ("vocab_size", "token_dtype", "special_token_ids", "max_seq_length", "whole_word_mask")


def check_compatible(indexes: list[dict[str, Any]], data_dirs: list[str | Path]) -> None:
    """A UserError naming the folder whose tokenizer or settings differ from the first one's, or a slice
    (`pretrain prepare --shard-index`) given twice."""
    first = indexes[0]
    for index, folder in zip(indexes[1:], data_dirs[1:], strict=True):
        for key in COMPATIBLE_KEYS:
            if index.get(key) != first.get(key):
                raise UserError(f"{key} {index.get(key)!r} differs from {first.get(key)!r} in {data_dirs[0]}: "
                                "prepare every folder with the same tokenizer and settings", folder)
        if index.get("tokenizer", {}).get("sha256") != first.get("tokenizer", {}).get("sha256"):
            raise UserError(f"prepared with another tokenizer than {data_dirs[0]}", folder)
    slices = [(index["shard"]["index"], index["shard"]["count"]) for index in indexes if index.get("shard")]
    if len(set(slices)) < len(slices):
        repeated = next(s for s in slices if slices.count(s) > 1)
        raise UserError(f"slice {repeated[0]} of {repeated[1]} is given twice: each slice once")


def open_shards(data_dirs: str | Path | list[str | Path], split: str = "train") -> TokenShards | ShardUnion:
    """One prepared folder's split, or the union of several folders' (documents of each in turn)."""
    if isinstance(data_dirs, str | Path):
        return TokenShards(data_dirs, split)
    if len(data_dirs) == 1:
        return TokenShards(data_dirs[0], split)
    return ShardUnion(list(data_dirs), split)
