"""ALBERT pretraining data: raw text -> token shards (`prepare_pretraining_data`), shards -> batches (`PretrainingData`).

Examples follow google-research/albert `create_pretraining_data.py`: per chunk of contiguous sentences of one
document, a target length (max_seq_length - 3, or with probability `short_seq_prob` a random one in
[2, max_seq_length - 3]), segments A and B split at a random sentence, swapped in half the pairs for sentence-order
prediction (label 1 = swapped), and longest-first truncation that cuts from the front or back at random.
Two choices differ from the reference: the target length is drawn per chunk rather than per document (so about
`short_seq_prob` of the examples have a short target), and a chunk of a single sentence is split at a random
token instead of taking B from another document (so A and B always come from the same document and the SOP
label always means "swapped"). Masking is ALBERT's n-gram masking of whole words, drawn afresh every epoch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import math
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from albertkit.data.corpus import CorpusStats, RawDocument, check_lang, read_raw_documents, split_document
from albertkit.data.shards import (
    SPLITS,
    TokenizedDocuments,
    TokenShards,
    TokenShardWriter,
    atomic_output_folder,
    token_dtype,
    write_index,
)
from albertkit.data.textfiles import resolve_text_files
from albertkit.errors import UserError

IGNORE_INDEX = -100
MAX_SEQ_LENGTH = 512
MIN_SEQ_LENGTH = 5  # [CLS] a [SEP] b [SEP]
# Documents go to the tokenizing workers in chunks of about this many characters.
CHUNK_CHARS = 1 << 18
_EXAMPLES_STREAM, _MASK_STREAM = 0, 1


# ---------------------------------------------------------------------------------------------------------------
# prepare: raw text -> token shards


def prepare_pretraining_data(
    inputs: str | Path | Iterable[str | Path],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    max_seq_length: int = 128,
    lang: str = "auto",
    workers: int | None = None,
    valid_fraction: float = 0.01,
    whole_word_mask: str | None = None,
    seed: int = 0,
    config: str | Path | None = None,
) -> dict[str, Any]:
    """Tokenize a corpus into train and valid token shards in `out_dir` and return (and print) a summary.

    Documents are split into sentences (English or Chinese rules, `lang="auto"` decides per document), tokenized
    in `workers` processes (default: all cores) and written in order; every document goes to the valid split with
    probability `valid_fraction` (at least one when there are two or more). `whole_word_mask="zh"` marks word
    starts in Chinese documents by jieba segmentation instead of one word per character. `config` (a model
    folder; by default `tokenizer_dir` when it holds a config.json) bounds `max_seq_length` by the model's
    positions. The tokenizer is copied to `out_dir/tokenizer`.
    """
    from albertkit.tokenizer import load_tokenizer

    started = time.perf_counter()
    check_lang(lang)
    _check_seq_length(max_seq_length, tokenizer_dir, config)
    if whole_word_mask not in (None, "zh"):
        raise UserError(f"whole_word_mask must be None or 'zh', not {whole_word_mask!r}")
    if whole_word_mask == "zh" and importlib.util.find_spec("jieba") is None:
        raise UserError("whole-word masking for Chinese needs jieba: pip install jieba")
    if not 0 <= valid_fraction < 1:
        raise UserError(f"valid_fraction must be in [0, 1), not {valid_fraction}")
    files = resolve_text_files(inputs)
    if not files:
        raise UserError("no input files given")
    tokenizer = load_tokenizer(tokenizer_dir)
    workers = workers or os.cpu_count() or 1
    stats = CorpusStats()
    chunks = _document_chunks(read_raw_documents(files, stats))
    with atomic_output_folder(out_dir) as tmp:
        writers = {split: TokenShardWriter(tmp / split, tokenizer.vocab_size) for split in SPLITS}
        tokenized = _tokenize_chunks(chunks, tokenizer_dir, lang, whole_word_mask, workers)
        languages = _write_splits(tokenized, writers, valid_fraction, np.random.default_rng([seed, 2]))
        splits = {split: writer.close() for split, writer in writers.items()}
        if splits["train"]["tokens"] == 0:
            raise UserError(
                "no text to prepare: every line is blank or skipped", files[0] if len(files) == 1 else None
            )
        tokenizer.save_pretrained(tmp / "tokenizer")
        index = {
            "vocab_size": tokenizer.vocab_size,
            "token_dtype": token_dtype(tokenizer.vocab_size).name,
            "special_token_ids": {
                "pad": tokenizer.pad_token_id,
                "unk": tokenizer.unk_token_id,
                "cls": tokenizer.cls_token_id,
                "sep": tokenizer.sep_token_id,
                "mask": tokenizer.mask_token_id,
            },
            "tokenizer": {
                "path": str(tokenizer_dir),
                "file": tokenizer.vocab_file,
                "sha256": hashlib.sha256((Path(tokenizer_dir) / tokenizer.vocab_file).read_bytes()).hexdigest(),
                "do_lower_case": tokenizer.do_lower_case,
                "keep_accents": tokenizer.keep_accents,
            },
            "max_seq_length": max_seq_length,
            "lang": lang,
            "documents_by_language": dict(sorted(languages.items())),
            "whole_word_mask": whole_word_mask,
            "valid_fraction": valid_fraction,
            "seed": seed,
            "inputs": [
                {"path": str(f), "bytes": f.stat().st_size, "skipped_lines": dict(stats.skipped.get(str(f), {}))}
                for f in files
            ],
            "skipped_lines": stats.skipped_by_reason(),
            "splits": splits,
        }
        write_index(tmp, index)
    summary = {
        "documents": sum(s["documents"] for s in splits.values()),
        "sentences": sum(s["sentences"] for s in splits.values()),
        "tokens": sum(s["tokens"] for s in splits.values()),
        "splits": {
            split: {k: s[k] for k in ("documents", "sentences", "tokens")} for split, s in splits.items()
        },
        "documents_by_language": index["documents_by_language"],
        "skipped_lines": index["skipped_lines"],
        "seconds": round(time.perf_counter() - started, 2),
        "out_dir": str(out_dir),
    }
    print(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The prepare summary as a few human-readable lines."""
    train, valid = summary["splits"]["train"], summary["splits"]["valid"]
    skipped = ", ".join(f"{reason} {count:,}" for reason, count in summary["skipped_lines"].items()) or "none"
    languages = ", ".join(f"{lang} {count:,}" for lang, count in summary["documents_by_language"].items())
    return (
        f"prepared {summary['documents']:,} documents ({languages}), {summary['sentences']:,} sentences, "
        f"{summary['tokens']:,} tokens in {summary['seconds']:.1f}s\n"
        f"  train: {train['documents']:,} documents, {train['tokens']:,} tokens; "
        f"valid: {valid['documents']:,} documents, {valid['tokens']:,} tokens\n"
        f"  lines skipped: {skipped}\n"
        f"  wrote {summary['out_dir']}"
    )


