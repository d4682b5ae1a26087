"""Neighbour classification: the vote, labels stored by `search build --label-column`, metrics, refusals;
and `albertkit similarity`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from builders import build_model_folders, movie_sentences

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder, text_similarity
from albertkit.inference.neighbours import classify_by_neighbours, vote
from albertkit.inference.search import SearchIndex, build_index

POSITIVE = ("wonderful", "gripping", "beautiful", "moving", "brilliant")


def labelled(texts: list[str]) -> str:
    return "sentence\tlabel\n" + "".join(f"{t}\t{'pos' if any(a in t for a in POSITIVE) else 'neg'}\n" for t in texts)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("knn")
    folders = build_model_folders(root / "models")
    (root / "train.tsv").write_text(labelled(movie_sentences(80, seed=1)), encoding="utf-8")
    (root / "dev.tsv").write_text(labelled(movie_sentences(30, seed=2)), encoding="utf-8")
    assert build_index(folders["cls"], root / "train.tsv", root / "index", label_column="label") == 80
    return {"model": folders["cls"], "mlm": folders["mlm"], "root": root, "index": root / "index"}


def test_vote_majority_weighted_and_ties() -> None:
    assert vote(["a", "b", "b"], [0.9, 0.5, 0.4]) == "b"
    assert vote(["a", "b", "b"], [0.9, 0.4, 0.4], "weighted") == "a"  # 0.9 > 0.8
    assert vote(["a", "b"], [0.5, 0.6]) == "b"  # a tie in count goes to the larger similarity
    assert vote(["a", "b"], [0.5, 0.5]) == "a"  # then to the nearer neighbour
    with pytest.raises(UserError, match="unknown vote 'median'"):
        vote(["a"], [1.0], "median")


def test_index_stores_labels(setup: dict[str, Path]) -> None:
    index = SearchIndex(setup["index"])
    assert index.meta["label_column"] == "label" and sum(index.meta["labels"].values()) == 80
    assert index.labels[:3] == [json.loads(r)["label"] for r in
                                (setup["index"] / "texts.jsonl").read_text().splitlines()[:3]]


def test_classify_equals_a_brute_force_vote(setup: dict[str, Path], tmp_path: Path) -> None:
    root = setup["root"]
    result = classify_by_neighbours(setup["index"], root / "dev.tsv", k=5, output=tmp_path / "p.jsonl")
    index = SearchIndex(setup["index"])
    dev = [line.split("\t") for line in (root / "dev.tsv").read_text().splitlines()[1:]]
    scores = Encoder(setup["model"]).encode([t for t, _ in dev]) @ np.load(setup["index"] / "vectors.npy").T
    nearest = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    expected = [vote([index.labels[j] for j in row], scores[i, row]) for i, row in enumerate(nearest)]
    accuracy = np.mean([e == label for e, (_, label) in zip(expected, dev, strict=True)])
    assert result["examples"] == 30 and result["k"] == 5 and result["accuracy"] == pytest.approx(accuracy)
    most_frequent = Counter(index.labels).most_common(1)[0][0]
    assert result["majority_class_accuracy"] == pytest.approx([label for _, label in dev].count(most_frequent) / 30)
    records = [json.loads(r) for r in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in records] == expected and records[0]["line"] == 2
    assert len(records[0]["neighbours"]) == 5


def test_a_copy_of_the_index_texts_is_classified_perfectly_with_k1(setup: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy.tsv"
    copy.write_text((setup["root"] / "train.tsv").read_text(), encoding="utf-8")
    result = classify_by_neighbours(setup["index"], copy, k=1)
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0


def test_knn_command_and_refusals(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = setup["root"]
    assert main(["knn-classify", "--index", str(setup["index"]), "--input", str(root / "dev.tsv"), "-k", "3",
                 "--vote", "weighted"]) == 0
    assert json.loads(capsys.readouterr().out)["vote"] == "weighted"
    assert main(["knn-classify", "--index", str(setup["index"]), "--input", str(root / "train.tsv")]) == 2
    assert "every text would find itself" in capsys.readouterr().err
    build_index(setup["model"], root / "dev.tsv", tmp_path / "plain")
    with pytest.raises(UserError, match="the index has no labels: build it with"):
        classify_by_neighbours(tmp_path / "plain", root / "train.tsv")
    with pytest.raises(UserError, match="built with a different model"):
        classify_by_neighbours(setup["index"], root / "dev.tsv", model_dir=setup["mlm"])
    blank = tmp_path / "blank.tsv"
    blank.write_text("sentence\tlabel\nthe film is dull .\tneg\nthe film is moving .\t \n", encoding="utf-8")
    with pytest.raises(UserError, match=r"blank.tsv:3: blank label"):
        classify_by_neighbours(setup["index"], blank)
    with pytest.raises(UserError, match=r"blank.tsv:3: blank label"):
        build_index(setup["model"], blank, tmp_path / "bad", label_column="label")


def test_similarity(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = "the film is wonderful .", "the plot was dull at times ."
    vectors = Encoder(setup["model"]).encode([a, b])
    assert text_similarity(setup["model"], a, b) == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-6)
    assert text_similarity(setup["model"], a, a) == pytest.approx(1.0, abs=1e-6)
    assert main(["similarity", "--model", str(setup["model"]), a, b, "--pooling", "cls"]) == 0
    cls = Encoder(setup["model"]).encode([a, b], pooling="cls")
    assert capsys.readouterr().out.strip() == f"{float(cls[0] @ cls[1]):.4f}"
    assert main(["similarity", "--model", str(setup["model"]), a, "  "]) == 2
    assert capsys.readouterr().err.strip() == "albertkit: error: text 2 is blank"
