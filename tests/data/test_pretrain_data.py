"""Pretraining data: prepare (raw text -> shards), SOP examples, n-gram masking statistics, batches, CLI."""

import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from albertkit.cli import main
from albertkit.data import prepare, sop
from albertkit.data.corpus import read_documents
from albertkit.data.prepare import prepare_pretraining_data
from albertkit.data.pretraining import PretrainingData
from albertkit.data.shards import INDEX_NAME, TokenizedDocuments, TokenShards, TokenShardWriter, write_index
from albertkit.data.sop import build_sop_examples
from albertkit.errors import UserError
from albertkit.modeling.model import IGNORE_INDEX
from albertkit.tokenization.sentencepiece import AlbertTokenizer
from albertkit.tokenization.training import train_tokenizer

WIKI = SHARED_DATA / "en" / "wiki" / "wiki.valid.tokens"
SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def _synthetic_english(path: Path, documents: int = 200, seed: int = 0) -> Path:
    """Documents of paragraphs of capitalized sentences over a small made-up vocabulary, blank lines between."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnoprstuvw") for _ in range(rng.randint(2, 6))) for _ in range(4000)
    ]
    docs = []
    for _ in range(documents):
        paragraphs = []
        for _ in range(rng.randint(3, 8)):
            sentences = [
                " ".join(rng.choices(words, k=rng.randint(4, 25))).capitalize() + "." for _ in range(6)
            ]
            paragraphs.append(" ".join(sentences))
        docs.append("\n".join(paragraphs))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Real English text (WikiText-103 validation) when the shared data is there, else a synthetic corpus."""
    return WIKI if WIKI.is_file() else _synthetic_english(tmp_path_factory.mktemp("corpus") / "synthetic.txt")


@pytest.fixture(scope="module")
def tokenizer_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer([corpus], out, vocab_size=2000, max_sentences=20000)
    return out