def _write_splits(
    tokenized: Iterator[tuple[TokenizedDocuments, Counter]],
    writers: dict[str, TokenShardWriter],
    valid_fraction: float,
    rng: np.random.Generator,
) -> Counter:
    """Send each document to valid with probability `valid_fraction`, else to train; count them by language.

    The latest document is held back, so that it can go to valid at the end if no other did (with two or more)."""
    languages: Counter = Counter()
    held: TokenizedDocuments | None = None
    with tqdm(desc="tokenizing", unit=" docs", mininterval=1.0) as progress:
        for documents, chunk_languages in tokenized:
            languages.update(chunk_languages)
            progress.update(documents.num_documents)
            if documents.num_documents == 0:
                continue
            if held is not None:
                writers["train"].append(held)
            to_valid = rng.random(documents.num_documents) < valid_fraction
            last = np.arange(documents.num_documents) == documents.num_documents - 1
            writers["valid"].append(documents.select(to_valid))
            writers["train"].append(documents.select(~to_valid & ~last))
            held = None if to_valid[-1] else documents.select(last)
    if held is not None:
        wants_valid = valid_fraction > 0 and writers["valid"].num_documents == 0 and writers["train"].num_documents
        writers["valid" if wants_valid else "train"].append(held)
    return languages


def _check_seq_length(max_seq_length: int, tokenizer_dir: str | Path, config: str | Path | None) -> None:
    from albertkit.config import CONFIG_NAME, AlbertConfig

    if not MIN_SEQ_LENGTH <= max_seq_length <= MAX_SEQ_LENGTH:
        raise UserError(
            f"max_seq_length must be between {MIN_SEQ_LENGTH} and {MAX_SEQ_LENGTH}, not {max_seq_length}"
        )
    if config is None and (Path(tokenizer_dir) / CONFIG_NAME).is_file():
        config = tokenizer_dir
    if config is not None:
        positions = AlbertConfig.from_pretrained(config).max_position_embeddings
        if max_seq_length > positions:
            raise UserError(
                f"max_seq_length {max_seq_length} is above the model's max_position_embeddings {positions}",
                config,
            )


