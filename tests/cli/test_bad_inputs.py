"""The bad-input matrix of `embed`, `finetune`, `evaluate` and `predict`, run through the CLI (the policy:
tests/bad_inputs.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
from builders import movie_sentences
from conftest import write_synthetic_corpus

from albertkit.cli import main
from albertkit.inference.embed import Encoder
from albertkit.tokenization.training import train_tokenizer


def embed(capsys: pytest.CaptureFixture[str], model: Path, source: Path, out: Path,
          *extra: object) -> tuple[int, str, str]:
    return cli(capsys, "embed", "--model", model, "--input", source, "--output", out, *extra)


# --- embed ------------------------------------------------------------------------------------------------------

TABLE_TAB = "(a tab inside a text?)"


@pytest.mark.parametrize(("name", "data", "extra", "message"), [
    ("empty.txt", b"", [], "{path}: no texts in the file"),
    ("whitespace.txt", b"  \n\t\n \r\n", [], "{path}: no texts in the file: every text is blank"),
    ("image.png", PNG, [], f"{{path}}:1: {INVALID_START}"),
    ("latin1.txt", LATIN1, [], f"{{path}}:2: {INVALID_CONTINUATION}"),
    ("mislabelled.txt.gz", TEXT.encode(), [], f"{{path}}:1: {NOT_GZIP}"),
    ("extra-column.tsv", b"sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n", [],
     f"{{path}}:3: 3 columns instead of 2 {TABLE_TAB}"),
    ("missing-column.tsv", b"sentence\tlabel\ngood film\t1\nno label\n", [],
     f"{{path}}:3: 1 columns instead of 2 {TABLE_TAB}"),
    ("short-row.tsv", b"id\tsentence\n1\tgood film\n2\n", [], f"{{path}}:3: 1 columns instead of 2 {TABLE_TAB}"),
    ("commas.csv", b'id,body\n1,"one, two"\n2,three, four\n', [],
     "{path}:3: 3 columns instead of 2 (quote texts that hold commas)"),
    ("no-text-column.tsv", b"sentence\tlabel\ngood\t1\n", ["--text-column", "text"],
     "{path}:1: no column 'text' in the header (sentence, label)"),
    ("column-index.tsv", b"sentence\tlabel\ngood\t1\n", ["--text-column", "5"],
     "{path}:1: no text column 5: the first row has 2 columns"),
    ("blank-table.tsv", b"sentence\tlabel\n\n\t1\n", [], "{path}: no texts in the file: every text is blank"),
])
def test_embed_stops_on_unusable_files(bad_input_folders, tmp_path, capsys, name, data, extra, message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = embed(capsys, bad_input_folders["cls"], path, tmp_path / "vectors.npy", *extra)
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_embed_failure_keeps_the_previous_output(bad_input_folders, tmp_path, capsys) -> None:
    out = tmp_path / "vectors.npy"
    assert embed(capsys, bad_input_folders["cls"], write(tmp_path / "good.txt", TEXT.encode()), out)[0] == 0
    before = out.read_bytes()
    bad = write(tmp_path / "bad.txt", TEXT.encode() * 50 + LATIN1)
    code, _, err = embed(capsys, bad_input_folders["cls"], bad, out)
    assert error_line(code, err) == f"{bad}:202: {INVALID_CONTINUATION}"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "vectors.npy"]


@pytest.mark.parametrize(("name", "encode"), [
    ("crlf.txt", lambda text: text.replace("\n", "\r\n").encode()),
    ("bom.txt", lambda text: b"\xef\xbb\xbf" + text.encode()),
    ("bom-crlf.tsv", lambda text: b"\xef\xbb\xbfsentence\tlabel\r\n" + "".join(
        f"{line}\t1\r\n" for line in text.splitlines() if line).encode()),
])
def test_embed_reads_crlf_and_bom_like_plain_lf(bad_input_folders, tmp_path, capsys, name, encode) -> None:
    code, out, _ = embed(capsys, bad_input_folders["cls"], write(tmp_path / name, encode(TEXT)), tmp_path / "vectors.npy")
    texts = TEXT.splitlines() if name.endswith(".txt") else [line for line in TEXT.splitlines() if line]
    assert code == 0 and f"embedded {len(texts)} texts" in out
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"), Encoder(bad_input_folders["cls"]).encode(texts), atol=2e-6)


def test_embed_reports_skipped_blank_table_lines(bad_input_folders, tmp_path, capsys) -> None:
    path = write(tmp_path / "rows.tsv", b"\nsentence\tlabel\n\ngood film\t1\n  \nbad film\t0\n\n")
    code, out, _ = embed(capsys, bad_input_folders["cls"], path, tmp_path / "vectors.npy")
    assert code == 0
    assert f"{path}: skipped 4 blank line(s) of the table" in out and "embedded 2 texts" in out
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"),
                               Encoder(bad_input_folders["cls"]).encode(["good film", "bad film"]), atol=2e-6)


@pytest.mark.slow
def test_embed_a_10_mb_single_line(bad_input_folders, tmp_path, capsys) -> None:
    phrase = "the film is wonderful . "
    path = write(tmp_path / "one-line.txt", phrase.encode() * (TEN_MB // len(phrase)) + b"\n")
    code, out, _ = embed(capsys, bad_input_folders["cls"], path, tmp_path / "vectors.npy")
    assert code == 0 and "embedded 1 texts" in out
    # Truncated to the model's 512 positions: the same vector as any text with the same first 510 pieces.
    expected = Encoder(bad_input_folders["cls"]).encode([phrase * 200])
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"), expected, atol=2e-6)


@pytest.mark.parametrize("pieces", [50, 70])  # fewer pieces than the model's 60 would embed garbage, more crash
def test_embed_with_a_swapped_tokenizer(bad_input_folders, tmp_path, capsys, pieces) -> None:
    model = tmp_path / "model"
    shutil.copytree(bad_input_folders["cls"], model)
    corpus = write_synthetic_corpus(tmp_path / "other.txt", documents=30)
    other = train_tokenizer([corpus], tmp_path / "other", vocab_size=pieces, lang="en")
    shutil.copy(tmp_path / "other" / "spiece.model", model / "spiece.model")
    capsys.readouterr()
    code, _, err = embed(capsys, model, bad_input_folders["corpus"], tmp_path / "vectors.npy")
    assert error_line(code, err) == (f"{model / 'spiece.model'}: the tokenizer has {other.vocab_size} pieces but "
                                     "the model's vocabulary is 60: use the tokenizer the model was trained with")
    assert not (tmp_path / "vectors.npy").exists()


# --- finetune, evaluate, predict (the cases test_finetune.py does not try) ---------------------------------------

POSITIVE = ("wonderful", "gripping", "beautiful", "moving", "brilliant")
TASK_NO_ROWS = "the file has no rows"


def sentiment_rows(count: int) -> list[str]:
    return [f"{text}\t{'positive' if any(w in text for w in POSITIVE) else 'negative'}"
            for text in movie_sentences(count)]


@pytest.fixture(scope="module")
def classifier(bad_input_folders, tmp_path_factory) -> dict[str, Path]:
    """A classifier fine-tuned for one step (enough for the readers), and its training file."""
    root = tmp_path_factory.mktemp("classifier")
    train = write(root / "train.tsv", ("sentence\tlabel\n" + "\n".join(sentiment_rows(64)) + "\n").encode())
    assert main([str(a) for a in ("finetune", "--task", "classification", "--model", bad_input_folders["mlm"], "--train",
                                  train, "--dev", train, "--out", root / "run", "--max-steps", 1, "--batch-size", 8)
                 ]) == 0
    return {"train": train, "model": root / "run" / "best"}


def task_command(command: str, classifier: dict[str, Path], bad_input_folders: dict[str, Path], path: Path,
                 out: Path) -> list[object]:
    """`command` reading `path` as its data file, writing under `out`."""
    if command == "finetune":
        return ["finetune", "--task", "classification", "--model", bad_input_folders["mlm"], "--train", path, "--dev",
                classifier["train"], "--out", out, "--max-steps", 1, "--batch-size", 8]
    if command == "evaluate":
        return ["evaluate", "--model", classifier["model"], "--data", path, "--output", out]
    return ["predict", "--model", classifier["model"], "--input", path, "--output", out]


@pytest.mark.parametrize("command", ["finetune", "evaluate", "predict"])
@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.tsv", b"", f"{{path}}: {TASK_NO_ROWS}"),
    ("whitespace.tsv", b"  \n\t\n\r\n", f"{{path}}: {TASK_NO_ROWS}"),
    ("image.tsv", PNG, "{path}:1: invalid UTF-8 (invalid start byte, byte 0x89); save the file as UTF-8"),
    ("latin1.tsv", "sentence\tlabel\nthe film\tnegative\ncaf\u00e9\tpositive\n".encode("latin-1"),
     "{path}:3: invalid UTF-8 (invalid continuation byte, byte 0xe9); save the file as UTF-8"),
])
def test_task_commands_stop_on_unusable_files(classifier, bad_input_folders, tmp_path, capsys, command, name, data,
                                              message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = cli(capsys, *task_command(command, classifier, bad_input_folders, path, tmp_path / "out.jsonl"))
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("command", ["finetune", "evaluate", "predict"])
def test_task_commands_stop_at_a_bad_row_or_skip_it_when_asked(classifier, bad_input_folders, tmp_path, capsys,
                                                               command) -> None:
    text = classifier["train"].read_text() + "the film\tis\tpositive\nno label here\n"
    path = write(tmp_path / "ragged.tsv", text.encode())
    code, _, err = cli(capsys, *task_command(command, classifier, bad_input_folders, path, tmp_path / "out.jsonl"))
    assert error_line(code, err) == f"{path}:66: 3 columns instead of 2 (a tab inside a text?)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.tsv"]
    code, out, err = cli(capsys, *task_command(command, classifier, bad_input_folders, path, tmp_path / "out.jsonl"),
                         "--skip-bad-rows")
    assert code == 0 and "Traceback" not in err
    assert (f"warning: {path}: skipped 2 rows: 1 with 3 columns instead of 2 (lines 66); "
            "1 with 1 columns instead of 2 (lines 67)\n") in err
    if command == "predict":
        assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 64
        assert f"wrote 64 predictions to {tmp_path / 'out.jsonl'} (skipped 2 bad rows)" in out
    elif command == "evaluate":
        assert json.loads((tmp_path / "out.jsonl").read_text())["skipped_rows"] == 2
    else:
        assert "64 training and 64 dev examples (skipped 2 bad rows)" in out


@pytest.mark.parametrize("command", ["embed", "search"])
def test_text_commands_stop_at_a_bad_row_or_skip_it_when_asked(bad_input_folders, tmp_path, capsys, command) -> None:
    path = write(tmp_path / "rows.tsv", b"sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n\xff\t1\nfine film\t1\n")
    out = tmp_path / ("vectors.npy" if command == "embed" else "index")
    args = (["embed", "--output", out] if command == "embed" else ["search", "build", "--index", out])
    args += ["--model", bad_input_folders["cls"], "--input", path]
    code, _, err = cli(capsys, *args)
    assert error_line(code, err) == f"{path}:3: 3 columns instead of 2 (a tab inside a text?)"
    assert not out.exists()
    code, stdout, err = cli(capsys, *args, "--skip-bad-rows")
    assert code == 0 and "(skipped 2 bad rows)" in stdout
    assert (f"warning: {path}: skipped 2 rows: 1 with 3 columns instead of 2 (lines 3); 1 with invalid UTF-8 "
            "(lines 4)") in err
    if command == "embed":
        np.testing.assert_allclose(np.load(out), Encoder(bad_input_folders["cls"]).encode(["good film", "fine film"]), atol=2e-6)


def test_evaluate_reads_crlf_and_bom_like_plain_lf(classifier, tmp_path, capsys) -> None:
    lf = classifier["train"].read_bytes()
    metrics = []
    for name, data in (("lf.tsv", lf), ("crlf.tsv", lf.replace(b"\n", b"\r\n")), ("bom.tsv", b"\xef\xbb\xbf" + lf)):
        code, out, _ = cli(capsys, "evaluate", "--model", classifier["model"], "--data", write(tmp_path / name, data))
        assert code == 0
        metrics.append({k: v for k, v in json.loads(out).items() if k != "data"})
    assert metrics[0]["examples"] == 64 and metrics[1] == metrics[0] and metrics[2] == metrics[0]


def test_evaluate_needs_labels_predict_does_not(classifier, tmp_path, capsys) -> None:
    texts = [row.split("\t")[0] for row in classifier["train"].read_text().splitlines()]
    path = write(tmp_path / "texts.tsv", ("\n".join(texts) + "\n").encode())  # the header row, without "label"
    code, _, err = cli(capsys, "evaluate", "--model", classifier["model"], "--data", path)
    assert error_line(code, err) == f"{path}: no label column -1 (columns: ['sentence'])"
    code, out, _ = cli(capsys, "predict", "--model", classifier["model"], "--input", path, "--output",
                       tmp_path / "p.jsonl")
    assert code == 0 and f"wrote 64 predictions to {tmp_path / 'p.jsonl'}" in out


def test_numeric_labels_against_a_model_trained_on_names(classifier, tmp_path, capsys) -> None:
    text = classifier["train"].read_text().replace("\tpositive", "\t1").replace("\tnegative", "\t0")
    path = write(tmp_path / "numeric.tsv", text.encode())
    code, _, err = cli(capsys, "evaluate", "--model", classifier["model"], "--data", path)
    assert error_line(code, err).startswith(f"{path}:2: unknown label '")
    assert err.rstrip().endswith("the training labels are ['negative', 'positive']")


def test_ner_tag_count_differs_from_token_count(bad_input_folders, tmp_path, capsys) -> None:
    train = write(tmp_path / "train.bmes", "我 是 人\tO O S-NAME\n他 好\tO\n".encode())
    dev = write(tmp_path / "dev.bmes", "我 是 人\tO O S-NAME\n".encode())
    code, _, err = cli(capsys, "finetune", "--task", "ner", "--model", bad_input_folders["mlm"], "--train", train, "--dev", dev,
                       "--out", tmp_path / "run", "--max-steps", 1)
    assert error_line(code, err) == f"{train}:2: 1 tags for 2 tokens"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_task_commands_with_a_swapped_tokenizer(classifier, bad_input_folders, tmp_path, capsys, command) -> None:
    model = tmp_path / "model"
    shutil.copytree(classifier["model"], model)
    train_tokenizer([write_synthetic_corpus(tmp_path / "other.txt", documents=30)], tmp_path / "other",
                    vocab_size=70, lang="en")
    shutil.copy(tmp_path / "other" / "spiece.model", model / "spiece.model")
    capsys.readouterr()
    code, _, err = cli(capsys, *task_command(command, {**classifier, "model": model}, bad_input_folders, classifier["train"],
                                             tmp_path / "out.jsonl"))
    assert error_line(code, err) == f"{model}: the tokenizer has 70 pieces but the model expects 60"
    assert not (tmp_path / "out.jsonl").exists()


def test_predict_failure_keeps_the_previous_output(classifier, tmp_path, capsys) -> None:
    out = tmp_path / "p.jsonl"
    assert cli(capsys, "predict", "--model", classifier["model"], "--input", classifier["train"], "--output", out)[0] == 0
    before = out.read_bytes()
    bad = write(tmp_path / "bad.tsv", classifier["train"].read_bytes() + "caf\u00e9\tpositive\n".encode("latin-1"))
    code, _, err = cli(capsys, "predict", "--model", classifier["model"], "--input", bad, "--output", out)
    assert error_line(code, err).startswith(f"{bad}:66: invalid UTF-8")
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "p.jsonl"]


@pytest.mark.slow
def test_predict_a_10_mb_row(classifier, tmp_path, capsys) -> None:
    long_row = "the film is wonderful . " * (TEN_MB // 24)
    path = write(tmp_path / "long.tsv", f"sentence\tlabel\nboring\tnegative\n{long_row}\tpositive\n".encode())
    code, out, _ = cli(capsys, "predict", "--model", classifier["model"], "--input", path, "--output",
                       tmp_path / "p.jsonl")
    assert code == 0 and "wrote 2 predictions" in out
    assert [json.loads(line)["line"] for line in (tmp_path / "p.jsonl").read_text().splitlines()] == [2, 3]
