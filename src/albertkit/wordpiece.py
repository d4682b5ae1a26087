"""BERT's WordPiece tokenizer, for ALBERT checkpoints that ship a `vocab.txt` (the community Chinese models).

Built on `tokenizers` exactly as `transformers.BertTokenizer` (5.x) builds it, so the ids are the same: BERT's
normalizer (control characters removed, spaces around CJK ideographs, lowercasing and accent stripping),
splitting on whitespace and punctuation, then greedy longest-match-first WordPiece with "##" continuations
and [UNK] for a word it cannot spell (or one over 100 characters).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.checkpoint import write_text_atomic
from albertkit.errors import UserError
from albertkit.tokenizer_base import (
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TokenizerBase,
    read_tokenizer_config,
)

VOCAB_NAME = "vocab.txt"
SPECIAL_TOKEN_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = dict(zip(SPECIAL_TOKEN_KEYS, ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), strict=True))
CONTINUATION = "##"


class WordPieceTokenizer(TokenizerBase):
    """A BERT WordPiece vocabulary with BERT's preprocessing, behind the same interface as `AlbertTokenizer`."""

    vocab_file = VOCAB_NAME

    def __init__(
        self,
        pieces: list[str],
        *,
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        model_max_length: int = 512,
        special_tokens: dict[str, str] | None = None,
        source: Path | None = None,
    ):
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        self.special_tokens = {**DEFAULT_SPECIAL_TOKENS, **(special_tokens or {})}
        vocab = {piece: index for index, piece in enumerate(pieces)}  # a repeated piece keeps its last id, as in BERT
        absent = [token for token in self.special_tokens.values() if token not in vocab]
        if absent:
            raise UserError(f"the vocabulary has no {', '.join(absent)}, which ALBERT needs", source)
        self.do_lower_case = do_lower_case
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.keep_accents = strip_accents is False or (strip_accents is None and not do_lower_case)
        self.model_max_length = model_max_length
        self._tokenizer = Tokenizer(WordPiece(vocab, unk_token=self.special_tokens["unk_token"]))
        self._tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            lowercase=do_lower_case,
        )
        self._tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tokenizer.decoder = decoders.WordPiece(prefix=CONTINUATION)
        # Special-token strings typed in the text ("[MASK]") are matched before normalizing, as in transformers.
        self._tokenizer.add_special_tokens(list(self.special_tokens.values()))
        self._index_vocabulary(
            pieces,
            [vocab[self.special_tokens[key]] for key in SPECIAL_TOKEN_KEYS],
            word_starts=(not piece.startswith(CONTINUATION) for piece in pieces),
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> WordPieceTokenizer:
        """Load `vocab.txt` and (if present) `tokenizer_config.json` from a folder."""
        directory = Path(directory)
        config = read_tokenizer_config(directory)
        special_tokens = {
            key: _token_text(config[key]) for key in SPECIAL_TOKEN_KEYS if config.get(key) is not None
        }
        return cls(
            read_vocabulary(directory / VOCAB_NAME),
            do_lower_case=bool(config.get("do_lower_case", True)),
            tokenize_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            strip_accents=config.get("strip_accents"),
            model_max_length=_model_max_length(config),
            special_tokens=special_tokens,
            source=directory / VOCAB_NAME,
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `vocab.txt`, `tokenizer_config.json` (naming BertTokenizer, so transformers' AutoTokenizer picks
        it for an ALBERT model) and `special_tokens_map.json`."""
        directory = Path(directory)
        write_text_atomic(directory / VOCAB_NAME, "".join(f"{piece}\n" for piece in self._pieces))
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            "model_max_length": self.model_max_length,
            **self.special_tokens,
        }
        write_text_atomic(directory / TOKENIZER_CONFIG_NAME, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        write_text_atomic(
            directory / SPECIAL_TOKENS_MAP_NAME, json.dumps(self.special_tokens, indent=2, ensure_ascii=False) + "\n"
        )

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each text, without [CLS]/[SEP]; special-token strings in the text map to their ids."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Piece ids and each piece's [start, end) characters in its text (from `tokenizers`' alignments)."""
        return [
            (encoding.ids, encoding.offsets)
            for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False)
        ]

    def tokenize(self, text: str) -> list[str]:
        """The pieces of one text ("##" marks a piece that continues a word)."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of a piece string, or ids of a list; a string that is not a piece gives the [UNK] id."""
        if isinstance(tokens, str):
            token_id = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if token_id is None else token_id
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ids: pieces joined by spaces, "##" continuations glued to the piece before (as transformers)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if skip_special_tokens:
            ids = ids[~self._is_special[ids]]
        return self._tokenizer.decoder.decode(self._pieces[ids].tolist())


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


def _token_text(value: Any) -> str:
    """A special token as tokenizer configs write it: a string, or an AddedToken dict with its `content`."""
    return str(value["content"]) if isinstance(value, dict) else str(value)


def _model_max_length(config: dict[str, Any]) -> int:
    """`model_max_length`, 512 when absent or set to transformers' "unbounded" placeholder (a huge number)."""
    value = config.get("model_max_length", 512)
    return int(value) if isinstance(value, int | float) and value < 1e9 else 512