def _document_chunks(documents: Iterator[RawDocument]) -> Iterator[list[RawDocument]]:
    """Group documents into lists of about `CHUNK_CHARS` characters."""
    chunk: list[RawDocument] = []
    size = 0
    for document in documents:
        chunk.append(document)
        size += sum(map(len, document.paragraphs))
        if size >= CHUNK_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _tokenize_chunks(
    chunks: Iterator[list[RawDocument]],
    tokenizer_dir: str | Path,
    lang: str,
    whole_word_mask: str | None,
    workers: int,
) -> Iterator[tuple[TokenizedDocuments, Counter]]:
    """Tokenized chunks in input order, from `workers` processes with a bounded number of chunks in flight."""
    if workers <= 1:
        _init_worker(tokenizer_dir, lang, whole_word_mask)
        yield from map(_tokenize_chunk, chunks)
        return
    with get_context().Pool(workers, _init_worker, (tokenizer_dir, lang, whole_word_mask)) as pool:
        # apply_async with a window, not imap: imap would read the whole corpus ahead into memory.
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_tokenize_chunk, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


_worker: dict[str, Any] = {}


def _init_worker(tokenizer_dir: str | Path, lang: str, whole_word_mask: str | None) -> None:
    from albertkit.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    _worker.update(tokenizer=tokenizer, lang=lang, whole_word_mask=whole_word_mask)
    # Text ids of <pad>, [CLS], [SEP], [MASK] (from those strings typed in the text) would fake structure: dropped.
    _worker["dropped_ids"] = np.array(
        [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id]
    )
    if whole_word_mask == "zh":
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()


def _tokenize_chunk(chunk: list[RawDocument]) -> tuple[TokenizedDocuments, Counter]:
    """Split a chunk's documents into sentences and tokenize them; empty sentences and documents are dropped."""
    tokenizer = _worker["tokenizer"]
    documents = [split_document(raw, _worker["lang"]) for raw in chunk]
    sentences = [s for d in documents for s in d.sentences]
    jieba_words = _worker["whole_word_mask"] == "zh"
    # Whole-word masking by jieba needs to know which characters each piece comes from.
    with_spans = tokenizer.encode_with_offsets(sentences) if jieba_words else None
    encoded = [ids for ids, _ in with_spans] if with_spans is not None else tokenizer.encode_batch(sentences)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    word_starts = tokenizer.word_start_mask[ids]
    if with_spans is not None:
        chinese = np.repeat([d.lang == "zh" for d in documents], [len(d.sentences) for d in documents])
        _mark_jieba_word_starts(sentences, [spans for _, spans in with_spans], lengths, word_starts, chinese)
    keep = ~np.isin(ids, _worker["dropped_ids"])
    sentence_of_token = np.repeat(np.arange(len(lengths)), lengths)
    lengths = np.bincount(sentence_of_token[keep], minlength=len(lengths))
    doc_lengths = np.bincount(
        np.repeat(np.arange(len(documents)), [len(d.sentences) for d in documents])[lengths > 0],
        minlength=len(documents),
    )
    tokenized = TokenizedDocuments(
        ids[keep], word_starts[keep].astype(np.uint8), lengths[lengths > 0], doc_lengths[doc_lengths > 0]
    )
    return tokenized, Counter(d.lang for d, n in zip(documents, doc_lengths, strict=True) if n)


