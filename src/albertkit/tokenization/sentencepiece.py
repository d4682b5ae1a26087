"""ALBERT's SentencePiece tokenizer: train one, load one, encode single texts and pairs the way transformers does.

Encoding matches `transformers.AlbertTokenizer` (5.x, backed by `tokenizers`) id for id. Its pipeline is:
the five special tokens are split out of the raw text first; each remaining segment is normalized
(``/'' -> ", NFKD and removal of combining marks unless keep_accents, lowercasing if do_lower_case, then the
normalizer compiled into spiece.model, here nmt_nfkc); words are split on whitespace, each gets a leading "▁",
and the unigram model segments it. `AlbertTokenizer.normalize` does the Python part; sentencepiece, fed whole
lists in C++, does the rest (its whitespace handling gives the same words, because trained pieces never cross a
"▁"). Two known residual differences: characters newer than the Unicode tables inside `tokenizers` may
normalize differently, and segmentations of exactly equal score (a permutation of the same pieces, as in
"baaaaaaaaad") are broken by float32 rounding here and float64 there (with an 8,000-piece WikiText
vocabulary, 2 of 60,614 SST-2 train rows differ).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

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

SPIECE_NAME = "spiece.model"


PAD, UNK, CLS, SEP, MASK = "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"


SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)


# Unicode White_Space minus U+000B, which sentencepiece's normalizer deletes instead (as transformers does).
_WHITESPACE = re.compile("[\t\n\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


_QUOTE_PAIR_OR_CHAR = re.compile("``|''|.", re.DOTALL)


_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")


class AlbertTokenizer(TokenizerBase):
    """A SentencePiece unigram tokenizer with ALBERT's special tokens and transformers' preprocessing."""

    kind = "SentencePiece"
    vocab_file = SPIECE_NAME

    def __init__(
        self,
        model_proto: bytes,
        *,
        do_lower_case: bool = True,
        keep_accents: bool = False,
        model_max_length: int = 512,
    ):
        self.sp_model = spm.SentencePieceProcessor(model_proto=model_proto)
        self._model_proto = model_proto
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self.model_max_length = model_max_length
        pieces = [self.sp_model.id_to_piece(i) for i in range(self.sp_model.get_piece_size())]
        self._special_id = {token: self._piece_id(token) for token in SPECIAL_TOKENS}
        self._index_vocabulary(
            pieces,
            [self._special_id[token] for token in SPECIAL_TOKENS],
            word_starts=(piece.startswith("▁") or bool(CJK_IDEOGRAPH.match(piece)) for piece in pieces),
        )

    def _piece_id(self, token: str) -> int:
        piece_id = self.sp_model.piece_to_id(token)
        if self.sp_model.id_to_piece(piece_id) != token:
            raise UserError(f"the SentencePiece model has no {token} piece, which ALBERT needs")
        return piece_id

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> AlbertTokenizer:
        """Load `spiece.model` and (if present) `tokenizer_config.json` from a folder."""
        directory = Path(directory)
        model_path = directory / SPIECE_NAME
        if not model_path.is_file():
            raise UserError(
                f"no {SPIECE_NAME} (or tokenizer.json or BERT vocab.txt) in this folder; train one with "
                "`albertkit tokenizer train`",
                directory,
            )
        config = read_tokenizer_config(directory)
        return cls(
            model_path.read_bytes(),
            do_lower_case=bool(config.get("do_lower_case", True)),
            keep_accents=bool(config.get("keep_accents", False)),
            model_max_length=configured_max_length(config),
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `spiece.model`, `tokenizer_config.json` and `special_tokens_map.json` (transformers loads them)."""
        directory = Path(directory)
        write_atomic(directory / SPIECE_NAME, lambda tmp: tmp.write_bytes(self._model_proto))
        special = {
            "bos_token": CLS,
            "eos_token": SEP,
            "unk_token": UNK,
            "sep_token": SEP,
            "pad_token": PAD,
            "cls_token": CLS,
            "mask_token": MASK,
        }
        config = {
            "tokenizer_class": "AlbertTokenizer",
            "do_lower_case": self.do_lower_case,
            "keep_accents": self.keep_accents,
            "remove_space": True,
            "model_max_length": self.model_max_length,
            **special,
        }
        write_text_atomic(directory / TOKENIZER_CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        write_text_atomic(directory / SPECIAL_TOKENS_MAP_NAME, json.dumps(special, indent=2) + "\n")

    def normalize(self, text: str) -> str:
        """transformers' ALBERT preprocessing: ``/'' to ", accents stripped, lowercased, whitespace collapsed."""
        return normalize_text(text, do_lower_case=self.do_lower_case, keep_accents=self.keep_accents)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each text, without [CLS]/[SEP]; special-token strings in the text map to their ids."""
        return self._encode(texts, out_type=int)

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Piece ids and each piece's [start, end) characters in its text: sentencepiece aligns its pieces with
        the normalized text, `normalize_with_sources` aligns that with the text."""
        # Each text is a plan of parts: a special token (id, span), or the index of a normalized segment; all the
        # segments then go to C++ in one call.
        plans: list[list[int | tuple[int, tuple[int, int]]]] = []
        segments: list[tuple[str, list[int], list[int]]] = []  # normalized, sources' starts (+ end), ends
        for text in texts:
            parts: list[int | tuple[int, tuple[int, int]]] = []
            position = 0
            for match in [*_SPECIAL_SPLIT.finditer(text), None]:
                end = len(text) if match is None else match.start()
                normalized, starts, ends = normalize_with_sources(
                    text[position:end], do_lower_case=self.do_lower_case, keep_accents=self.keep_accents
                )
                if normalized:
                    parts.append(len(segments))
                    segments.append((normalized, [position + start for start in starts] + [end],
                                     [position + stop for stop in ends]))
                if match is not None:
                    parts.append((self._special_id[match.group()], match.span()))
                    position = match.end()
            plans.append(parts)
        encoded = self.sp_model.encode([normalized for normalized, _, _ in segments], return_type="proto")
        results = []
        for parts in plans:
            ids: list[int] = []
            spans: list[tuple[int, int]] = []
            for part in parts:
                if isinstance(part, int):
                    _append_aligned(segments[part], encoded[part].pieces, ids, spans)
                else:
                    ids.append(part[0])
                    spans.append(part[1])
            results.append((ids, spans))
        return results

    def tokenize(self, text: str) -> list[str]:
        """The pieces of one text (an unknown character shows as itself, as in transformers)."""
        return self._encode([text], out_type=str)[0]

    def _encode(self, texts: list[str], out_type: type) -> list[list]:
        # Special-token strings are cut out before normalizing; the remaining segments go to C++ in one list.
        split = [_SPECIAL_SPLIT.split(text) for text in texts]
        segments = [self.normalize(part) for parts in split for part in parts[::2]]
        encoded = iter(self.sp_model.encode(segments, out_type=out_type))
        special = self._special_id if out_type is int else {token: token for token in SPECIAL_TOKENS}
        results = []
        for parts in split:
            pieces = list(next(encoded))
            for token in parts[1::2]:
                pieces.append(special[token])
                pieces.extend(next(encoded))
            results.append(pieces)
        return results

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of a piece string, or ids of a list; a string that is not a piece gives the <unk> id."""
        if isinstance(tokens, str):
            return int(self.sp_model.piece_to_id(tokens))
        return [int(i) for i in self.sp_model.piece_to_id(list(tokens))]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ids: "▁" becomes a space and the first one is dropped (transformers' Metaspace decoder)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if skip_special_tokens:
            ids = ids[~self._is_special[ids]]
        tokens = self._pieces[ids].tolist()
        text = "".join(tokens).replace("▁", " ")
        return text[1:] if tokens and tokens[0].startswith("▁") else text


def normalize_text(text: str, *, do_lower_case: bool = True, keep_accents: bool = False) -> str:
    """The Python half of transformers' ALBERT normalizer (sentencepiece's own nmt_nfkc rules come after)."""
    text = text.replace("``", '"').replace("''", '"')
    if not keep_accents and not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_combining_marks())
    if do_lower_case:
        text = text.lower()
    return _WHITESPACE.sub(" ", text).strip(" ")


def _append_aligned(
    segment: tuple[str, list[int], list[int]], pieces: Any, ids: list[int], spans: list[tuple[int, int]]
) -> None:
    """Append sentencepiece's pieces of a normalized segment with the characters of the text they come from."""
    normalized, starts, ends = segment
    char_of_byte = _char_of_byte(normalized)  # sentencepiece reports UTF-8 byte offsets
    for piece in pieces:
        first, stop = char_of_byte[piece.begin], char_of_byte[piece.end]
        first += first < stop and normalized[first] == " "  # a "▁" piece's text starts after the space
        ids.append(piece.id)
        spans.append((starts[first], ends[stop - 1]) if stop > first else (starts[first], starts[first]))


