"""Pick and load a folder's tokenizer (spiece.model, tokenizer.json or vocab.txt) and describe it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from albertkit.tokenization.base import TokenizerBase
from albertkit.tokenization.fast import TOKENIZER_JSON_NAME, FastTokenizer
from albertkit.tokenization.sentencepiece import SPIECE_NAME, AlbertTokenizer
from albertkit.tokenization.wordpiece import VOCAB_NAME, WordPieceTokenizer


def tokenizer_file(directory: str | Path) -> Path:
    """The file that defines a folder's tokenizer: ALBERT's `spiece.model`, else the `tokenizer.json` transformers 5
    saves, else a BERT `vocab.txt` (as the community Chinese ALBERT checkpoints ship); `spiece.model` (to be
    reported missing) when there is none of them."""
    directory = Path(directory)
    for name in (SPIECE_NAME, TOKENIZER_JSON_NAME, VOCAB_NAME):
        if (directory / name).is_file():
            return directory / name
    return directory / SPIECE_NAME


def load_tokenizer(directory: str | Path) -> TokenizerBase:
    """The tokenizer of a folder: SentencePiece, `tokenizers` or WordPiece, by `tokenizer_file`."""
    loaders = {TOKENIZER_JSON_NAME: FastTokenizer, VOCAB_NAME: WordPieceTokenizer}
    return loaders.get(tokenizer_file(directory).name, AlbertTokenizer).from_pretrained(directory)


def describe_tokenizer(directory: str | Path) -> dict[str, Any] | None:
    """The folder's tokenizer: its kind, file, size and case handling (None when the folder has none)."""
    if not tokenizer_file(directory).is_file():
        return None
    return tokenizer_summary(load_tokenizer(directory))


def tokenizer_summary(tokenizer: Any) -> dict[str, Any]:
    """A loaded tokenizer's kind (SentencePiece, Unigram or WordPiece), defining file, size and case handling."""
    return {
        "kind": tokenizer.kind,
        "file": tokenizer.vocab_file,
        "vocab_size": tokenizer.vocab_size,
        "do_lower_case": tokenizer.do_lower_case,
    }
