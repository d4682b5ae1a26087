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