@pytest.fixture(scope="module")
def prepared(corpus, tokenizer_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("prepared") / "data"
    summary = prepare_pretraining_data([corpus], tokenizer_dir, out, workers=2, valid_fraction=0.05)
    return out, summary


def _write_prepared(
    folder: Path, sentence_lengths, document_lengths, token_ids=None, max_seq_length=128
) -> Path:
    """A prepared folder written directly; by default token i of sentence s has id 5 + s (ids encode positions)."""
    sentence_lengths = np.asarray(sentence_lengths)
    if token_ids is None:
        token_ids = 5 + np.repeat(np.arange(len(sentence_lengths)), sentence_lengths)
    vocab_size = int(token_ids.max()) + 1
    writer = TokenShardWriter(folder / "train", vocab_size)
    writer.append(
        TokenizedDocuments(
            token_ids, np.ones(len(token_ids), dtype=np.uint8), sentence_lengths, np.asarray(document_lengths)
        )
    )
    write_index(
        folder,
        {
            "vocab_size": vocab_size,
            "max_seq_length": max_seq_length,
            "special_token_ids": SPECIAL,
            "splits": {"train": writer.close()},
        },
    )
    return folder


# --- prepare ----------------------------------------------------------------------------------------------------


def test_prepare_writes_shards_index_and_summary(prepared, corpus, tokenizer_dir, capsys):
    out, summary = prepared
    index = json.loads((out / INDEX_NAME).read_text())
    train, valid = TokenShards(out, "train"), TokenShards(out, "valid")
    documents = list(read_documents(corpus))
    assert summary["documents"] == len(documents) == train.num_documents + valid.num_documents
    assert valid.num_documents >= 1
    assert (
        summary["tokens"]
        == train.num_tokens + valid.num_tokens
        == index["splits"]["train"]["tokens"] + index["splits"]["valid"]["tokens"]
    )
    assert index["format_version"] == 1 and index["max_seq_length"] == 128 and index["vocab_size"] == 2000
    assert index["token_dtype"] == "uint16" and train.token_ids.dtype == np.uint16
    assert index["tokenizer"]["file"] == "spiece.model"
    assert index["tokenizer"]["sha256"] == hashlib.sha256((tokenizer_dir / "spiece.model").read_bytes()).hexdigest()
    assert index["inputs"] == [
        {
            "path": str(corpus),
            "bytes": corpus.stat().st_size,
            "skipped_lines": index["inputs"][0]["skipped_lines"],
        }
    ]
    assert AlbertTokenizer.from_pretrained(out / "tokenizer").vocab_size == 2000
    # The first train document is the first corpus document unless it went to valid: its sentences, encoded.
    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    first = (
        documents[0]
        if valid.document(0)[0].tolist() != tokenizer.encode(documents[0].sentences[0])
        else documents[1]
    )
    assert [s.tolist() for s in train.document(0)] == tokenizer.encode_batch(first.sentences)
    np.testing.assert_array_equal(train.word_starts[:50], tokenizer.word_start_mask[train.token_ids[:50]])


def test_prepare_is_the_same_with_one_or_two_workers(tokenizer_dir, tmp_path, capsys):
    text = _synthetic_english(tmp_path / "small.txt", documents=12, seed=1)
    prepare.CHUNK_CHARS, chunk_chars = (
        2000,
        prepare.CHUNK_CHARS,
    )  # several chunks, so two workers interleave
    try:
        one = prepare_pretraining_data(
            text, tokenizer_dir, tmp_path / "one", workers=1, valid_fraction=0.2, seed=3
        )
        two = prepare_pretraining_data(
            text, tokenizer_dir, tmp_path / "two", workers=2, valid_fraction=0.2, seed=3
        )
    finally:
        prepare.CHUNK_CHARS = chunk_chars
    assert {k: v for k, v in one.items() if k not in ("seconds", "out_dir")} == {
        k: v for k, v in two.items() if k not in ("seconds", "out_dir")
    }
    for split in ("train", "valid"):
        for name in ("tokens.bin", "word_starts.bin", "sentence_offsets.bin", "document_offsets.bin"):
            assert (tmp_path / "one" / split / name).read_bytes() == (
                tmp_path / "two" / split / name
            ).read_bytes()
    printed = capsys.readouterr().out
    assert (
        f"prepared 12 documents (en 12), {one['sentences']:,} sentences, {one['tokens']:,} tokens" in printed
    )
    assert "lines skipped: none" in printed


def test_two_documents_give_one_to_valid(tokenizer_dir, tmp_path, capsys):
    (tmp_path / "two.txt").write_text("First document here. It has two sentences.\n\nSecond document.\n")
    summary = prepare_pretraining_data(tmp_path / "two.txt", tokenizer_dir, tmp_path / "out", workers=1)
    assert summary["splits"]["train"]["documents"] == 1 and summary["splits"]["valid"]["documents"] == 1


def test_interrupted_prepare_leaves_no_index(tokenizer_dir, tmp_path, monkeypatch, capsys):
    text = _synthetic_english(tmp_path / "c.txt", documents=3)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "write_index", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_pretraining_data(text, tokenizer_dir, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_prepare_user_errors(tokenizer_dir, tmp_path):
    text = _synthetic_english(tmp_path / "c.txt", documents=2)
    with pytest.raises(UserError, match="max_seq_length must be between 5 and 512, not 1024"):
        prepare_pretraining_data(text, tokenizer_dir, tmp_path / "out", max_seq_length=1024)
    with pytest.raises(UserError, match="no spiece.model"):
        prepare_pretraining_data(text, tmp_path, tmp_path / "out")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    with pytest.raises(UserError, match="max_seq_length 128 is above the model's max_position_embeddings 64"):
        prepare_pretraining_data(text, tokenizer_dir, tmp_path / "out", config=tmp_path / "model")
    with pytest.raises(UserError, match="no input files"):
        prepare_pretraining_data([], tokenizer_dir, tmp_path / "out")


def test_cli_prepare_empty_file_exits_2_with_one_line(tokenizer_dir, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n \n---\n")
    code = main(
        [
            "pretrain",
            "prepare",
            "--input",
            str(tmp_path / "empty.txt"),
            "--tokenizer",
            str(tokenizer_dir),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        err[-1]
        == f"albertkit: error: {tmp_path / 'empty.txt'}: no text to prepare: every line is blank or skipped"
    )
    assert not (tmp_path / "out").exists()


def test_cli_prepare_prints_summary(tokenizer_dir, tmp_path, capsys):
    text = _synthetic_english(tmp_path / "c.txt", documents=4)
    code = main(
        [
            "pretrain",
            "prepare",
            "--input",
            str(text),
            "--tokenizer",
            str(tokenizer_dir),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
            "--max-seq-length",
            "64",
        ]
    )
    assert code == 0
    assert "prepared 4 documents (en 4)" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / INDEX_NAME).read_text())["max_seq_length"] == 64


def test_chinese_whole_word_starts_come_from_jieba(tmp_path, capsys):
    import jieba

    words = "我 喜欢 自然语言 处理 今天 天气 很 好 我们 去 公园 散步 学习 机器 模型 数据 中文 分词".split()
    rng = random.Random(0)
    lines = ["".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + "。" for _ in range(200)]
    (tmp_path / "zh.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer([tmp_path / "zh.txt"], tmp_path / "tok", vocab_size=200, char_vocab=True)
    sentence = "今天天气很好我们去公园散步。"  # only characters of the tokenizer's corpus: no <unk>
    (tmp_path / "one.txt").write_text(sentence + "\n", encoding="utf-8")
    for mode in (None, "zh"):
        prepare_pretraining_data(
            tmp_path / "one.txt", tmp_path / "tok", tmp_path / f"out-{mode}", workers=1, whole_word_mask=mode
        )
    ids = tokenizer.encode(sentence)
    # "▁" then one piece per character
    assert ids[0] == tokenizer.convert_tokens_to_ids(["▁"])[0] and len(ids) == len(sentence) + 1
    word_first_chars = np.cumsum([0] + [len(w) for w in jieba.cut(sentence)])[:-1]
    expected = np.zeros(len(sentence), dtype=np.uint8)
    expected[word_first_chars] = 1
    zh = TokenShards(tmp_path / "out-zh", "train")
    assert zh.word_starts.tolist() == [1, *expected.tolist()]
    # 今天天气/很/好/我们/去/公园/散步/。
    assert expected.tolist() == [1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 1]
    # Without jieba every ideograph starts a word ("。" is not one).
    assert TokenShards(tmp_path / "out-None", "train").word_starts.tolist() == [1] * len(sentence) + [0]
    # An unknown character (one <unk> piece) no longer costs the sentence its jieba words.
    unknown = "今天鱻天气很好。"
    (tmp_path / "unk.txt").write_text(unknown + "\n", encoding="utf-8")
    prepare_pretraining_data(tmp_path / "unk.txt", tmp_path / "tok", tmp_path / "out-unk", workers=1,
                             whole_word_mask="zh")
    assert tokenizer.unk_token_id in tokenizer.encode(unknown)
    first_chars = np.cumsum([0] + [len(w) for w in jieba.cut(unknown)])[:-1]
    expected = np.zeros(len(unknown), dtype=np.uint8)
    expected[first_chars] = 1
    assert TokenShards(tmp_path / "out-unk", "train").word_starts.tolist() == [1, *expected.tolist()]
    assert expected[:3].tolist() == [1, 0, 1]  # 今天 / 鱻 / ...


# --- examples -----------------------------------------------------------------------------------------------------


def _reference_truncation(a_len: int, b_len: int, max_tokens: int) -> tuple[int, int]:
    """google-research/albert's truncate_seq_pair, lengths only."""
    while a_len + b_len > max_tokens:
        if a_len > b_len:
            a_len -= 1
        else:
            b_len -= 1
    return a_len, b_len


def test_truncation_lengths_match_the_reference():
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 300, 3000), rng.integers(1, 300, 3000)
    new_a, new_b = sop._truncated_lengths(a, b, 125)
    assert list(zip(new_a.tolist(), new_b.tolist(), strict=True)) == [
        _reference_truncation(x, y, 125) for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]


def test_segments_are_contiguous_sentences_of_one_document(tmp_path):
    rng = np.random.default_rng(0)
    doc_lengths = rng.integers(1, 30, 300)
    # Mostly short sentences, some longer than a whole example, some of one token (a lone one cannot be split).
    sentence_lengths = np.where(
        rng.random(doc_lengths.sum()) < 0.05,
        rng.integers(100, 300, doc_lengths.sum()),
        rng.integers(1, 40, doc_lengths.sum()),
    )
    data = PretrainingData(_write_prepared(tmp_path, sentence_lengths, doc_lengths), seed=1)
    sentence_doc = np.repeat(np.arange(len(doc_lengths)), doc_lengths)
    for epoch in range(3):
        examples = data.examples(epoch)
        a_start, a_len, b_start, b_len, label = examples.T
        assert (a_len >= 1).all() and (b_len >= 1).all() and (a_len + b_len <= 125).all()
        first, last = np.minimum(a_start, b_start), np.maximum(a_start + a_len, b_start + b_len) - 1
        tokens = np.asarray(data.shards.token_ids)
        # Ids encode sentences, so both ends of the pair's span lie in the same document ...
        assert (sentence_doc[tokens[first] - 5] == sentence_doc[tokens[last] - 5]).all()
        # ... and A comes before B, unless swapped (label 1).
        assert ((label == 0) == (a_start + a_len <= b_start)).all() and (
            (label == 1) == (b_start + b_len <= a_start)
        ).all()
    # The rows of a batch are [CLS] A [SEP] B [SEP] from these ranges.
    batch = data.batch(32, 0, 1)
    original = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])
    for row, (a0, na, b0, nb, _label) in zip(original.tolist(), data.examples(0)[32:64].tolist(), strict=True):
        expected = [2, *tokens[a0 : a0 + na].tolist(), 3, *tokens[b0 : b0 + nb].tolist(), 3]
        assert row == expected + [0] * (len(row) - len(expected))
    assert batch["sentence_order_label"].tolist() == data.examples(0)[32:64, 4].tolist()


