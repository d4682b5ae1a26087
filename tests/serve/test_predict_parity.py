"""`albertkit predict` and `albertkit serve` give the same answers for the same model and inputs, task by task:
both go through the one Predictor (inference/predictor.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import NER_LABELS, TINY, build_model_folders, movie_sentences
from fastapi.testclient import TestClient

from albertkit.inference.predict import predict_file
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.folder import write_model_folder
from albertkit.modeling.model import HEADS
from albertkit.serve import create_app
from albertkit.tasks.base import get_task
from albertkit.tasks.spec import TaskSpec
from albertkit.tokenization.loading import load_tokenizer

TEXTS = movie_sentences(6, seed=3) + ["boring", "our hero"]
# 24 words: longer than max_seq_length 16, so NER runs it as overlapping windows.
LONG = "the film is wonderful . our hero remains moving at times . this movie was dull from start to finish despite the cast ."


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folders = build_model_folders(tmp_path_factory.mktemp("parity"))
    return folders["cls"].parent


def task_folder(root: Path, spec: TaskSpec) -> Path:
    """A randomly initialised model of the task's head, saved as `albertkit finetune` saves one."""
    tokenizer = load_tokenizer(root / "cls")
    task = get_task(spec.task)
    torch.manual_seed(1)
    config = AlbertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, **TINY, **task.head_config(spec))
    folder = root / spec.task
    write_model_folder(HEADS[task.head](config), folder, tokenizer, {"task": spec.task, "task_spec": spec.to_dict()})
    return folder


def predicted(folder: Path, tmp_path: Path, name: str, content: str) -> list[dict]:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    predict_file(folder, source, tmp_path / "out.jsonl", batch_size=3)
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


@pytest.fixture
def served(root: Path) -> Iterator[callable]:
    clients = []

    def client(folder: Path) -> TestClient:
        clients.append(TestClient(create_app(folder, max_batch=4)).__enter__())
        return clients[-1]

    yield client
    for c in clients:
        c.__exit__(None, None, None)


def test_classification_single_label(root, tmp_path, served) -> None:
    folder = task_folder(root, TaskSpec("classification", labels=["negative", "positive"]))
    records = predicted(folder, tmp_path, "texts.tsv", "\n".join(TEXTS) + "\n")
    results = served(folder).post("/v1/classify", json={"texts": TEXTS}).json()["results"]
    assert [r["label"] for r in results] == [r["label"] for r in records]
    np.testing.assert_allclose([list(r["scores"].values()) for r in results],
                               [list(r["probabilities"].values()) for r in records], atol=1e-6)
    assert not np.allclose([r["scores"]["positive"] for r in results], 0.5)  # a real model, not a constant


def test_classification_multi_label(root, tmp_path, served) -> None:
    folder = task_folder(root, TaskSpec("multi_label", labels=["acting", "music", "plot"]))
    records = predicted(folder, tmp_path, "texts.tsv", "\n".join(TEXTS) + "\n")
    results = served(folder).post("/v1/classify", json={"texts": TEXTS}).json()["results"]
    assert [r["labels"] for r in results] == [r["labels"] for r in records]
    probabilities = np.array([list(r["scores"].values()) for r in results])
    np.testing.assert_allclose(probabilities, [list(r["probabilities"].values()) for r in records], atol=1e-6)
    assert not np.allclose(probabilities.sum(axis=1), 1.0)  # sigmoid per label, not a softmax


def test_regression(root, tmp_path, served) -> None:
    folder = task_folder(root, TaskSpec("regression"))
    records = predicted(folder, tmp_path, "texts.tsv", "\n".join(TEXTS) + "\n")
    results = served(folder).post("/v1/classify", json={"texts": TEXTS}).json()["results"]
    np.testing.assert_allclose([r["score"] for r in results], [r["value"] for r in records], atol=1e-6)
    assert len({round(r["value"], 6) for r in records}) > 1


def test_pair(root, tmp_path, served) -> None:
    folder = task_folder(root, TaskSpec("pair", labels=["different", "same"]))
    pairs = list(zip(TEXTS, reversed(TEXTS), strict=True))
    records = predicted(folder, tmp_path, "pairs.tsv", "".join(f"{a}\t{b}\n" for a, b in pairs))
    client = served(folder)
    results = client.post("/v1/classify", json={"texts": [a for a, _ in pairs],
                                                "text_pairs": [b for _, b in pairs]}).json()["results"]
    assert [r["label"] for r in results] == [r["label"] for r in records]
    np.testing.assert_allclose([r["scores"]["same"] for r in results], [r["probabilities"]["same"] for r in records],
                               atol=1e-6)
    # the pair text counts: swapping the texts changes the probabilities
    swapped = client.post("/v1/classify", json={"texts": [b for _, b in pairs],
                                                "text_pairs": [a for a, _ in pairs]}).json()["results"]
    assert not np.allclose([r["scores"]["same"] for r in swapped], [r["scores"]["same"] for r in results])
    mismatch = client.post("/v1/classify", json={"texts": ["a", "b"], "text_pairs": ["c"]})
    assert mismatch.status_code == 422 and mismatch.json()["detail"] == "2 texts but 1 text_pairs"


def test_ner_including_a_sentence_longer_than_max_seq_length(root, tmp_path, served) -> None:
    spec = TaskSpec("ner", labels=list(NER_LABELS.values()), max_seq_length=16)
    folder = task_folder(root, spec)
    texts = [*TEXTS[:4], LONG]
    assert len(load_tokenizer(folder).encode_batch([LONG])[0]) > 16
    records = predicted(folder, tmp_path, "sentences.txt", "\n".join(texts) + "\n")
    results = served(folder).post("/v1/ner", json={"texts": texts}).json()["results"]
    for text, record, result in zip(texts, records, results, strict=True):
        assert [t["token"] for t in result["tokens"]] == text.split()
        assert [t["label"] for t in result["tokens"]] == record["tags"]
        np.testing.assert_allclose([t["score"] for t in result["tokens"]], record["scores"], atol=1e-6)
        assert [(e["type"], e["char_start"], e["char_end"], e["text"]) for e in result["entities"]] == [
            (e["type"], e["start"], e["end"], e["text"]) for e in record["entities"]]
    assert len(set(records[-1]["tags"])) > 1 and records[-1]["entities"]


def test_qa(root, tmp_path, served) -> None:
    folder = task_folder(root, TaskSpec("qa", max_seq_length=32, max_query_length=8, doc_stride=8))
    questions = [("what is the film ?", "the film is wonderful . our hero remains moving at times ."),
                 ("who ?", "our hero"), ("the cast", LONG * 3)]
    squad = {"data": [{"paragraphs": [{"context": c, "qas": [{"id": str(i), "question": q}]}]}
                      for i, (q, c) in enumerate(questions)]}
    records = predicted(folder, tmp_path, "questions.json", json.dumps(squad))
    results = served(folder).post("/v1/qa", json={"questions": [{"question": q, "context": c} for q, c in questions]
                                                  }).json()["results"]
    assert [(r["answer"], r["start"], r["end"]) for r in results] == [
        (r["answer"], r["start"], r["end"]) for r in records]
    np.testing.assert_allclose([r["score"] for r in results], [r["score"] for r in records], atol=1e-5)
    assert all(r["answer"] for r in records)