def _char_of_byte(text: str) -> list[int]:
    """For each UTF-8 byte offset of `text` (and its end), the index of the character it falls in."""
    if text.isascii():
        return list(range(len(text) + 1))
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    utf8_lengths = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
    return np.repeat(np.arange(len(text) + 1), np.append(utf8_lengths, 1)).tolist()


def normalize_with_sources(
    text: str, *, do_lower_case: bool = True, keep_accents: bool = False
) -> tuple[str, list[int], list[int]]:
    """`normalize_text(text)` and, for each of its characters, the [start, end) characters of `text` it comes from
    (as two lists): a run of whitespace becomes one space from the whole run, "``" one quote from both characters,
    and each character of an expansion ("ﬁ" -> "fi") comes from the one it expands."""
    if text.isascii() and text.isprintable() and "``" not in text and "''" not in text and "  " not in text \
            and text[:1] != " " and text[-1:] != " ":  # plain ASCII: at most lowercased, character for character
        return normalize_text(text, do_lower_case=do_lower_case, keep_accents=keep_accents), \
            list(range(len(text))), list(range(1, len(text) + 1))
    # Units: a `` or '' pair, else one character each; each normalizes on its own (NFKD, marks, lowercase).
    if "``" in text or "''" in text:
        bounds = [match.span() for match in _QUOTE_PAIR_OR_CHAR.finditer(text)]
        units = ['"' if end - start == 2 else _normalized_char(text[start], do_lower_case, keep_accents)
                 for start, end in bounds]
    else:
        bounds = None
        units = [_normalized_char(char, do_lower_case, keep_accents) for char in text]
    if bounds is None and all(len(unit) == 1 for unit in units):  # the common case: character for character
        chars, starts, ends = units, list(range(len(text))), list(range(1, len(text) + 1))
    else:
        chars, starts, ends = [], [], []
        for unit, (start, end) in zip(units, bounds or ((i, i + 1) for i in range(len(text))), strict=True):
            chars.extend(unit)
            starts.extend([start] * len(unit))
            ends.extend([end] * len(unit))
    normalized = "".join(chars)
    runs = [match.span() for match in _WHITESPACE.finditer(normalized)
            if match.end() - match.start() > 1 or match.group() != " " or match.start() == 0
            or match.end() == len(normalized)]
    if runs:  # collapse each run to one space from the whole run; drop the spaces at either end
        kept_chars, kept_starts, kept_ends, position = [], [], [], 0
        for run_start, run_end in runs:
            kept_chars += [*chars[position:run_start], " "]
            kept_starts += [*starts[position:run_start], starts[run_start]]
            kept_ends += [*ends[position:run_start], ends[run_end - 1]]
            position = run_end
        chars, starts, ends = kept_chars + chars[position:], kept_starts + starts[position:], kept_ends + ends[position:]
        begin = 1 if chars[:1] == [" "] else 0
        stop = len(chars) - 1 if len(chars) > begin and chars[-1] == " " else len(chars)
        chars, starts, ends = chars[begin:stop], starts[begin:stop], ends[begin:stop]
        normalized = "".join(chars)
    # Lowercasing the whole text differs from doing it by character only in context (a final sigma becomes
    # "ς"), never in length: take the whole-text result when its length agrees.
    whole = normalize_text(text, do_lower_case=do_lower_case, keep_accents=keep_accents)
    return (whole if len(whole) == len(normalized) else normalized), starts, ends


@lru_cache(maxsize=1 << 16)
def _normalized_char(char: str, do_lower_case: bool, keep_accents: bool) -> str:
    """One character through `normalize_text`'s per-character steps: NFKD and mark removal, lowercasing."""
    if not keep_accents and not char.isascii():
        char = unicodedata.normalize("NFKD", char).translate(_combining_marks())
    return char.lower() if do_lower_case else char


@cache
def _combining_marks() -> dict[int, None]:
    """A str.translate table deleting every combining mark (Mn, Mc, Me), as `tokenizers`' StripAccents does."""
    return {
        code: None for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)).startswith("M")
    }