def test_short_targets_and_order_swaps(tmp_path):
    # Sentences of exactly 5 tokens: a full target (125) gives exactly 128, a short one (<= 120) fewer.
    data = PretrainingData(_write_prepared(tmp_path, np.full(20000, 5), [5000] * 4))
    examples = np.concatenate([data.examples(epoch) for epoch in range(5)])
    lengths = examples[:, 1] + examples[:, 3] + 3
    assert lengths.max() == 128 and len(examples) > 4000
    # Expected 0.1 * 119/124 = 0.096 (targets 2..120 of 2..125) plus <= 0.5% document ends; binomial sd ~0.0045.
    assert 0.08 < (lengths < 128).mean() < 0.115
    # Half the pairs swapped, sd ~0.008.
    assert abs(examples[:, 4].mean() - 0.5) < 0.03
    no_short = PretrainingData(tmp_path, short_seq_prob=0.0).examples(0)
    assert (no_short[:, 1] + no_short[:, 3] + 3 < 128).sum() <= 4  # only document ends


def test_lone_sentences_are_split_inside():
    offsets = np.array([0, 50, 51, 60])  # documents: one 50-token sentence, one 1-token sentence, one of 9
    examples = build_sop_examples(offsets, np.array([0, 1, 2, 3]), 128, 0.0, np.random.default_rng(0))
    assert len(examples) == 2  # the 1-token document cannot make two segments
    a_start, a_len, b_start, b_len, label = examples.T
    assert (a_len + b_len).tolist() == [50, 9]
    assert (np.minimum(a_start, b_start) == [0, 51]).all()


