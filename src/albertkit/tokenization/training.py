"""`albertkit tokenizer train`: a SentencePiece unigram tokenizer with ALBERT's conventions."""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import sentencepiece as spm

from albertkit.errors import UserError
from albertkit.io.columnar import is_columnar
from albertkit.io.text import iter_text_lines, resolve_text_files
from albertkit.runtime.console import progress_bar, say
from albertkit.tokenization.cjk import CJK_IDEOGRAPH
from albertkit.tokenization.sentencepiece import CLS, MASK, PAD, SEP, UNK, AlbertTokenizer, normalize_text

_LETTER = re.compile(r"[^\W\d_]")
# sentencepiece skips sentences over max_sentence_length bytes; longer lines are cut into pieces this long.
_MAX_TRAIN_CHARS = 4096
_LANG_SAMPLE_LINES = 10_000


def train_tokenizer(
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    vocab_size: int = 30000,
    lang: str = "auto",
    lowercase: bool | None = None,
    char_vocab: bool = False,
    max_sentences: int = 2_000_000,
    seed: int = 0,
    split: str | None = None,
) -> AlbertTokenizer:
    """Train a SentencePiece unigram tokenizer with ALBERT's conventions and save it into `out_dir`.

    Ids 0-4 are <pad>, <unk>, [CLS], [SEP], [MASK] (control pieces that never come out of text). Lines are
    normalized as at encoding time and streamed into sentencepiece; a corpus of more than `max_sentences`
    non-blank lines is first counted, then a random sample of that many lines (drawn with `seed`, so a rerun
    gives the same model) is streamed. lang "en": character coverage 1.0; "zh": coverage 0.9995 and digits split
    one by one; "auto" picks "zh" when CJK ideographs are at least 10% of the letters in the first 10,000 lines.
    Lowercasing is on by default for both (Chinese has no case, so it only folds embedded Latin words, as
    bert-base-chinese does); `lowercase=False` keeps case. `char_vocab=True` makes every piece one character
    (unigram with max piece length 1, so unknown runs fuse into one <unk> exactly as in transformers), and
    `vocab_size` becomes an upper bound: the vocabulary holds the characters the coverage keeps. Parquet, Arrow
    and datasets inputs give their "text" column (`split`: the split of a DatasetDict folder).
    """
    if vocab_size < 10:
        raise UserError(f"--vocab-size must be at least 10 (got {vocab_size})")
    if lang not in ("en", "zh", "auto"):
        raise UserError(f"--lang must be en, zh or auto (got {lang!r})")
    if max_sentences < 1:
        raise UserError(f"--max-sentences must be at least 1 (got {max_sentences})")
    files = resolve_text_files(inputs)
    if lang == "auto":
        lang = _detect_lang(partial(iter_text_lines, files, split))
    options = dict(do_lower_case=True if lowercase is None else lowercase, keep_accents=False)
    feed = _TrainingLines(files, split, partial(normalize_text, **options), max_sentences, seed)
    tokenizer = AlbertTokenizer(_unigram_model(feed, vocab_size, lang, char_vocab), **options)
    tokenizer.save_pretrained(out_dir)
    sampled = f", sampled {feed.used:,}" if feed.sample_from is not None else ""
    say(
        f"tokenizer: read {feed.read:,} lines{sampled} from {len(files)} file(s) (lang {lang}), "
        f"vocabulary {tokenizer.vocab_size:,} pieces, wrote {Path(out_dir)}"
    )
    return tokenizer


def _unigram_model(feed: _TrainingLines, vocab_size: int, lang: str, char_vocab: bool) -> bytes:
    """The serialized SentencePiece unigram model trained on the lines of `feed`, ALBERT's special pieces first."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(feed),
            model_writer=model,
            minloglevel=1,  # warnings only, no per-step log
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=not char_vocab,
            max_sentencepiece_length=1 if char_vocab else 16,
            character_coverage=0.9995 if lang == "zh" else 1.0,
            split_digits=lang == "zh",
            normalization_rule_name="nmt_nfkc",
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece=PAD,
            unk_piece=UNK,
            control_symbols=[CLS, SEP, MASK],
            max_sentence_length=4 * _MAX_TRAIN_CHARS,
            num_threads=os.cpu_count() or 1,
        )
    except RuntimeError as err:
        if feed.error is not None:
            raise feed.error from None
        raise _training_error(str(err), vocab_size, feed.used) from None
    return model.getvalue()


def _count_lines_to_sample(files: list[Path], split: str | None, max_sentences: int) -> int | None:
    """The number of non-blank lines when there are more than `max_sentences`, else None (no sampling)."""
    # Each non-blank line takes at least two bytes, so small plain files need no counting pass.
    if (
        all(path.suffix != ".gz" and not is_columnar(path) for path in files)
        and sum(path.stat().st_size for path in files) < 2 * max_sentences
    ):
        return None
    lines = sum(
        1
        for _, _, line in progress_bar(iter_text_lines(files, split), desc="counting lines", unit=" lines", mininterval=1.0)
        if line.strip()
    )
    return lines if lines > max_sentences else None


class _TrainingLines:
    """The normalized non-blank lines (or a seeded sample of them) for sentencepiece, with counts and any error."""

    def __init__(self, files: list[Path], split: str | None, normalize: Callable[[str], str], max_sentences: int,
                 seed: int):
        self.files, self.split, self.normalize = files, split, normalize
        self.sample_from = _count_lines_to_sample(files, split, max_sentences)
        self.max_sentences, self.seed = max_sentences, seed
        self.read = self.used = 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        # sentencepiece turns an exception inside its iterator into a RuntimeError; keep the original to re-raise.
        rng = random.Random(self.seed)
        still_needed = self.max_sentences
        try:
            for _, _, line in progress_bar(
                iter_text_lines(self.files, self.split), desc="reading text", unit=" lines", mininterval=1.0
            ):
                if not line.strip():
                    continue
                self.read += 1
                if self.sample_from is not None:
                    # Selection sampling (Knuth's algorithm S): exactly max_sentences lines, uniform, O(1) memory.
                    if rng.random() * (self.sample_from - self.read + 1) >= still_needed:
                        continue
                    still_needed -= 1
                text = self.normalize(line)
                if text:
                    self.used += 1
                    for start in range(0, len(text), _MAX_TRAIN_CHARS):
                        yield text[start : start + _MAX_TRAIN_CHARS]
        except BaseException as err:
            self.error = err
            raise


def _training_error(message: str, vocab_size: int, lines: int) -> Exception:
    """Turn sentencepiece's trainer errors into UserErrors that say what to change."""
    if lines == 0:
        return UserError("the input has no text (every line is blank): nothing to train on")
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        return UserError(
            f"--vocab-size {vocab_size} is too large for this corpus, which supports at most "
            f"{too_high.group(2)} pieces: use a smaller --vocab-size or more text"
        )
    too_low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        return UserError(
            f"--vocab-size {vocab_size} is smaller than the {too_low.group(2)} characters this corpus "
            "needs: use a larger --vocab-size"
        )
    return RuntimeError(message)


def _detect_lang(lines: Callable[[], Iterator[tuple[Path, int, str]]]) -> str:
    """ "zh" when CJK ideographs are at least 10% of the letters in the first `lines`, else "en"."""
    cjk = letters = seen = 0
    for _, _, line in lines():
        cjk += len(CJK_IDEOGRAPH.findall(line))
        letters += len(_LETTER.findall(line))
        seen += bool(line.strip())
        if seen >= _LANG_SAMPLE_LINES:
            break
    return "zh" if cjk >= 0.1 * max(letters, 1) else "en"

