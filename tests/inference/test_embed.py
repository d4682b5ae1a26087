"""Encoder.encode and embed_file: pooling equal to a plain forward pass, order kept, streaming, atomic output.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import build_model_folders

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder, embed_file, iter_input_texts


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_model_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def encoder(folders: dict[str, Path]) -> Encoder:
    return Encoder(folders["cls"])


TEXTS = ["the film is wonderful .", "boring", "", "this movie was dull from start to finish despite the cast .",
         "our hero", "the music remains moving at times ."]


def reference_pooling(encoder: Encoder, text: str, pooling: str) -> torch.Tensor:
    """One text alone through the plain (padded, unbatched) forward pass."""
    ids = torch.from_numpy(encoder.tokenize([text])[0])[None]
    with torch.no_grad():
        out = encoder.albert(ids)
    return {"mean": out.last_hidden_state[0].mean(0), "cls": out.last_hidden_state[0, 0],
            "pooler": out.pooler_output[0]}[pooling]


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_encode_equals_one_text_at_a_time(encoder: Encoder, pooling: str) -> None:
    raw = encoder.encode(TEXTS, batch_size=4, pooling=pooling, normalize=False)
    unit = encoder.encode(TEXTS, batch_size=4, pooling=pooling)
    assert raw.shape == (len(TEXTS), 64) and raw.dtype == np.float32
    for i, text in enumerate(TEXTS):  # row i is text i although batches were sorted by length
        expected = reference_pooling(encoder, text, pooling).numpy()
        np.testing.assert_allclose(raw[i], expected, atol=2e-6)
        np.testing.assert_allclose(unit[i], expected / np.linalg.norm(expected), atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)


def test_batch_size_does_not_change_embeddings(encoder: Encoder) -> None:
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=1), encoder.encode(TEXTS, batch_size=64), atol=2e-6)
    assert encoder.encode([]).shape == (0, 64)
    np.testing.assert_array_equal(encoder.encode("our hero"), encoder.encode(["our hero"]))


def test_long_text_is_truncated_to_max_positions(folders: dict[str, Path]) -> None:
    encoder = Encoder(folders["cls"], max_length=16)
    short = encoder.tokenizer.encode("boring")
    assert [len(s) for s in encoder.tokenize(["the film " * 50, "boring"])] == [16, len(short) + 2]
    assert np.isfinite(encoder.encode(["the film " * 50])).all()


def test_bad_pooling_and_pooler_without_pooler(folders: dict[str, Path], encoder: Encoder) -> None:
    with pytest.raises(UserError, match="unknown pooling 'max'"):
        encoder.encode(["x"], pooling="max")
    with pytest.raises(UserError, match="AlbertForMaskedLM has no pooler layer"):
        Encoder(folders["mlm"]).encode(["x"], pooling="pooler")


def test_input_columns(tmp_path: Path) -> None:
    tsv = tmp_path / "data.tsv"
    tsv.write_text("sentence\tlabel\ngood film\t1\nbad \"film\t0\n\n", encoding="utf-8")
    assert list(iter_input_texts(tsv)) == [(2, "good film"), (3, 'bad "film')]
    assert list(iter_input_texts(tsv, "label")) == [(2, "1"), (3, "0")]
    assert list(iter_input_texts(tsv, 1)) == [(1, "label"), (2, "1"), (3, "0")]  # an index: no header
    csv_file = tmp_path / "data.csv"
    csv_file.write_text('id,body\n1,"one, two"\n2\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"data.csv:3: 1 columns instead of 2 \(quote texts that hold commas\)"):
        list(iter_input_texts(csv_file, "body"))
    with pytest.raises(UserError, match=r"data.csv:1: no column 'text' in the header \(id, body\)"):
        list(iter_input_texts(csv_file, "text"))
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert list(iter_input_texts(jsonl)) == [(1, "a"), (3, "b")]


def test_embed_file_streams_in_chunks_and_keeps_rows(folders: dict[str, Path], encoder: Encoder, tmp_path: Path) -> None:
    data = tmp_path / "reviews.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in TEXTS * 3), encoding="utf-8")
    out = tmp_path / "out" / "vectors.npy"
    assert embed_file(folders["cls"], data, out, batch_size=2, chunk_size=5) == 18
    vectors = np.load(out)
    assert vectors.shape == (18, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode(TEXTS * 3), atol=2e-6)
    assert sorted(p.name for p in out.parent.iterdir()) == ["vectors.npy"]  # no temp file left


def test_failed_embed_leaves_no_output(folders: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\n\xff\xfe not utf-8\n")
    out = tmp_path / "out.npy"
    with pytest.raises(UserError, match=r"bad.txt:3: invalid UTF-8"):
        embed_file(folders["cls"], bad, out)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="empty.txt: no texts in the file"):
        embed_file(folders["cls"], empty, out)
    with pytest.raises(UserError, match=r"out.csv: output must end in .npy or .parquet"):
        embed_file(folders["cls"], folders["corpus"], tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "empty.txt"]


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_says_what_to_install(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs pyarrow: pip install pyarrow"):
        embed_file(folders["cls"], folders["corpus"], tmp_path / "out.parquet")


def test_parquet_output(folders: dict[str, Path], encoder: Encoder, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    assert embed_file(folders["cls"], folders["corpus"], tmp_path / "out.parquet", chunk_size=150) == 400
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("row").to_pylist() == list(range(400))
    texts = folders["corpus"].read_text(encoding="utf-8").splitlines()
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), encoder.encode(texts), atol=2e-6)


def test_cli_embed(folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus.npy"
    assert main(["embed", "--model", str(folders["cls"]), "--input", str(folders["corpus"]), "--output", str(out),
                 "--pooling", "cls", "--batch-size", "64"]) == 0
    assert "embedded 400 texts" in capsys.readouterr().out
    assert np.load(out).shape == (400, 64)
    assert main(["embed", "--model", str(folders["cls"]), "--input", str(tmp_path / "missing.txt"),
                 "--output", str(out)]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err


def test_token_budget_batches_give_the_same_embeddings(folders: dict[str, Path]) -> None:
    by_count = Encoder(folders["cls"], device="cpu").encode(TEXTS * 5, batch_size=3)
    budgeted = Encoder(folders["cls"], device="cpu", max_tokens=40)
    assert budgeted.max_tokens == 40 and Encoder(folders["cls"], device="cpu").max_tokens == 0
    np.testing.assert_allclose(budgeted.encode(TEXTS * 5), by_count, atol=2e-6)
    with pytest.raises(UserError, match=r"max tokens must be at least 0 \(0: batches of batch_size texts\), got -1"):
        Encoder(folders["cls"], device="cpu", max_tokens=-1)


def test_bf16_autocast_is_close_to_fp32(folders: dict[str, Path]) -> None:
    fp32 = Encoder(folders["cls"], device="cpu").encode(TEXTS)
    bf16 = Encoder(folders["cls"], device="cpu", precision="bf16")
    assert bf16.amp_dtype is torch.bfloat16
    vectors = bf16.encode(TEXTS)
    assert vectors.dtype == np.float32
    cosines = (vectors * fp32).sum(axis=1)
    assert cosines.min() > 0.995, cosines  # bf16 keeps 8 bits of mantissa: close, not equal