# --- masking ------------------------------------------------------------------------------------------------------


def _mask_sample(data: PretrainingData, rows: int, cap: int, seed: int = 0):
    examples = np.concatenate([data.examples(epoch) for epoch in range(3)])[:rows]
    return data.masked_pairs(examples, np.random.default_rng(seed), max_predictions_per_seq=cap)


def test_masking_statistics(prepared):
    data = PretrainingData(prepared[0])
    assert data.max_predictions_per_seq == 20
    pairs, masked_ids, labels, span_words = _mask_sample(data, 4000, cap=1000)
    assert len(labels) == 4000
    masked = labels != IGNORE_INDEX
    # ~57,000 masked tokens: the sampling sd of the fraction is ~0.0005, the threshold's approximation ~0.001.
    assert abs(masked.sum() / pairs["maskable"].sum() - 0.15) < 0.003
    # ~35,000 spans (sd of a share ~0.003); the last n-gram of a row (1 in ~50) is clipped shorter at the row end.
    shares = np.bincount(span_words, minlength=4)[1:] / len(span_words)
    np.testing.assert_allclose(shares, np.array([6, 3, 2]) / 11, atol=0.015)
    # 80% [MASK], 10% random, 10% kept (a random id equal to the original counts as kept: 1 in 2000).
    assert abs((masked_ids[masked] == data.mask_token_id).mean() - 0.8) < 0.01
    assert abs((masked_ids[masked] == labels[masked]).mean() - 0.1) < 0.01
    replaced = masked & (masked_ids != labels) & (masked_ids != data.mask_token_id)
    assert abs(replaced.sum() / masked.sum() - 0.1) < 0.01
    assert not np.isin(masked_ids[replaced], list(SPECIAL.values())).any()
    # Never a special token or padding; labels hold the original ids.
    assert not (masked & ~pairs["maskable"]).any()
    assert (labels[masked] == pairs["input_ids"][masked]).all()
    # Whole words: a masked continuation token follows a masked token.
    continuation = masked & ~pairs["word_starts"]
    assert continuation.any() and masked[:, :-1][continuation[:, 1:]].all()


