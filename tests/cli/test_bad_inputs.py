"""The bad-input matrix of `pretrain prepare`, `pretrain run --config` and `embed`, run through the CLI.

Each bad input either is processed, with the skipped lines counted and printed, or stops with exit status 2 and
one stderr line naming the file (and line); never a traceback, and never an output that looks complete: after a
failure the output is absent, or the previous one is intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from builders import build_model_folders, movie_sentences
from conftest import write_synthetic_corpus

from albertkit.cli import main
from albertkit.data.shards import INDEX_NAME
from albertkit.inference.embed import Encoder
from albertkit.modeling.config import AlbertConfig
from albertkit.tokenization.sentencepiece import AlbertTokenizer
from albertkit.tokenization.training import train_tokenizer
from albertkit.train.pretrain import PretrainSettings
from albertkit.train.settings import load_settings

TEXT = ("The film is good. It was fun to watch.\nThe cast is great.\n\n"
        "A second document. It has two sentences.\n")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + np.random.default_rng(0).bytes(4096)
LATIN1 = "The film was fine.\nCaf\u00e9 cr\u00e8me was better.\n".encode("latin-1")
TEN_MB = 10_000_000
INVALID_START = "invalid UTF-8 (invalid start byte); save the file as UTF-8"
INVALID_CONTINUATION = "invalid UTF-8 (invalid continuation byte); save the file as UTF-8"
NOT_GZIP = "corrupt or truncated gzip file (Not a gzipped file (b'Th'))"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 60-piece tokenizer, a classifier using it, and a model folder whose positions end at 64."""
    folders = build_model_folders(tmp_path_factory.mktemp("models"))
    short = folders["corpus"].parent / "short-positions"
    AlbertConfig.from_preset("tiny", max_position_embeddings=64).save_pretrained(short)
    return {**folders, "tokenizer": folders["corpus"].parent / "tokenizer", "short": short}


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(code: int, err: str) -> str:
    """The one error line of a failed command (progress bars may precede it on stderr; a traceback never)."""
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("albertkit:")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    return lines[0].removeprefix("albertkit: error: ")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def prepare(capsys: pytest.CaptureFixture[str], folders: dict[str, Path], source: Path, out: Path,
            *extra: object) -> tuple[int, str, str]:
    return cli(capsys, "pretrain", "prepare", "--input", source, "--tokenizer", folders["tokenizer"], "--out", out,
               "--workers", 1, "--max-seq-length", 32, *extra)