def _mark_jieba_word_starts(
    sentences: list[str],
    spans: list[list[tuple[int, int]]],
    lengths: np.ndarray,
    word_starts: np.ndarray,
    chinese: np.ndarray,
) -> None:
    """Set `word_starts` of Chinese sentences in place: a piece starts a word when a jieba word of the sentence
    begins at its first character (`spans`: each piece's characters in its sentence). A piece that spells
    nothing (a lone "▁") keeps its bit."""
    import jieba

    ends = np.cumsum(lengths)
    for i in np.flatnonzero(chinese & (lengths > 0)):
        word_lengths = np.fromiter(map(len, jieba.cut(sentences[i])), dtype=np.int64)
        begins_word = np.zeros(len(sentences[i]) + 1, dtype=bool)
        begins_word[np.cumsum(word_lengths) - word_lengths] = True
        piece_spans = np.array(spans[i], dtype=np.int64).reshape(-1, 2)
        segment = slice(ends[i] - lengths[i], ends[i])
        spells = piece_spans[:, 1] > piece_spans[:, 0]
        word_starts[segment] = np.where(spells, begins_word[piece_spans[:, 0]], word_starts[segment])


# ---------------------------------------------------------------------------------------------------------------
# examples: token shards -> sentence-order pairs


def build_sop_examples(
    sentence_offsets: np.ndarray,
    document_offsets: np.ndarray,
    max_seq_length: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One pass of ALBERT's example construction over a split; returns an (n, 5) int64 array of
    (a_start, a_length, b_start, b_length, sentence_order_label), token ranges into the split's tokens."""
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    num_sentences = len(offsets) - 1
    if num_sentences == 0:
        return np.zeros((0, 5), dtype=np.int64)
    max_tokens = max_seq_length - 3
    doc_offsets = np.asarray(document_offsets, dtype=np.int64)
    document_end = np.repeat(doc_offsets[1:], np.diff(doc_offsets))
    # The target a chunk would have if it started at each sentence (each chunk starts at a different sentence).
    short = rng.random(num_sentences) < short_seq_prob
    targets = np.where(short, rng.integers(2, max_tokens + 1, num_sentences), max_tokens)
    # A chunk takes sentences until it reaches its target or the document ends.
    chunk_end = np.minimum(np.searchsorted(offsets, offsets[:-1] + targets, side="left"), document_end)
    starts = _chunk_starts(chunk_end.tolist())
    ends = chunk_end[starts]
    first, stop = offsets[starts], offsets[ends]
    n_sentences = ends - starts
    # A sentences [start, split) and B the rest: split at a random sentence, or inside a lone sentence.
    u = rng.random(len(starts))
    split_sentence = starts + 1 + np.floor(u * (n_sentences - 1)).astype(np.int64)
    split = np.where(
        n_sentences >= 2,
        offsets[split_sentence],
        first + 1 + np.floor(u * (stop - first - 1)).astype(np.int64),
    )
    usable = (n_sentences >= 2) | (stop - first >= 2)
    first, split, stop = first[usable], split[usable], stop[usable]
    swapped = rng.random(len(first)) < 0.5
    a_start, a_len = np.where(swapped, split, first), np.where(swapped, stop - split, split - first)
    b_start, b_len = np.where(swapped, first, split), np.where(swapped, split - first, stop - split)
    new_a, new_b = _truncated_lengths(a_len, b_len, max_tokens)
    # Each removed token came off the front or the back with probability 1/2, as in the reference.
    a_start = a_start + rng.binomial(a_len - new_a, 0.5)
    b_start = b_start + rng.binomial(b_len - new_b, 0.5)
    return np.stack([a_start, new_a, b_start, new_b, swapped.astype(np.int64)], axis=1)


def _chunk_starts(chunk_end: list[int]) -> np.ndarray:
    """Sentences where chunks start: 0, then each chunk's end (a cheap walk over chunks, not tokens)."""
    starts, sentence, total = [], 0, len(chunk_end)
    while sentence < total:
        starts.append(sentence)
        sentence = chunk_end[sentence]
    return np.array(starts, dtype=np.int64)


def _truncated_lengths(
    a_len: np.ndarray, b_len: np.ndarray, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths after the reference's truncate_seq_pair: remove from the longer side (B on ties) until they fit."""
    excess = np.maximum(a_len + b_len - max_tokens, 0)
    # First the longer side shrinks to the shorter one's length, then both shrink in turns, B first.
    head = np.minimum(excess, np.abs(a_len - b_len))
    even = excess - head
    a_cut = np.where(a_len > b_len, head, 0) + even // 2
    b_cut = np.where(a_len < b_len, head, 0) + (even + 1) // 2
    return a_len - a_cut, b_len - b_cut


# ---------------------------------------------------------------------------------------------------------------
# masking: ALBERT's n-gram masking of whole words, vectorized over a batch


def assemble_pairs(
    examples: np.ndarray,
    token_ids: np.ndarray,
    word_starts: np.ndarray,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> dict[str, np.ndarray]:
    """[CLS] A [SEP] B [SEP] rows for (a_start, a_length, b_start, b_length, ...) examples, right-padded.

    Returns int64 `input_ids`, `token_type_ids`, `attention_mask` and bool `word_starts` (special tokens and the
    first token of each segment count as word starts) and `maskable` (the text tokens)."""
    a_start, a_len, b_start, b_len = (examples[:, i, None] for i in range(4))
    length = a_len + b_len + 3
    pos = np.arange(int(length.max()))[None, :]
    b_first = a_len + 2
    in_a = (pos >= 1) & (pos <= a_len)
    in_b = (pos >= b_first) & (pos < length - 1)
    text = in_a | in_b
    source = np.where(text, np.where(in_a, a_start + pos - 1, b_start + pos - b_first), 0)
    input_ids = np.where(text, np.asarray(token_ids[source], dtype=np.int64), pad_id)
    input_ids[:, 0] = cls_id
    input_ids[pos == a_len + 1] = sep_id
    input_ids[pos == length - 1] = sep_id
    starts = np.where(text, np.asarray(word_starts[source], dtype=bool), True) | (pos == 1) | (pos == b_first)
    return {
        "input_ids": input_ids,
        "token_type_ids": ((pos >= b_first) & (pos < length)).astype(np.int64),
        "attention_mask": (pos < length).astype(np.int64),
        "word_starts": starts,
        "maskable": text,
    }


def mask_ngrams(
    input_ids: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray, rng: np.random.Generator, *,
    mask_token_id: int, replacement_ids: np.ndarray, masked_lm_prob: float = 0.15,
    max_predictions_per_seq: int = 20, max_ngram: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ALBERT's n-gram masking of whole words for a whole batch at once; returns (input_ids, labels, span_words).

    Each row masks on average `masked_lm_prob` of its maskable tokens (at least one span, at most
    `max_predictions_per_seq` tokens) in spans of 1..max_ngram whole words with p(n) ∝ 1/n; of the masked tokens
    80% become [MASK], 10% a random id of `replacement_ids` and 10% stay. Labels hold the original ids there and
    -100 elsewhere; `span_words` lists the length in words of every masked span.

    How: each row's words are cut into consecutive n-grams of random lengths, the n-grams are put in a random
    order, and those that start (counting the tokens of the n-grams before them in that order) below a threshold
    K are masked. Whether an n-gram is taken does not depend on its own length, so the masked spans keep the
    1/n law exactly (the reference's greedy budget filling favours short spans); K = target - E[S²]/2E[S] (the mean
    overshoot of the last span, over the row's n-gram sizes S in tokens) makes the expected count the target.
    The cap trims the last span by whole words.
    """
    batch, width = input_ids.shape
    rows = np.arange(batch)[:, None]
    starts = word_starts & maskable
    word_of_token = np.maximum(np.cumsum(starts, axis=1) - 1, 0)
    num_words = starts.sum(1)
    max_words = max(int(num_words.max()), 1)
    real_word = np.arange(max_words) < num_words[:, None]
    word_tokens = np.bincount((rows * max_words + word_of_token)[maskable], minlength=batch * max_words)
    word_tokens = word_tokens.reshape(batch, max_words)
    # Cut each row's words into n-grams; n-gram t covers words first_word[t] .. first_word[t + 1] - 1.
    p = 1.0 / np.arange(1, max_ngram + 1)
    ngram = 1 + np.searchsorted(np.cumsum(p / p.sum())[:-1], rng.random((batch, max_words)), side="right")
    first_word = np.cumsum(ngram, axis=1) - ngram
    real_span = first_word < num_words[:, None]
    span_starts = np.zeros((batch, max_words), dtype=bool)
    span_starts[np.nonzero(real_span)[0], first_word[real_span]] = True
    span_of_word = np.maximum(np.cumsum(span_starts, axis=1) - 1, 0)
    span_tokens = np.bincount(
        (rows * max_words + span_of_word)[real_word], weights=word_tokens[real_word], minlength=batch * max_words
    ).reshape(batch, max_words)
    # Random order; an n-gram's start is the number of tokens of the n-grams before it in that order.
    order = np.argsort(rng.random((batch, max_words)) + ~real_span, axis=1)
    sorted_tokens = np.take_along_axis(span_tokens, order, axis=1)
    span_begin = np.empty_like(sorted_tokens)
    np.put_along_axis(span_begin, order, np.cumsum(sorted_tokens, axis=1) - sorted_tokens, axis=1)
    target = np.minimum(masked_lm_prob * maskable.sum(1), max_predictions_per_seq)
    threshold = target - (span_tokens**2).sum(1) / (2 * span_tokens.sum(1))
    # At least the first n-gram in the order (begin 0), as the reference masks at least one token.
    taken = real_span & (span_begin < np.maximum(threshold, 0.5)[:, None])
    # A word stays masked while its n-gram's begin plus its tokens so far in that n-gram fit the cap.
    cumulative = np.cumsum(word_tokens, axis=1)
    before_span = np.take_along_axis(cumulative - word_tokens, np.minimum(first_word, max_words - 1), axis=1)
    tokens_so_far = cumulative - np.take_along_axis(before_span, span_of_word, axis=1)
    masked_word = real_word & np.take_along_axis(taken, span_of_word, axis=1) & (
        np.take_along_axis(span_begin, span_of_word, axis=1) + tokens_so_far <= max_predictions_per_seq
    )
    masked = maskable & np.take_along_axis(masked_word, word_of_token, axis=1)
    span_words = np.bincount((rows * max_words + span_of_word)[masked_word], minlength=batch * max_words)
    labels = np.where(masked, input_ids, IGNORE_INDEX)
    action = rng.random((batch, width))
    random_ids = replacement_ids[rng.integers(0, len(replacement_ids), (batch, width))]
    output = np.where(masked & (action < 0.8), mask_token_id, input_ids)
    output = np.where(masked & (action >= 0.8) & (action < 0.9), random_ids, output)
    return output, labels, span_words[span_words > 0]


# ---------------------------------------------------------------------------------------------------------------
# the dataset the training loop reads


class PretrainingData:
    """Batches of MLM + SOP examples from one split of a prepared data folder.

    Each epoch builds its own examples (target lengths, split points, swaps) and order from (seed, epoch);
    each global batch is masked as a whole from (seed, epoch, index), so a rank's rows do not depend on the
    world size, and the same arguments always give the same tensors.
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "train",
        *,
        max_seq_length: int | None = None,
        short_seq_prob: float = 0.1,
        masked_lm_prob: float = 0.15,
        max_predictions_per_seq: int | None = None,
        max_ngram: int = 3,
        seed: int = 0,
    ):
        self.shards = TokenShards(data_dir, split)
        index = self.shards.index
        self.max_seq_length = max_seq_length or int(index["max_seq_length"])
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise UserError(f"max_seq_length must be at least {MIN_SEQ_LENGTH}, not {self.max_seq_length}")
        if not 0 < masked_lm_prob < 1 or not 0 <= short_seq_prob <= 1 or max_ngram < 1:
            raise UserError(
                "masked_lm_prob must be in (0, 1), short_seq_prob in [0, 1] and max_ngram at least 1"
            )
        self.short_seq_prob = short_seq_prob
        self.masked_lm_prob = masked_lm_prob
        # ALBERT's 20 predictions at length 128 and 77 at 512.
        self.max_predictions_per_seq = max_predictions_per_seq or math.ceil(
            masked_lm_prob * self.max_seq_length
        )
        self.max_ngram = max_ngram
        self.seed = seed
        self.vocab_size = int(index["vocab_size"])
        special = index["special_token_ids"]
        self.pad_token_id, self.unk_token_id = special["pad"], special["unk"]
        self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            special["cls"],
            special["sep"],
            special["mask"],
        )
        self.replacement_ids = np.setdiff1d(np.arange(self.vocab_size), list(special.values()))
        self._epoch: tuple[int, np.ndarray] | None = None

    def examples(self, epoch: int) -> np.ndarray:
        """The epoch's examples in training order, (n, 5): a_start, a_length, b_start, b_length, label."""
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, _EXAMPLES_STREAM, epoch])
            examples = build_sop_examples(
                self.shards.sentence_offsets,
                self.shards.document_offsets,
                self.max_seq_length,
                self.short_seq_prob,
                rng,
            )
            self._epoch = (epoch, examples[rng.permutation(len(examples))])
        return self._epoch[1]

    def num_examples(self, epoch: int) -> int:
        return len(self.examples(epoch))

    def num_batches(self, global_batch_size: int, epoch: int) -> int:
        """Full global batches in the epoch (the last partial one is dropped)."""
        return self.num_examples(epoch) // global_batch_size

    def masked_pairs(
        self, examples: np.ndarray, rng: np.random.Generator, max_predictions_per_seq: int | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """Examples assembled into rows and n-gram masked: (pairs, masked input_ids, labels, span_words)."""
        pairs = assemble_pairs(
            examples,
            self.shards.token_ids,
            self.shards.word_starts,
            cls_id=self.cls_token_id,
            sep_id=self.sep_token_id,
            pad_id=self.pad_token_id,
        )
        masked_ids, labels, span_words = mask_ngrams(
            pairs["input_ids"],
            pairs["maskable"],
            pairs["word_starts"],
            rng,
            mask_token_id=self.mask_token_id,
            replacement_ids=self.replacement_ids,
            masked_lm_prob=self.masked_lm_prob,
            max_predictions_per_seq=max_predictions_per_seq or self.max_predictions_per_seq,
            max_ngram=self.max_ngram,
        )
        return pairs, masked_ids, labels, span_words

    def batch(
        self, global_batch_size: int, epoch: int, index: int, rank: int = 0, world_size: int = 1
    ) -> dict[str, Any]:
        """Rows [rank*B/world_size, (rank+1)*B/world_size) of global batch `index`, padded to their longest row."""
        import torch

        if global_batch_size % world_size:
            raise UserError(
                f"the batch size {global_batch_size} is not a multiple of the {world_size} processes"
            )
        if not 0 <= index < self.num_batches(global_batch_size, epoch):
            raise IndexError(
                f"batch {index} of epoch {epoch}: there are {self.num_batches(global_batch_size, epoch)}"
            )
        examples = self.examples(epoch)[index * global_batch_size : (index + 1) * global_batch_size]
        pairs, input_ids, labels, _ = self.masked_pairs(
            examples, np.random.default_rng([self.seed, _MASK_STREAM, epoch, index])
        )
        share = global_batch_size // world_size
        rows = slice(rank * share, (rank + 1) * share)
        width = int(pairs["attention_mask"][rows].sum(1).max())
        columns = {
            "input_ids": input_ids,
            "attention_mask": pairs["attention_mask"],
            "token_type_ids": pairs["token_type_ids"],
            "labels": labels,
        }
        out = {
            name: torch.from_numpy(np.ascontiguousarray(array[rows, :width]))
            for name, array in columns.items()
        }
        out["sentence_order_label"] = torch.from_numpy(np.ascontiguousarray(examples[rows, 4]))
        return out