def test_the_cap_bounds_each_row(prepared):
    data = PretrainingData(prepared[0])
    pairs, _, labels, span_words = _mask_sample(data, 2000, cap=data.max_predictions_per_seq, seed=1)
    per_row = (labels != IGNORE_INDEX).sum(1)
    assert per_row.max() == 20 and per_row.min() >= 1
    # The cap trims some last spans: the fraction drops a little below 15% and stays near the 1/n law.
    assert 0.14 < per_row.sum() / pairs["maskable"].sum() < 0.15
    np.testing.assert_allclose(
        np.bincount(span_words)[1:] / len(span_words), np.array([6, 3, 2]) / 11, atol=0.03
    )


# --- batches ------------------------------------------------------------------------------------------------------


def test_batches_are_deterministic_and_independent_of_world_size(prepared):
    out = prepared[0]
    first, second = PretrainingData(out, seed=7), PretrainingData(out, seed=7)
    whole = first.batch(16, 2, 3)
    again = second.batch(16, 2, 3)
    assert all(torch.equal(whole[k], again[k]) for k in whole)
    halves = [second.batch(16, 2, 3, rank=rank, world_size=2) for rank in (0, 1)]
    for key, value in whole.items():
        if value.dim() == 1:
            assert torch.equal(torch.cat([h[key] for h in halves]), value)
            continue
        for rank, half in enumerate(halves):
            width = half[key].shape[1]
            assert torch.equal(half[key], value[rank * 8 : (rank + 1) * 8, :width])
            assert (
                value[rank * 8 : (rank + 1) * 8, width:] == (IGNORE_INDEX if key == "labels" else 0)
            ).all()
    assert not torch.equal(
        first.batch(16, 3, 3)["input_ids"], whole["input_ids"]
    )  # a new epoch, new examples


def test_batch_layout(prepared):
    data = PretrainingData(prepared[0])
    batch = data.batch(64, 0, 0)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_order_label"}
    assert all(v.dtype == torch.int64 for v in batch.values())
    assert batch["input_ids"].shape[1] <= 128 and batch["sentence_order_label"].shape == (64,)
    original = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])
    for row, types, attention in zip(original, batch["token_type_ids"], batch["attention_mask"], strict=True):
        length = int(attention.sum())
        assert attention[:length].all() and not attention[length:].any()
        seps = (row == 3).nonzero().flatten().tolist()
        assert row[0] == 2 and len(seps) == 2 and seps[1] == length - 1
        assert (
            (types[: seps[0] + 1] == 0).all()
            and (types[seps[0] + 1 : length] == 1).all()
            and not types[length:].any()
        )
        assert (row[length:] == 0).all()
    special = (original == 2) | (original == 3) | (original == 0)
    assert (batch["labels"][special] == IGNORE_INDEX).all()
    with pytest.raises(IndexError):
        data.batch(64, 0, data.num_batches(64, 0))
    with pytest.raises(UserError, match="not a multiple of the 3 processes"):
        data.batch(64, 0, 0, world_size=3)


