"""Tokenizer: training conventions, id-for-id parity with transformers' AlbertTokenizer, CLI, text-file reading."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MIXED, SHARED_DATA
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sentencepiece import sentencepiece_model_pb2

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.io.text import iter_text_lines
from albertkit.tokenization.sentencepiece import (
    SPECIAL_TOKENS,
    AlbertTokenizer,
    normalize_text,
    normalize_with_sources,
)
from albertkit.tokenization.training import train_tokenizer

transformers = pytest.importorskip("transformers")

WORDS = (
    "the quick brown fox jumps over a lazy dog while five boxing wizards jump quickly and "
    "sphinx of black quartz judge my vow as we pack my box with liquor"
).split()


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _write_slice(source: Path, target: Path, lines: int, column: int | None = None) -> Path:
    with open(source, encoding="utf-8") as handle:
        rows = [next(handle) for _ in range(lines)]
    if column is not None:
        rows = [row.split("\t")[column] + "\n" for row in rows]
    target.write_text("".join(rows), encoding="utf-8")
    return target


def _trainer_spec(directory: Path) -> sentencepiece_model_pb2.TrainerSpec:
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((directory / "spiece.model").read_bytes())
    return proto.trainer_spec


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory) -> Path:
    """2,000 lines of pangram words and 300 made-up ones: every letter a-z, room for a few hundred pieces."""
    rng = random.Random(0)
    made_up = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 8))) for _ in range(300)]
    words = [*WORDS, *made_up]
    path = tmp_path_factory.mktemp("toy") / "toy.txt"
    path.write_text("".join(" ".join(rng.choices(words, k=rng.randint(3, 12))) + "\n" for _ in range(2000)))
    return path


@pytest.fixture(scope="module")
def toy_dir(toy_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy_tok")
    train_tokenizer([toy_corpus], out, vocab_size=120)
    return out


@pytest.fixture(scope="module")
def wiki_dir(tmp_path_factory) -> Path:
    """A 1,000-piece vocabulary learned from the first 2,000 lines of WikiText-103 validation."""
    tmp = tmp_path_factory.mktemp("wiki")
    corpus = _write_slice(_shared("en", "wiki", "wiki.valid.tokens"), tmp / "wiki.txt", 2000)
    train_tokenizer([corpus], tmp / "tok", vocab_size=1000)
    return tmp / "tok"


@pytest.fixture(scope="module")
def zh_dir(tmp_path_factory) -> Path:
    """lang auto on Chinese reviews plus some English: becomes "zh"."""
    tmp = tmp_path_factory.mktemp("zh")
    reviews = _write_slice(_shared("zh", "chnsenticorp", "train.tsv"), tmp / "reviews.txt", 1500, column=0)
    wiki = _write_slice(_shared("en", "wiki", "wiki.valid.tokens"), tmp / "wiki.txt", 300)
    train_tokenizer([reviews, wiki], tmp / "tok", vocab_size=4000, lang="auto")
    return tmp / "tok"


def _sst2_sentences(count: int) -> list[str]:
    with open(_shared("en", "sst2", "test.tsv"), encoding="utf-8") as handle:
        next(handle)
        return [next(handle).split("\t")[0] for _ in range(count)]


def _assert_same_encoding(ours: dict, theirs, keys=("input_ids", "token_type_ids", "attention_mask")) -> None:
    for key in keys:
        assert ours[key] == theirs[key], key


# --- conventions of the trained model ---


def test_special_ids_are_fixed_and_never_come_out_of_normal_text(toy_dir):
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    assert tok.convert_ids_to_tokens(range(5)) == list(SPECIAL_TOKENS)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert tok.all_special_ids == [0, 1, 2, 3, 4]
    assert tok.vocab_size == len(tok) == 120
    assert all(tok.sp_model.is_control(i) for i in (0, 2, 3, 4)) and tok.sp_model.is_unknown(1)
    # Lowercased, the special strings are plain text; verbatim, each is one id.
    assert not {0, 2, 3, 4} & set(tok.encode("[cls] [sep] [mask] <PAD>"))
    assert tok.encode("fox [MASK] dog<unk>") == [*tok.encode("fox"), 4, *tok.encode("dog"), 1]


def test_english_training_options_and_config(toy_dir):
    spec = _trainer_spec(toy_dir)
    assert spec.character_coverage == 1.0 and not spec.split_digits and spec.max_sentencepiece_length == 16
    config = json.loads((toy_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "AlbertTokenizer"
    assert (config["do_lower_case"], config["keep_accents"], config["model_max_length"]) == (True, False, 512)
    assert (config["cls_token"], config["sep_token"], config["mask_token"]) == ("[CLS]", "[SEP]", "[MASK]")
    assert json.loads((toy_dir / "special_tokens_map.json").read_text())["pad_token"] == "<pad>"


def test_auto_language_detects_chinese(zh_dir):
    spec = _trainer_spec(zh_dir)
    assert spec.character_coverage == pytest.approx(0.9995) and spec.split_digits
    tok = AlbertTokenizer.from_pretrained(zh_dir)
    assert tok.tokenize("2023年")[-5:] == ["2", "0", "2", "3", "年"]
    assert not any(
        re.fullmatch(r"▁?\d{2,}", piece) for piece in tok.convert_ids_to_tokens(range(tok.vocab_size))
    )


def test_char_vocab_has_one_character_per_piece(tmp_path, toy_corpus):
    tok = train_tokenizer([toy_corpus], tmp_path, vocab_size=5000, lang="en", char_vocab=True)
    pieces = tok.convert_ids_to_tokens(range(5, tok.vocab_size))
    assert all(len(piece) == 1 for piece in pieces)
    # 26 letters and the word marker "▁": the requested size is only an upper bound.
    assert sorted(pieces) == sorted("abcdefghijklmnopqrstuvwxyz▁")
    hf = transformers.AlbertTokenizer.from_pretrained(tmp_path)
    assert (
        tok.encode_batch(["lazy dog", "zebra ☃☃ quiz"])
        == hf(["lazy dog", "zebra ☃☃ quiz"], add_special_tokens=False)["input_ids"]
    )


def test_sampling_large_corpus_is_seeded(tmp_path, toy_corpus, capsys):
    models = []
    for run, seed in enumerate((0, 0, 1)):
        train_tokenizer([toy_corpus], tmp_path / str(run), vocab_size=100, max_sentences=500, seed=seed)
        models.append((tmp_path / str(run) / "spiece.model").read_bytes())
    assert models[0] == models[1] and models[0] != models[2]
    assert "read 2,000 lines, sampled 500 from 1 file(s)" in capsys.readouterr().out


def test_cased_tokenizer_keeps_case(tmp_path, toy_corpus):
    cased = tmp_path / "corpus.txt"
    cased.write_text(toy_corpus.read_text().title())
    tok = train_tokenizer([cased], tmp_path / "tok", vocab_size=150, lang="en", lowercase=False)
    assert json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())["do_lower_case"] is False
    assert tok.normalize("The  Quick\tFox") == "The Quick Fox"
    assert tok.encode("The Fox") != tok.encode("the fox")
    hf = transformers.AlbertTokenizer.from_pretrained(tmp_path / "tok")
    texts = ["The Quick Brown Fox", "the quick brown fox", "LAZY Dog Résumé"]
    assert tok.encode_batch(texts) == hf(texts, add_special_tokens=False)["input_ids"]


def test_word_start_mask_on_known_pieces(wiki_dir, zh_dir):
    tok = AlbertTokenizer.from_pretrained(wiki_dir)
    assert tok.word_start_mask.shape == (tok.vocab_size,) and tok.word_start_mask.dtype == np.bool_
    ids = dict(
        zip(
            ["▁the", "▁,", "▁", "s", "ed"],
            tok.convert_tokens_to_ids(["▁the", "▁,", "▁", "s", "ed"]),
            strict=True,
        )
    )
    assert tok.unk_token_id not in ids.values()
    assert tok.word_start_mask[[ids["▁the"], ids["▁,"], ids["▁"]]].all()
    assert not tok.word_start_mask[[ids["s"], ids["ed"]]].any()
    assert tok.word_start_mask[tok.all_special_ids].all()
    zh = AlbertTokenizer.from_pretrained(zh_dir)
    chinese_inside, latin_inside = zh.convert_tokens_to_ids(["京", "e"])
    assert zh.unk_token_id not in (chinese_inside, latin_inside)
    assert zh.word_start_mask[chinese_inside] and not zh.word_start_mask[latin_inside]


# --- parity with transformers ---


def test_hf_parity_on_sst2_single_pair_and_truncation(wiki_dir):
    tok = AlbertTokenizer.from_pretrained(wiki_dir)
    hf = transformers.AlbertTokenizer.from_pretrained(wiki_dir)
    sentences = _sst2_sentences(200)
    _assert_same_encoding(tok(sentences), hf(sentences, return_token_type_ids=True))
    first, second = sentences[:100], sentences[100:]
    _assert_same_encoding(tok(first, second), hf(first, second, return_token_type_ids=True))
    for max_length in (5, 16, 17, 40):
        ours = tok(first, second, truncation=True, max_length=max_length)
        _assert_same_encoding(
            ours, hf(first, second, truncation=True, max_length=max_length, return_token_type_ids=True)
        )
        assert max(len(ids) for ids in ours["input_ids"]) == max_length
        _assert_same_encoding(
            tok(first, truncation=True, max_length=max_length),
            hf(first, truncation=True, max_length=max_length, return_token_type_ids=True),
        )
    assert [tok.tokenize(s) for s in sentences[:20]] == [hf.tokenize(s) for s in sentences[:20]]
    ids = tok(sentences[:20])["input_ids"]
    assert [tok.decode(row) for row in ids] == [hf.decode(row, skip_special_tokens=True) for row in ids]
    assert [tok.decode(row, skip_special_tokens=False) for row in ids] == [hf.decode(row) for row in ids]


def test_hf_parity_on_wiki_text_with_unk_markers(wiki_dir):
    tok = AlbertTokenizer.from_pretrained(wiki_dir)
    hf = transformers.AlbertTokenizer.from_pretrained(wiki_dir)
    with open(_shared("en", "wiki", "wiki.test.tokens"), encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(600), handle, strict=False) if line.strip()]
    assert sum("<unk>" in line for line in lines) > 10
    assert tok.encode_batch(lines) == hf(lines, add_special_tokens=False)["input_ids"]


def test_hf_parity_on_mixed_chinese_and_english(zh_dir):
    tok = AlbertTokenizer.from_pretrained(zh_dir)
    hf = transformers.AlbertTokenizer.from_pretrained(zh_dir)
    assert tok.encode_batch(MIXED) == hf(MIXED, add_special_tokens=False)["input_ids"]
    assert [tok.tokenize(text) for text in MIXED] == [hf.tokenize(text) for text in MIXED]
    assert tok.normalize(" Café\u3000 ＯＫ ``x'' ") == 'cafe ok "x"'
    pairs = MIXED[::-1]
    _assert_same_encoding(
        tok(MIXED, pairs, truncation=True, max_length=12),
        hf(MIXED, pairs, truncation=True, max_length=12, return_token_type_ids=True),
    )


def test_padding_and_tensors_match_hf(wiki_dir):
    tok = AlbertTokenizer.from_pretrained(wiki_dir)
    hf = transformers.AlbertTokenizer.from_pretrained(wiki_dir)
    texts = ["a short one .", "a somewhat longer sentence about the lobster , which is blue .", "x"]
    ours = tok(texts, padding=True, return_tensors="pt")
    theirs = hf(texts, padding=True, return_tensors="pt", return_token_type_ids=True)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(ours[key], theirs[key])
    length_of_x = len(tok("x")["input_ids"])
    assert (
        ours["input_ids"].dtype == torch.int64
        and ours["input_ids"][2, length_of_x:].eq(tok.pad_token_id).all()
    )
    padded = tok(texts, padding="max_length", max_length=24, return_tensors="np")
    assert padded["input_ids"].shape == (3, 24) and padded["attention_mask"].sum(1).tolist() == [
        len(ids) for ids in tok(texts)["input_ids"]
    ]
    with pytest.raises(ValueError, match="padding=True"):
        tok(texts, return_tensors="pt")
    single = tok("the lobster", return_tensors="np")
    assert single["input_ids"].shape == (1, len(tok("the lobster")["input_ids"]))


# --- round trips and properties ---


def test_save_and_load_round_trip(toy_dir, tmp_path):
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    tok.save_pretrained(tmp_path)
    again = AlbertTokenizer.from_pretrained(tmp_path)
    assert (tmp_path / "spiece.model").read_bytes() == (toy_dir / "spiece.model").read_bytes()
    assert again.encode_batch(["the lazy dog", "vow box"]) == tok.encode_batch(["the lazy dog", "vow box"])
    assert again.convert_tokens_to_ids(again.convert_ids_to_tokens([7, 8, 9])) == [7, 8, 9]
    assert again.convert_tokens_to_ids(["not-a-piece"]) == [again.unk_token_id]
    assert (again.convert_tokens_to_ids("[MASK]"), again.convert_ids_to_tokens(4)) == (4, "[MASK]")


def test_unbounded_model_max_length_of_transformers_reads_as_512(toy_dir, tmp_path):
    (tmp_path / "spiece.model").write_bytes((toy_dir / "spiece.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))
    assert AlbertTokenizer.from_pretrained(tmp_path).model_max_length == 512


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz \t\n", max_size=60))
def test_decode_encode_round_trip_on_lowercase_ascii(toy_dir, text):
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    ids = tok.encode(text)
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == " ".join(text.split())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_random_unicode_decodes_to_the_normalized_text_up_to_unknown_runs(toy_dir, text):
    """Pieces partition the normalized text; each <unk> stands for one run of non-space characters."""
    assume(not any(token in text for token in SPECIAL_TOKENS))
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    ids = tok.encode_batch([text, text])
    assert ids[0] == ids[1] and all(0 <= i < tok.vocab_size for i in ids[0])
    decoded = tok.decode(ids[0], skip_special_tokens=False)
    normalized = tok.sp_model.normalize(tok.normalize(text)).replace("▁", " ")
    expected = normalized[1:] if normalized.startswith(" ") else normalized
    pattern = "[^ ]+".join(re.escape(part) for part in decoded.split("<unk>"))
    assert re.fullmatch(pattern, expected), (decoded, expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40) | st.text(alphabet="aé ﬁ½`'\u3000\u00a8Σ北京\t", max_size=30))
def test_offsets_point_at_the_characters_each_piece_comes_from(toy_dir, text):
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    normalized, starts, ends = normalize_with_sources(text)
    assert normalized == tok.normalize(text) and len(starts) == len(ends) == len(normalized)
    assert all(0 <= start < end <= len(text) for start, end in zip(starts, ends, strict=True))
    (ids, spans), = tok.encode_with_offsets([text])
    assert ids == tok.encode(text) and len(spans) == len(ids)
    assert all(0 <= start <= end <= len(text) for start, end in spans)
    assert [start for start, _ in spans] == sorted(start for start, _ in spans)
    # A piece of ASCII letters spells the lowercased characters it points at (sentencepiece deletes control
    # characters and counts each with the piece before it).
    for piece, (start, end) in zip(tok.convert_ids_to_tokens(ids), spans, strict=True):
        bare = piece.lstrip("▁")
        if bare.isascii() and bare.isalpha() and text[start:end].isascii():
            assert "".join(c for c in text[start:end] if c.isprintable()).lower() == bare


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet="aÉ ﬁ½`'\u3000\u00a8Σİẞ北京\t", max_size=30), st.booleans(), st.booleans())
def test_normalize_with_sources_matches_normalize_text_under_every_option(text, lower, keep_accents):
    normalized, starts, ends = normalize_with_sources(text, do_lower_case=lower, keep_accents=keep_accents)
    assert normalized == normalize_text(text, do_lower_case=lower, keep_accents=keep_accents)
    assert len(starts) == len(ends) == len(normalized)
    assert starts == sorted(starts) and all(0 <= a < b <= len(text) for a, b in zip(starts, ends, strict=True))


def test_offsets_through_special_tokens_and_expanding_characters(toy_dir):
    tok = AlbertTokenizer.from_pretrained(toy_dir)
    text = "the ﬁx [MASK] ``dog''"
    (ids, spans), = tok.encode_with_offsets([text])
    pieces = [(piece, text[start:end]) for piece, (start, end) in zip(tok.convert_ids_to_tokens(ids), spans,
                                                                        strict=True)]
    assert ("[MASK]", "[MASK]") in pieces and "".join(span for _, span in pieces[:4]) == "the"
    # "ﬁ" becomes "fi": each piece of it points at the ligature; the quotes point at both backticks.
    assert all(span == "ﬁ" for piece, span in pieces if piece.lstrip("▁") in ("f", "i", "fi"))
    assert any(span == "``" for _, span in pieces) and any(span == "''" for _, span in pieces)


# --- errors and the CLI ---


def test_cli_trains_a_folder_that_transformers_loads(toy_corpus, tmp_path, capsys):
    out = tmp_path / "tok"
    code = main(
        [
            "tokenizer",
            "train",
            "--input",
            str(toy_corpus),
            "--vocab-size",
            "100",
            "--out",
            str(out),
            "--lang",
            "en",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer_config.json",
    ]
    summary = capsys.readouterr().out.strip().splitlines()
    assert summary == [
        f"tokenizer: read 2,000 lines from 1 file(s) (lang en), vocabulary 100 pieces, wrote {out}"
    ]
    hf = transformers.AlbertTokenizer.from_pretrained(out)
    assert (
        AlbertTokenizer.from_pretrained(out)("quick wizards")["input_ids"] == hf("quick wizards")["input_ids"]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file or folder"),
        ("\n   \n\t\n", "the input has no text (every line is blank): nothing to train on"),
    ],
)
def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, content, message):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_text(content)
    code = main(
        ["tokenizer", "train", "--input", str(corpus), "--out", str(tmp_path / "tok"), "--vocab-size", "50"]
    )
    err = capsys.readouterr().err
    assert code == 2
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("albertkit: error: ") and last_line.endswith(message)
    assert "Traceback" not in err and not (tmp_path / "tok" / "spiece.model").exists()


def test_vocabulary_size_errors(toy_corpus, tmp_path):
    with pytest.raises(
        UserError, match=r"--vocab-size 5000 is too large for this corpus, which supports at most \d+"
    ):
        train_tokenizer([toy_corpus], tmp_path, vocab_size=5000)
    with pytest.raises(UserError, match="--vocab-size must be at least 10"):
        train_tokenizer([toy_corpus], tmp_path, vocab_size=9)
    with pytest.raises(
        UserError, match=r"--vocab-size 20 is smaller than the \d+ characters this corpus needs"
    ):
        train_tokenizer([toy_corpus], tmp_path, vocab_size=20)


def test_invalid_utf8_names_file_and_line(tmp_path):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"fine line\nanother\nbroken \xff\xfe here\n")
    with pytest.raises(UserError, match=re.escape(f"{corpus}:3: invalid UTF-8")):
        train_tokenizer([corpus], tmp_path / "tok", vocab_size=50)


# --- reading text files ---


def test_text_lines_from_files_folders_globs_jsonl_and_gz(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_bytes(b"\xef\xbb\xbffirst\r\nsecond\r\n\r\nthird")
    (tmp_path / "docs" / "sub" / "b.jsonl").write_text(
        '{"text": "one"}\n\n{"text": "two\\nlines", "id": 3}\n'
    )
    with gzip.open(tmp_path / "docs" / "sub" / "c.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("zipped\n")
    (tmp_path / "docs" / "notes.csv").write_text("ignored in folders\n")
    (tmp_path / "docs" / ".hidden.txt").write_text("ignored too\n")
    lines = [(path.name, number, text) for path, number, text in iter_text_lines([tmp_path / "docs"])]
    assert lines == [
        ("a.txt", 1, "first"),
        ("a.txt", 2, "second"),
        ("a.txt", 3, ""),
        ("a.txt", 4, "third"),
        ("b.jsonl", 1, "one"),
        ("b.jsonl", 3, "two\nlines"),
        ("c.txt.gz", 1, "zipped"),
    ]
    globbed = [path.name for path, _, _ in iter_text_lines(str(tmp_path / "docs" / "**" / "*.jsonl"))]
    assert globbed == ["b.jsonl", "b.jsonl"]
    assert [text for _, _, text in iter_text_lines(tmp_path / "docs" / "notes.csv")] == ["ignored in folders"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.jsonl",
            '{"text": "ok"}\n{"text": 3}\n',
            ':2: each JSONL line must be an object with a string "text" field',
        ),
        ("bad.jsonl", '{"text": "ok"}\n\n{not json\n', ":3: invalid JSON"),
        ("empty_dir", None, ": folder has no text files"),
        ("*.nothing", None, ": no files match this pattern"),
    ],
)
def test_text_line_errors_name_file_and_line(tmp_path, name, content, message):
    target = tmp_path / name
    if content is not None:
        target.write_text(content)
    elif name == "empty_dir":
        target.mkdir()
    with pytest.raises(UserError) as caught:
        list(iter_text_lines([target]))
    assert str(caught.value).startswith(f"{target}{message}")
