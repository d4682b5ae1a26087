"""`albertkit pretrain prepare`: raw text -> sentences -> token shards, tokenized in worker processes."""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.data.corpus import CorpusStats, RawDocument, check_lang, read_raw_documents, split_document
from albertkit.data.shards import (
    INDEX_NAME,
    SPLITS,
    TokenizedDocuments,
    TokenShardWriter,
    token_dtype,
    write_index,
)
from albertkit.data.sop import MAX_SEQ_LENGTH, MIN_SEQ_LENGTH
from albertkit.errors import UserError
from albertkit.io.atomic import atomic_folder, file_sha256
from albertkit.io.text import input_bytes, resolve_text_files
from albertkit.modeling.config import CONFIG_NAME, AlbertConfig
from albertkit.runtime.console import progress_bar, say
from albertkit.tokenization.loading import load_tokenizer

# Documents go to the tokenizing workers in chunks of about this many characters.
CHUNK_CHARS = 1 << 18


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
    num_shards: int = 1,
    shard_index: int = 0,
    split: str | None = None,
) -> dict[str, Any]:
    """Tokenize a corpus into train and valid token shards in `out_dir` and return (and print) a summary.

    Documents are split into sentences (English or Chinese rules, `lang="auto"` decides per document), tokenized
    in `workers` processes (default: all cores) and written in order; every document goes to the valid split with
    probability `valid_fraction` (at least one when there are two or more). `whole_word_mask="zh"` marks word
    starts in Chinese documents by jieba segmentation instead of one word per character. `config` (a model
    folder; by default `tokenizer_dir` when it holds a config.json) bounds `max_seq_length` by the model's
    positions. The tokenizer is copied to `out_dir/tokenizer`. Parquet, Arrow and datasets inputs (`split`: the
    split of a DatasetDict folder) give one document per row of their "text" column, streamed batch by batch
    through the workers.

    `num_shards`/`shard_index`: prepare only slice `shard_index` of `num_shards` (every num_shards-th chunk of
    about CHUNK_CHARS characters of documents), so that several machines each prepare a slice of one corpus;
    `pretrain run --data` reads the slices' folders as one.
    """
    started = time.perf_counter()
    _check_options(max_seq_length, tokenizer_dir, config, lang, whole_word_mask, valid_fraction)
    _check_slice(num_shards, shard_index)
    files = resolve_text_files(inputs)
    if not files:
        raise UserError("no input files given")
    tokenizer = load_tokenizer(tokenizer_dir)
    stats = CorpusStats()
    chunks = _document_chunks(read_raw_documents(files, stats, split))
    if num_shards > 1:  # every machine reads the corpus (cheap) and tokenizes only its chunks (the work)
        chunks = itertools.islice(chunks, shard_index, None, num_shards)
    with atomic_folder(out_dir, INDEX_NAME, "prepared data") as tmp:
        writers = {split: TokenShardWriter(tmp / split, tokenizer.vocab_size) for split in SPLITS}
        tokenized = _tokenize_chunks(chunks, tokenizer_dir, lang, whole_word_mask, workers or os.cpu_count() or 1)
        valid_rng = np.random.default_rng([seed, 2] if num_shards == 1 else [seed, 2, shard_index])
        languages = _write_splits(tokenized, writers, valid_fraction, valid_rng)
        splits = {split: writer.close() for split, writer in writers.items()}
        if splits["train"]["tokens"] == 0 and num_shards > 1:
            raise UserError(f"slice {shard_index} of {num_shards} holds no text: the corpus has fewer than "
                            f"{num_shards} chunks of {CHUNK_CHARS:,} characters; use fewer shards")
        if splits["train"]["tokens"] == 0:
            raise UserError(
                "no text to prepare: every line is blank or skipped", files[0] if len(files) == 1 else None
            )
        tokenizer.save_pretrained(tmp / "tokenizer")
        index = {
            **_tokenizer_entries(tokenizer, tokenizer_dir),
            "max_seq_length": max_seq_length, "lang": lang, "documents_by_language": dict(sorted(languages.items())),
            "whole_word_mask": whole_word_mask, "valid_fraction": valid_fraction, "seed": seed,
            **({"shard": {"index": shard_index, "count": num_shards}} if num_shards > 1 else {}),
            "inputs": _input_entries(files, stats), "skipped_lines": stats.skipped_by_reason(), "splits": splits,
        }
        write_index(tmp, index)
    summary = _summary(index, out_dir, time.perf_counter() - started)
    say(format_summary(summary))
    return summary


def _check_slice(num_shards: int, shard_index: int) -> None:
    if num_shards < 1:
        raise UserError(f"num_shards must be at least 1, not {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise UserError(f"shard index must be in 0 .. {num_shards - 1} for {num_shards} shard(s), not {shard_index}")


def _input_entries(files: list[Path], stats: CorpusStats) -> list[dict[str, Any]]:
    return [{"path": str(f), "bytes": input_bytes(f), "skipped_lines": dict(stats.skipped.get(str(f), {}))}
            for f in files]


def _check_options(max_seq_length: int, tokenizer_dir: str | Path, config: str | Path | None, lang: str,
                   whole_word_mask: str | None, valid_fraction: float) -> None:
    check_lang(lang)
    _check_seq_length(max_seq_length, tokenizer_dir, config)
    if whole_word_mask not in (None, "zh"):
        raise UserError(f"whole_word_mask must be None or 'zh', not {whole_word_mask!r}")
    if whole_word_mask == "zh" and importlib.util.find_spec("jieba") is None:
        raise UserError("whole-word masking for Chinese needs jieba: pip install jieba")
    if not 0 <= valid_fraction < 1:
        raise UserError(f"valid_fraction must be in [0, 1), not {valid_fraction}")


def _tokenizer_entries(tokenizer: Any, tokenizer_dir: str | Path) -> dict[str, Any]:
    """What index.json records of the tokenizer: vocabulary size, token dtype, special ids, the file's digest."""
    special = ("pad", "unk", "cls", "sep", "mask")
    return {
        "vocab_size": tokenizer.vocab_size,
        "token_dtype": token_dtype(tokenizer.vocab_size).name,
        "special_token_ids": {name: getattr(tokenizer, f"{name}_token_id") for name in special},
        "tokenizer": {
            "path": str(tokenizer_dir),
            "file": tokenizer.vocab_file,
            "sha256": file_sha256(Path(tokenizer_dir) / tokenizer.vocab_file).hexdigest(),
            "do_lower_case": tokenizer.do_lower_case,
            "keep_accents": tokenizer.keep_accents,
        },
    }


def _summary(index: dict[str, Any], out_dir: str | Path, seconds: float) -> dict[str, Any]:
    splits = index["splits"]
    return {
        "documents": sum(s["documents"] for s in splits.values()),
        "sentences": sum(s["sentences"] for s in splits.values()),
        "tokens": sum(s["tokens"] for s in splits.values()),
        "splits": {
            split: {k: s[k] for k in ("documents", "sentences", "tokens")} for split, s in splits.items()
        },
        "documents_by_language": index["documents_by_language"],
        "skipped_lines": index["skipped_lines"],
        "seconds": round(seconds, 2),
        "out_dir": str(out_dir),
    }


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
    with progress_bar(desc="tokenizing", unit=" docs", mininterval=1.0) as progress:
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

