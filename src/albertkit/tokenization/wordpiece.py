"""BERT's WordPiece tokenizer from a `vocab.txt`, for ALBERT checkpoints that ship one (the community Chinese
models).

Built on `tokenizers` exactly as `transformers.BertTokenizer` (5.x) builds it, so the ids are the same: BERT's
normalizer (control characters removed, spaces around CJK ideographs, lowercasing and accent stripping),
splitting on whitespace and punctuation, then greedy longest-match-first WordPiece with "##" continuations
and [UNK] for a word it cannot spell (or one over 100 characters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.tokenization.base import read_tokenizer_config
from albertkit.tokenization.fast import DEFAULTS, WORDPIECE_CONTINUATION, FastTokenizer, token_text

VOCAB_NAME = "vocab.txt"


class WordPieceTokenizer(FastTokenizer):
    """A BERT `vocab.txt` with BERT's preprocessing (options from tokenizer_config.json, as transformers reads
    them); saved folders get `vocab.txt` beside `tokenizer.json`, for transformers 4 as well as 5."""

    vocab_file = VOCAB_NAME

    def __init__(self, pieces: list[str], config: dict[str, Any] | None = None, source: Path | None = None):
        config = dict(config or {})
        unk_token = token_text(config.get("unk_token") or DEFAULTS["WordPiece"][0]["unk_token"])
        vocab = {piece: index for index, piece in enumerate(pieces)}  # a repeated piece keeps its last id, as in BERT
        # FastTokenizer checks that the special tokens, this one included, are in the vocabulary.
        tokenizer = Tokenizer(WordPiece(vocab, unk_token=unk_token))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            strip_accents=config.get("strip_accents"),
            lowercase=bool(config.get("do_lower_case", True)),
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix=WORDPIECE_CONTINUATION)
        super().__init__(tokenizer, config, source)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> WordPieceTokenizer:
        """Load `vocab.txt` and (if present) `tokenizer_config.json` from a folder."""
        directory = Path(directory)
        return cls(read_vocabulary(directory / VOCAB_NAME), read_tokenizer_config(directory), directory / VOCAB_NAME)

    def save_pretrained(self, directory: str | Path) -> None:
        """`FastTokenizer.save_pretrained` plus `vocab.txt`."""
        super().save_pretrained(directory)
        write_text_atomic(Path(directory) / VOCAB_NAME, "".join(f"{piece}\n" for piece in self._pieces))


def read_vocabulary(path: Path) -> list[str]:
    """The pieces of a BERT `vocab.txt`, one per line, in id order (each line without its newline, as BERT)."""
    if not path.is_file():
        raise UserError(f"no {path.name} in this folder", path.parent)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")  # newlines as Python reads text
    except UnicodeDecodeError as err:
        raise UserError(f"invalid UTF-8 ({err.reason})", path, data.count(b"\n", 0, err.start) + 1) from None
    pieces = text.split("\n")
    if pieces[-1] == "":
        pieces.pop()
    if not pieces:
        raise UserError("empty vocabulary", path)
    return pieces
