"""A `tokenizers` tokenizer (Unigram or WordPiece) as transformers 5 saves it: `tokenizer.json`.

transformers 5 writes `tokenizer.json` and `tokenizer_config.json` only (no `spiece.model`, no `vocab.txt`), so
a model folder fine-tuned there and brought back to albertkit carries its tokenizer in this form. Encoding runs
the saved pipeline itself, so the ids are transformers' by construction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, processors

from albertkit.errors import UserError
from albertkit.io.atomic import write_atomic, write_text_atomic
from albertkit.tokenization.base import (
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TokenizerBase,
    configured_max_length,
    read_tokenizer_config,
)
from albertkit.tokenization.cjk import CJK_IDEOGRAPH

TOKENIZER_JSON_NAME = "tokenizer.json"
SPECIAL_TOKEN_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
# Each model type's special tokens when the config names none, and the transformers class that reads it back.
DEFAULTS = {
    "Unigram": (dict(zip(SPECIAL_TOKEN_KEYS, ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"), strict=True)),
                "AlbertTokenizer"),
    "WordPiece": (dict(zip(SPECIAL_TOKEN_KEYS, ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), strict=True)),
                  "BertTokenizer"),
}
WORDPIECE_CONTINUATION = "##"


class FastTokenizer(TokenizerBase):
    """A `tokenizers.Tokenizer` with ALBERT's five special tokens, behind the same interface as `AlbertTokenizer`."""

    vocab_file = TOKENIZER_JSON_NAME

    def __init__(self, tokenizer: Any, config: dict[str, Any] | None = None, source: Path | None = None):
        """`tokenizer`: a `tokenizers.Tokenizer` with a Unigram or WordPiece model; `config`: the folder's
        tokenizer_config.json (special tokens, case handling, model_max_length); `source` names it in errors."""
        self.kind = type(tokenizer.model).__name__
        if self.kind not in DEFAULTS:
            raise UserError(f"a {self.kind} tokenizer model is not supported (only Unigram and WordPiece)", source)
        self.config = dict(config or {})
        defaults, self.tokenizer_class = DEFAULTS[self.kind]
        self.special_tokens = {key: token_text(self.config.get(key) or defaults[key]) for key in SPECIAL_TOKEN_KEYS}
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        pieces = [tokenizer.id_to_token(i) for i in range(size)]
        if None in pieces:
            raise UserError(f"the vocabulary has no piece with id {pieces.index(None)}", source)
        special_ids = [tokenizer.token_to_id(self.special_tokens[key]) for key in SPECIAL_TOKEN_KEYS]
        absent = [self.special_tokens[key] for key, i in zip(SPECIAL_TOKEN_KEYS, special_ids, strict=True) if i is None]
        if absent:
            raise UserError(f"the vocabulary has no {', '.join(absent)}, which ALBERT needs", source)
        # Special-token strings typed in the text ("[MASK]") are matched before normalizing, as in transformers.
        tokenizer.add_special_tokens(list(self.special_tokens.values()))
        if tokenizer.post_processor is None:  # saved files then add [CLS]/[SEP] for any reader (transformers 4 too)
            ids_by_key = dict(zip(SPECIAL_TOKEN_KEYS, special_ids, strict=True))
            tokenizer.post_processor = _cls_sep_template(self.special_tokens, ids_by_key)
        self.do_lower_case = bool(self.config.get("do_lower_case", True))
        strip_accents = self.config.get("strip_accents")
        self.keep_accents = bool(self.config.get("keep_accents", strip_accents is False or (
            strip_accents is None and not self.do_lower_case)))
        self.model_max_length = configured_max_length(self.config)
        if self.kind == "WordPiece":
            word_starts = (not piece.startswith(WORDPIECE_CONTINUATION) for piece in pieces)
        else:
            word_starts = (piece.startswith("▁") or bool(CJK_IDEOGRAPH.match(piece)) for piece in pieces)
        self._index_vocabulary(pieces, special_ids, word_starts=word_starts)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FastTokenizer:
        """Load `tokenizer.json` and (if present) `tokenizer_config.json` from a folder."""
        path = Path(directory) / TOKENIZER_JSON_NAME
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own Exception subclass for every unreadable file
            raise UserError(f"cannot read the tokenizer ({str(err).splitlines()[0]})", path) from None
        return cls(tokenizer, read_tokenizer_config(Path(directory)), source=path)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `tokenizer.json`, `tokenizer_config.json` (naming the transformers class that reads it) and
        `special_tokens_map.json`."""
        directory = Path(directory)
        write_atomic(directory / TOKENIZER_JSON_NAME, lambda tmp: self._tokenizer.save(str(tmp)))
        config = {
            **self.config,
            "tokenizer_class": self.tokenizer_class,
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
        """The pieces of one text."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of a piece string, or ids of a list; a string that is not a piece gives the unknown token's id."""
        if isinstance(tokens, str):
            token_id = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if token_id is None else token_id
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ids through the saved decoder (WordPiece: "##" glued on; Unigram: "▁" made a space)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if skip_special_tokens:
            ids = ids[~self._is_special[ids]]
        return self._tokenizer.decoder.decode(self._pieces[ids].tolist())


def _cls_sep_template(special_tokens: dict[str, str], special_ids: dict[str, int]) -> Any:
    """BERT's [CLS] A [SEP] (B [SEP]) post-processor, with segment ids 0 and 1."""
    cls, sep = special_tokens["cls_token"], special_tokens["sep_token"]
    return processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, special_ids["cls_token"]), (sep, special_ids["sep_token"])],
    )


def token_text(value: Any) -> str:
    """A special token as tokenizer configs write it: a string, or an AddedToken dict with its `content`."""
    return str(value["content"]) if isinstance(value, dict) else str(value)
