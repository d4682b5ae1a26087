"""Search index: exact top-k equal to a brute-force ranking, line ids kept, the model's identity enforced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import build_model_folders, movie_sentences

import albertkit.inference.search as search_module
from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.inference.search import SearchIndex, build_index, model_identity, query_index


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_model_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def index_dir(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("index")
    docs = root / "docs.txt"
    lines = movie_sentences(60, seed=1)
    lines[10] = lines[20] = "   "  # blank rows are skipped; the others keep their line numbers
    docs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert build_index(folders["cls"], docs, root / "idx", batch_size=8, chunk_size=16) == 58
    return root / "idx"


def test_index_files_and_identity(index_dir: Path, folders: dict[str, Path]) -> None:
    meta = json.loads((index_dir / "index.json").read_text())
    assert meta["count"] == 58 and meta["dimension"] == 64 and meta["pooling"] == "mean"
    assert meta["model_sha256"] == model_identity(folders["cls"]) != model_identity(folders["mlm"])
    rows = [json.loads(line) for line in (index_dir / "texts.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [n for n in range(1, 61) if n not in (11, 21)]
    vectors = np.load(index_dir / "vectors.npy")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[:3], Encoder(folders["cls"]).encode([r["text"] for r in rows[:3]]), atol=2e-6)


def test_top_k_equals_brute_force(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = SearchIndex(index_dir)
    queries = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    brute = queries @ np.load(index_dir / "vectors.npy").T
    expected_rows = np.argsort(-brute, axis=1, kind="stable")[:, :7]
    monkeypatch.setattr(search_module, "SCORE_CHUNK", 5)  # many chunks: the running merge must stay exact
    scores, rows = index.top_k(queries, 7)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected_rows, 1), atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(brute, rows, 1), scores, atol=1e-6)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert index.top_k(queries[:1], 500)[1].shape == (1, 58)  # k beyond the index: every row once
    with pytest.raises(UserError, match="k must be at least 1"):
        index.top_k(queries, 0)


def test_query_finds_an_indexed_text_first(index_dir: Path, folders: dict[str, Path]) -> None:
    index = SearchIndex(index_dir)
    line, text = index.texts[7]
    hits = query_index(index_dir, [text, "boring"], k=3)
    assert len(hits) == 2 and [len(h) for h in hits] == [3, 3]
    assert (hits[0][0].line, hits[0][0].text) == (line, text)
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_query_with_another_model_is_refused(index_dir: Path, folders: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="the index was built with a different model"):
        query_index(index_dir, ["x"], model_dir=folders["mlm"])
    assert main(["search", "query", "--index", str(index_dir), "--model", str(folders["ner"]), "boring"]) == 2
    assert "was built with a different model" in capsys.readouterr().err
    with pytest.raises(UserError, match="not an index folder"):
        SearchIndex(folders["cls"])


def test_cli_build_query_and_safe_replace(folders: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "idx"
    assert main(["search", "build", "--model", str(folders["cls"]), "--input", str(folders["corpus"]),
                 "--index", str(index)]) == 0
    assert main(["search", "build", "--model", str(folders["cls"]), "--input", str(folders["corpus"]),
                 "--index", str(index), "--pooling", "cls"]) == 0  # rebuilding replaces the old index
    assert json.loads((index / "index.json").read_text())["pooling"] == "cls"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    capsys.readouterr()
    assert main(["search", "query", "--index", str(index), "the film is wonderful .", "-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["query"] == "the film is wonderful ." and len(result["hits"]) == 2
    assert set(result["hits"][0]) == {"score", "line", "text"}
    with pytest.raises(UserError, match="folder is not empty and holds no search index"):
        build_index(folders["cls"], folders["corpus"], folders["ner"])