def embed(capsys: pytest.CaptureFixture[str], model: Path, source: Path, out: Path,
          *extra: object) -> tuple[int, str, str]:
    return cli(capsys, "embed", "--model", model, "--input", source, "--output", out, *extra)


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
def test_prepare_stops_on_unusable_files(folders, tmp_path, capsys, name, data, message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = prepare(capsys, folders, path, tmp_path / "out")
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no temporary folder


def test_prepare_failure_keeps_the_previous_output(folders, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert prepare(capsys, folders, write(tmp_path / "good.txt", TEXT.encode()), out)[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = write(tmp_path / "bad.txt", TEXT.encode() * 50 + LATIN1)  # fails after 200 good lines were read
    code, _, err = prepare(capsys, folders, bad, out)
    assert error_line(code, err) == f"{bad}:202: {INVALID_CONTINUATION}"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "out"]


def test_prepare_reports_skipped_lines(folders, tmp_path, capsys) -> None:
    path = write(tmp_path / "skips.txt", b"The film is good. It was fun.\n----\n= = Cast = =\nx\nThe cast is great.\n")
    code, out, _ = prepare(capsys, folders, path, tmp_path / "out")
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
def test_prepare_reads_crlf_and_bom_like_plain_lf(folders, tmp_path, capsys, name, encode) -> None:
    assert prepare(capsys, folders, write(tmp_path / "lf.txt", TEXT.encode()), tmp_path / "lf")[0] == 0
    code, out, _ = prepare(capsys, folders, write(tmp_path / name, encode(TEXT)), tmp_path / "other")
    assert code == 0 and "prepared 2 documents (en 2), 5 sentences" in out and "lines skipped: none" in out
    for split in ("train", "valid"):
        for shard in sorted((tmp_path / "lf" / split).iterdir()):
            assert (tmp_path / "other" / split / shard.name).read_bytes() == shard.read_bytes(), shard


@pytest.mark.slow
def test_prepare_a_10_mb_single_line(folders, tmp_path, capsys) -> None:
    sentence = "The film is good."
    repeats = TEN_MB // (len(sentence) + 1)
    path = write(tmp_path / "one-line.txt", f"{sentence} ".encode() * repeats + b"\n")
    code, out, _ = prepare(capsys, folders, path, tmp_path / "out")
    assert code == 0
    tokens = repeats * len(AlbertTokenizer.from_pretrained(folders["tokenizer"]).encode(sentence))
    assert f"prepared 1 documents (en 1), {repeats:,} sentences, {tokens:,} tokens" in out


def test_prepare_length_above_the_models_positions(folders, tmp_path, capsys) -> None:
    source = write(tmp_path / "text.txt", TEXT.encode())
    code, _, err = prepare(capsys, folders, source, tmp_path / "out", "--config", folders["short"],
                           "--max-seq-length", 128)
    assert error_line(code, err) == (f"{folders['short']}: max_seq_length 128 is above the model's "
                                     "max_position_embeddings 64")
    code, _, err = prepare(capsys, folders, source, tmp_path / "out", "--max-seq-length", 1024)
    assert error_line(code, err) == "max_seq_length must be between 5 and 512, not 1024"
    assert not (tmp_path / "out").exists()


def test_prepare_never_replaces_a_folder_of_other_files(folders, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    write(out / "notes.txt", b"keep me")
    code, _, err = prepare(capsys, folders, write(tmp_path / "text.txt", TEXT.encode()), out)
    assert error_line(code, err) == f"{out}: folder is not empty and holds no prepared data: choose a new or empty folder"
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_bytes() == b"keep me"


# --- pretrain run --config --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(folders, tmp_path_factory) -> Path:
    from albertkit.data.prepare import prepare_pretraining_data

    root = tmp_path_factory.mktemp("prepared")
    write(root / "text.txt", TEXT.encode())
    prepare_pretraining_data(root / "text.txt", folders["tokenizer"], root / "data", max_seq_length=32, workers=1)
    return root / "data"


@pytest.mark.parametrize(("yaml", "message"), [
    ("learning_rate: 0.1\nlearnig_rate: 0.2\n", "{path}:2: unknown config key 'learnig_rate'; did you mean "
     "'learning_rate'?"),
    ("lr: 0.1\n", "{path}:1: unknown config key 'lr'; known keys: adam_epsilon, batch_size, "),
    ("model:\n  num_hidden_layers: 2\n  hiden_size: 64\n",
     "{path}:3: unknown model key 'hiden_size'; did you mean 'hidden_size'?"),
    ("learning_rate: fast\n", "{path}:1: learning_rate must be float, not 'fast'"),
    ("\nwarmup_steps: 10.5\n", "{path}:2: warmup_steps must be int or null, not 10.5"),
    ("model: 64\n", "{path}:1: model must be dict, not 64"),
    ("optimizer: sgd\n", "{path}:1: optimizer must be one of lamb, adamw, not 'sgd'"),
    ("batch_size: 0\n", "{path}:1: batch_size must be at least 1, not 0"),
    ("seed: 1\nseed: 2\n", "{path}:2: key 'seed' appears twice (lines 1 and 2)"),
    ("batch_size: [1, 2\n", "{path}:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("- a list\n- not a mapping\n", "{path}: a config file must be a mapping of keys to values"),
])
def test_pretrain_run_config_mistakes(prepared, tmp_path, capsys, yaml, message) -> None:
    config = write(tmp_path / "bad.yaml", yaml.encode())
    code, _, err = cli(capsys, "pretrain", "run", "--data", prepared, "--out", tmp_path / "run", "--preset", "tiny",
                       "--max-steps", 1, "--config", config)
    assert error_line(code, err).startswith(message.format(path=config))
    assert not (tmp_path / "run").exists()


def test_yaml_numbers_without_a_dot_are_floats(tmp_path) -> None:
    # YAML 1.1 (PyYAML) reads 1e-4 as a string; a float field takes it as the number it means.
    config = write(tmp_path / "lr.yaml", b"learning_rate: 1e-4\nwarmup_ratio: 0\n")
    settings = load_settings(PretrainSettings, config)
    assert (settings.learning_rate, settings.warmup_ratio) == (1e-4, 0.0)
    assert isinstance(settings.warmup_ratio, float)


# --- embed ------------------------------------------------------------------------------------------------------

TABLE_TAB = "(a tab inside a text?)"


@pytest.mark.parametrize(("name", "data", "extra", "message"), [
    ("empty.txt", b"", [], "{path}: no texts in the file"),
    ("whitespace.txt", b"  \n\t\n \r\n", [], "{path}: no texts in the file: every text is blank"),
    ("image.png", PNG, [], f"{{path}}:1: {INVALID_START}"),
    ("latin1.txt", LATIN1, [], f"{{path}}:2: {INVALID_CONTINUATION}"),
    ("mislabelled.txt.gz", TEXT.encode(), [], f"{{path}}:1: {NOT_GZIP}"),
    ("extra-column.tsv", b"sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n", [],
     f"{{path}}:3: line has 3 columns but line 1 has 2 {TABLE_TAB}"),
    ("missing-column.tsv", b"sentence\tlabel\ngood film\t1\nno label\n", [],
     f"{{path}}:3: line has 1 columns but line 1 has 2 {TABLE_TAB}"),
    ("short-row.tsv", b"id\tsentence\n1\tgood film\n2\n", [], "{path}:3: line has 1 columns, text column 1 is missing"),
    ("commas.csv", b'id,body\n1,"one, two"\n2,three, four\n', [],
     "{path}:3: line has 3 columns but line 1 has 2 (quote texts that hold commas)"),
    ("no-text-column.tsv", b"sentence\tlabel\ngood\t1\n", ["--text-column", "text"],
     "{path}:1: no column 'text' in the header (sentence, label)"),
    ("column-index.tsv", b"sentence\tlabel\ngood\t1\n", ["--text-column", "5"],
     "{path}:1: line has 2 columns, text column 5 is missing"),
    ("blank-table.tsv", b"sentence\tlabel\n\n\t1\n", [], "{path}: no texts in the file: every text is blank"),
])
def test_embed_stops_on_unusable_files(folders, tmp_path, capsys, name, data, extra, message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = embed(capsys, folders["cls"], path, tmp_path / "vectors.npy", *extra)
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_embed_failure_keeps_the_previous_output(folders, tmp_path, capsys) -> None:
    out = tmp_path / "vectors.npy"
    assert embed(capsys, folders["cls"], write(tmp_path / "good.txt", TEXT.encode()), out)[0] == 0
    before = out.read_bytes()
    bad = write(tmp_path / "bad.txt", TEXT.encode() * 50 + LATIN1)
    code, _, err = embed(capsys, folders["cls"], bad, out)
    assert error_line(code, err) == f"{bad}:202: {INVALID_CONTINUATION}"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "vectors.npy"]


@pytest.mark.parametrize(("name", "encode"), [
    ("crlf.txt", lambda text: text.replace("\n", "\r\n").encode()),
    ("bom.txt", lambda text: b"\xef\xbb\xbf" + text.encode()),
    ("bom-crlf.tsv", lambda text: b"\xef\xbb\xbfsentence\tlabel\r\n" + "".join(
        f"{line}\t1\r\n" for line in text.splitlines() if line).encode()),
])
def test_embed_reads_crlf_and_bom_like_plain_lf(folders, tmp_path, capsys, name, encode) -> None:
    code, out, _ = embed(capsys, folders["cls"], write(tmp_path / name, encode(TEXT)), tmp_path / "vectors.npy")
    texts = TEXT.splitlines() if name.endswith(".txt") else [line for line in TEXT.splitlines() if line]
    assert code == 0 and f"embedded {len(texts)} texts" in out
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"), Encoder(folders["cls"]).encode(texts), atol=2e-6)


def test_embed_reports_skipped_blank_table_lines(folders, tmp_path, capsys) -> None:
    path = write(tmp_path / "rows.tsv", b"\nsentence\tlabel\n\ngood film\t1\n  \nbad film\t0\n\n")
    code, out, _ = embed(capsys, folders["cls"], path, tmp_path / "vectors.npy")
    assert code == 0
    assert f"{path}: skipped 4 blank line(s) of the table" in out and "embedded 2 texts" in out
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"),
                               Encoder(folders["cls"]).encode(["good film", "bad film"]), atol=2e-6)


@pytest.mark.slow
def test_embed_a_10_mb_single_line(folders, tmp_path, capsys) -> None:
    phrase = "the film is wonderful . "
    path = write(tmp_path / "one-line.txt", phrase.encode() * (TEN_MB // len(phrase)) + b"\n")
    code, out, _ = embed(capsys, folders["cls"], path, tmp_path / "vectors.npy")
    assert code == 0 and "embedded 1 texts" in out
    # Truncated to the model's 512 positions: the same vector as any text with the same first 510 pieces.
    expected = Encoder(folders["cls"]).encode([phrase * 200])
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"), expected, atol=2e-6)


@pytest.mark.parametrize("pieces", [50, 70])  # fewer pieces than the model's 60 would embed garbage, more crash
def test_embed_with_a_swapped_tokenizer(folders, tmp_path, capsys, pieces) -> None:
    model = tmp_path / "model"
    shutil.copytree(folders["cls"], model)
    corpus = write_synthetic_corpus(tmp_path / "other.txt", documents=30)
    other = train_tokenizer([corpus], tmp_path / "other", vocab_size=pieces, lang="en")
    shutil.copy(tmp_path / "other" / "spiece.model", model / "spiece.model")
    capsys.readouterr()
    code, _, err = embed(capsys, model, folders["corpus"], tmp_path / "vectors.npy")
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
def classifier(folders, tmp_path_factory) -> dict[str, Path]:
    """A classifier fine-tuned for one step (enough for the readers), and its training file."""
    root = tmp_path_factory.mktemp("classifier")
    train = write(root / "train.tsv", ("sentence\tlabel\n" + "\n".join(sentiment_rows(64)) + "\n").encode())
    assert main([str(a) for a in ("finetune", "--task", "classification", "--model", folders["mlm"], "--train",
                                  train, "--dev", train, "--out", root / "run", "--max-steps", 1, "--batch-size", 8)
                 ]) == 0
    return {"train": train, "model": root / "run" / "best"}


def task_command(command: str, classifier: dict[str, Path], folders: dict[str, Path], path: Path,
                 out: Path) -> list[object]:
    """`command` reading `path` as its data file, writing under `out`."""
    if command == "finetune":
        return ["finetune", "--task", "classification", "--model", folders["mlm"], "--train", path, "--dev",
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
def test_task_commands_stop_on_unusable_files(classifier, folders, tmp_path, capsys, command, name, data,
                                              message) -> None:
    path = write(tmp_path / name, data)
    code, _, err = cli(capsys, *task_command(command, classifier, folders, path, tmp_path / "out.jsonl"))
    assert error_line(code, err) == message.format(path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("command", ["finetune", "evaluate", "predict"])
def test_task_commands_skip_rows_with_other_column_counts_and_say_so(classifier, folders, tmp_path, capsys,
                                                                      command) -> None:
    text = classifier["train"].read_text() + "the film\tis\tpositive\nno label here\n"
    path = write(tmp_path / "ragged.tsv", text.encode())
    code, _, err = cli(capsys, *task_command(command, classifier, folders, path, tmp_path / "out.jsonl"))
    assert code == 0 and "Traceback" not in err
    assert (f"warning: {path}: skipped 2 rows: 1 with 3 columns instead of 2 (lines 66); "
            "1 with 1 columns instead of 2 (lines 67)\n") in err
    if command == "predict":
        assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 64


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


def test_ner_tag_count_differs_from_token_count(folders, tmp_path, capsys) -> None:
    train = write(tmp_path / "train.bmes", "我 是 人\tO O S-NAME\n他 好\tO\n".encode())
    dev = write(tmp_path / "dev.bmes", "我 是 人\tO O S-NAME\n".encode())
    code, _, err = cli(capsys, "finetune", "--task", "ner", "--model", folders["mlm"], "--train", train, "--dev", dev,
                       "--out", tmp_path / "run", "--max-steps", 1)
    assert error_line(code, err) == f"{train}:2: 1 tags for 2 tokens"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_task_commands_with_a_swapped_tokenizer(classifier, folders, tmp_path, capsys, command) -> None:
    model = tmp_path / "model"
    shutil.copytree(classifier["model"], model)
    train_tokenizer([write_synthetic_corpus(tmp_path / "other.txt", documents=30)], tmp_path / "other",
                    vocab_size=70, lang="en")
    shutil.copy(tmp_path / "other" / "spiece.model", model / "spiece.model")
    capsys.readouterr()
    code, _, err = cli(capsys, *task_command(command, {**classifier, "model": model}, folders, classifier["train"],
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
