"""The bad-input matrix of `pretrain prepare`, run through the CLI (the policy: tests/bad_inputs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import (
    INVALID_CONTINUATION,
    INVALID_START,
    LATIN1,
    NOT_GZIP,
    PNG,
    TEN_MB,
    TEXT,
    cli,
    error_line,
    write,
)

from albertkit.data.shards import INDEX_NAME
from albertkit.tokenization.sentencepiece import AlbertTokenizer


def prepare(capsys: pytest.CaptureFixture[str], bad_input_folders: dict[str, Path], source: Path, out: Path,
            *extra: object) -> tuple[int, str, str]:
    return cli(capsys, "pretrain", "prepare", "--input", source, "--tokenizer", bad_input_folders["tokenizer"], "--out", out,
               "--workers", 1, "--max-seq-length", 32, *extra)


# --- pretrain prepare -------------------------------------------------------------------------------------------

NO_TEXT = "no text to prepare: every line is blank or skipped"


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.txt", b"", f"{{path}}: {NO_TEXT}"),
    ("whitespace.txt", b"  \n\t\n \r\n\n", f"{{path}}: {NO_TEXT}"),
    ("punctuation.txt", b"----\n***\n\x00\x01\x02\n", f"{{path}}: {NO_TEXT}"),  # valid UTF-8, but no words
    ("image.png", PNG, f"{{path}}:1: {INVALID_START}"),
    ("latin1.txt", LATIN1, f"{{path}}:2: {INVALID_CONTINUATION}"),
    ("mislabelled.txt.gz", TEXT.encode(), f"{{path}}:1: {NOT_GZIP}"),
])
def test_prepare_stops_on_unusable_files(bad_input_folders, tmp_path, capsys, name, data, message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = prepare(capsys, bad_input_folders, path, tmp_path / "out")
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no temporary folder


def test_prepare_failure_keeps_the_previous_output(bad_input_folders, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert prepare(capsys, bad_input_folders, write(tmp_path / "good.txt", TEXT.encode()), out)[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = write(tmp_path / "bad.txt", TEXT.encode() * 50 + LATIN1)  # fails after 200 good lines were read
    code, _, err = prepare(capsys, bad_input_folders, bad, out)
    assert error_line(code, err) == f"{bad}:202: {INVALID_CONTINUATION}"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "out"]


def test_prepare_reports_skipped_lines(bad_input_folders, tmp_path, capsys) -> None:
    path = write(tmp_path / "skips.txt", b"The film is good. It was fun.\n----\n= = Cast = =\nx\nThe cast is great.\n")
    code, out, _ = prepare(capsys, bad_input_folders, path, tmp_path / "out")
    assert code == 0
    assert "prepared 1 documents (en 1), 3 sentences" in out
    assert "lines skipped: no text 1, too short 1, wikitext heading 1" in out
    index = json.loads((tmp_path / "out" / INDEX_NAME).read_text())
    assert index["inputs"][0]["skipped_lines"] == {"no text": 1, "too short": 1, "wikitext heading": 1}


@pytest.mark.parametrize(("name", "encode"), [
    ("crlf.txt", lambda text: text.replace("\n", "\r\n").encode()),
    ("bom.txt", lambda text: b"\xef\xbb\xbf" + text.encode()),
    ("bom-crlf.txt", lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()),
])
def test_prepare_reads_crlf_and_bom_like_plain_lf(bad_input_folders, tmp_path, capsys, name, encode) -> None:
    assert prepare(capsys, bad_input_folders, write(tmp_path / "lf.txt", TEXT.encode()), tmp_path / "lf")[0] == 0
    code, out, _ = prepare(capsys, bad_input_folders, write(tmp_path / name, encode(TEXT)), tmp_path / "other")
    assert code == 0 and "prepared 2 documents (en 2), 5 sentences" in out and "lines skipped: none" in out
    for split in ("train", "valid"):
        for shard in sorted((tmp_path / "lf" / split).iterdir()):
            assert (tmp_path / "other" / split / shard.name).read_bytes() == shard.read_bytes(), shard


@pytest.mark.slow
def test_prepare_a_10_mb_single_line(bad_input_folders, tmp_path, capsys) -> None:
    sentence = "The film is good."
    repeats = TEN_MB // (len(sentence) + 1)
    path = write(tmp_path / "one-line.txt", f"{sentence} ".encode() * repeats + b"\n")
    code, out, _ = prepare(capsys, bad_input_folders, path, tmp_path / "out")
    assert code == 0
    tokens = repeats * len(AlbertTokenizer.from_pretrained(bad_input_folders["tokenizer"]).encode(sentence))
    assert f"prepared 1 documents (en 1), {repeats:,} sentences, {tokens:,} tokens" in out


def test_prepare_length_above_the_models_positions(bad_input_folders, tmp_path, capsys) -> None:
    source = write(tmp_path / "text.txt", TEXT.encode())
    code, _, err = prepare(capsys, bad_input_folders, source, tmp_path / "out", "--config", bad_input_folders["short"],
                           "--max-seq-length", 128)
    assert error_line(code, err) == (f"{bad_input_folders['short']}: max_seq_length 128 is above the model's "
                                     "max_position_embeddings 64")
    code, _, err = prepare(capsys, bad_input_folders, source, tmp_path / "out", "--max-seq-length", 1024)
    assert error_line(code, err) == "max_seq_length must be between 5 and 512, not 1024"
    assert not (tmp_path / "out").exists()


def test_prepare_never_replaces_a_folder_of_other_files(bad_input_folders, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    write(out / "notes.txt", b"keep me")
    code, _, err = prepare(capsys, bad_input_folders, write(tmp_path / "text.txt", TEXT.encode()), out)
    assert error_line(code, err) == f"{out}: folder is not empty and holds no prepared data: choose a new or empty folder"
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_bytes() == b"keep me"