def test_timing_sanity(prepared):
    data = PretrainingData(prepared[0], seed=3)
    started = time.perf_counter()
    examples = data.num_examples(5)
    built = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(5):
        data.batch(256, 5, index % data.num_batches(256, 5))
    per_batch = (time.perf_counter() - started) / 5
    print(
        f"\n{data.shards.num_tokens:,} tokens -> {examples:,} examples in {built * 1e3:.1f} ms; "
        f"256x128 batch in {per_batch * 1e3:.1f} ms"
    )
    assert examples > 0


# --- slices prepared apart, read as one -------------------------------------------------------------------------


def _documents(shards) -> list[tuple[int, ...]]:
    return [tuple(np.concatenate(shards.document(j)).tolist()) for j in range(shards.num_documents)]


def test_slices_prepared_apart_read_as_the_whole_corpus(tokenizer_dir, tmp_path, monkeypatch, capsys):
    from albertkit.data.shards import ShardUnion, open_shards

    text = _synthetic_english(tmp_path / "small.txt", documents=30, seed=2)
    monkeypatch.setattr(prepare, "CHUNK_CHARS", 2000)  # many chunks, so that each slice holds several
    whole = tmp_path / "whole"
    prepare_pretraining_data(text, tokenizer_dir, whole, workers=1, valid_fraction=0.0)
    slices = [tmp_path / f"slice{i}" for i in range(3)]
    for i, folder in enumerate(slices):
        summary = prepare_pretraining_data(text, tokenizer_dir, folder, workers=1, valid_fraction=0.0,
                                           num_shards=3, shard_index=i)
        assert 0 < summary["documents"] < 30
        assert json.loads((folder / INDEX_NAME).read_text())["shard"] == {"index": i, "count": 3}
    union = open_shards(slices, "train")
    assert isinstance(union, ShardUnion)
    reference = TokenShards(whole, "train")
    assert (union.num_documents, union.num_sentences, union.num_tokens) == (
        reference.num_documents, reference.num_sentences, reference.num_tokens)
    assert sorted(_documents(union)) == sorted(_documents(reference))  # every document once, none lost
    # Fancy indexing across parts, as the masking reads tokens.
    positions = np.array([0, union.num_tokens - 1, int(union.sentence_offsets[union.num_sentences // 2])])
    flat = np.concatenate([np.asarray(TokenShards(f, "train").token_ids) for f in slices])
    assert union.token_ids[positions].tolist() == flat[positions].tolist()
    data = PretrainingData(slices, "train", max_seq_length=64)
    batch = data.batch(4, 0, 0)
    assert batch["input_ids"].shape[0] == 4

    with pytest.raises(UserError, match=r"slice 1 of 3 is given twice"):
        open_shards([slices[0], slices[1], slices[1]], "train")
    with pytest.raises(UserError, match=r"shard index must be in 0 \.\. 2 for 3 shard\(s\), not 3"):
        prepare_pretraining_data(text, tokenizer_dir, tmp_path / "x", num_shards=3, shard_index=3)
    capsys.readouterr()


def test_folders_of_other_tokenizers_are_not_read_together(tmp_path):
    from albertkit.data.shards import open_shards

    a = _write_prepared(tmp_path / "a", [3, 4], [2])
    b = _write_prepared(tmp_path / "b", [3, 4], [2], max_seq_length=64)
    with pytest.raises(UserError, match=r"max_seq_length 64 differs from 128 in .*a: prepare every folder with"):
        open_shards([a, b])
