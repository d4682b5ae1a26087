"""The HTTP server: results equal to the model's, order kept, limits, auth, micro-batching, robustness."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import build_served_folders, movie_sentences
from fastapi.testclient import TestClient

from albertkit.inference.embed import Encoder
from albertkit.serve import create_app
from albertkit.serve.batcher import MicroBatcher
from albertkit.serve.model_functions import TaskModel
from albertkit.tasks.metrics import entity_spans

KEY = "s3cret-key"
TEXTS = ["the film is wonderful .", "boring", "this movie was dull from start to finish .", "our hero"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_served_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def classifier(folders: dict[str, Path]) -> Iterator[TestClient]:
    app = create_app(folders["cls"], max_chars=100, max_texts=8, max_wait_ms=20, index_dir=folders["index"])
    with TestClient(app, raise_server_exceptions=False) as client:  # a server error is a 500 here, as for users
        yield client


def expected_probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    """Each text alone through the model: what the batched server must reproduce."""
    encoder = Encoder(folder)
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = torch.from_numpy(encoder.tokenize([text])[0])[None]
            rows.append(torch.softmax(encoder.model(ids).logits[0], -1).numpy())
    return np.stack(rows)


def test_classify_keeps_order_and_equals_the_model(classifier: TestClient, folders: dict[str, Path]) -> None:
    response = classifier.post("/v1/classify", json={"texts": TEXTS})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = expected_probabilities(folders["cls"], TEXTS)
    got = np.array([[r["scores"]["negative"], r["scores"]["positive"]] for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["label"] for r in results] == [["negative", "positive"][i] for i in expected.argmax(1)]
    assert [r["score"] for r in results] == pytest.approx(expected.max(1).tolist(), abs=1e-5)


def test_embed_and_search(classifier: TestClient, folders: dict[str, Path]) -> None:
    response = classifier.post("/v1/embed", json={"texts": TEXTS})
    assert response.status_code == 200 and response.json()["dimension"] == 64
    np.testing.assert_allclose(np.array(response.json()["embeddings"]), Encoder(folders["cls"]).encode(TEXTS),
                               atol=2e-6)
    indexed = movie_sentences(400)[5]
    hits = classifier.post("/v1/search", json={"texts": [indexed, "boring"], "k": 3}).json()["results"]
    assert [len(h) for h in hits] == [3, 3]
    assert hits[0][0]["text"] == indexed and hits[0][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_model_info_health_and_docs(classifier: TestClient) -> None:
    info = classifier.get("/v1/model").json()
    assert info["architecture"] == "AlbertForSequenceClassification"
    assert info["tasks"] == ["classify", "embed"] and info["labels"] == ["negative", "positive"]
    assert info["index"]["count"] == 400 and info["limits"]["max_texts"] == 8
    assert classifier.get("/healthz").json() == {"status": "ok", "auth_required": False}
    paths = classifier.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/embed", "/v1/fill-mask", "/v1/ner", "/v1/qa", "/v1/search", "/healthz"} <= set(paths)
    page = classifier.get("/")
    assert page.status_code == 200 and 'id="analyze"' in page.text and "http" not in page.text.split("<script>")[1]


def test_unsupported_head_is_404_with_a_reason(classifier: TestClient) -> None:
    for path, body in (("/v1/fill-mask", {"texts": ["the [MASK] ."]}), ("/v1/ner", {"texts": ["x"]})):
        response = classifier.post(path, json=body)
        assert response.status_code == 404
        assert response.json()["detail"].startswith("this model (AlbertForSequenceClassification) does not support")
        assert response.json()["detail"].endswith("it supports: classify, embed")


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"texts": ["x" * 101]}, 413, "text 0 has 101 characters; the limit is 100"),
    ({"texts": ["x"] * 9}, 413, "9 texts in one request; the limit is 8"),
    ({"texts": []}, 422, "at least 1 item"),
    ({"texts": "not a list"}, 422, "valid list"),
    ({"texts": [1, 2]}, 422, "valid string"),
    ({"texts": ["x"], "extra": 1}, 422, "Extra inputs"),
    ({"text": ["x"]}, 422, "Field required"),
])
def test_limits_and_wrong_types(classifier: TestClient, body: dict, status: int, message: str) -> None:
    response = classifier.post("/v1/classify", json=body)
    assert response.status_code == status
    assert message in str(response.json()["detail"])


def test_malformed_and_oversized_bodies(classifier: TestClient) -> None:
    malformed = classifier.post("/v1/classify", content=b'{"texts": ["x"', headers={"content-type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
    huge = classifier.post("/v1/classify", content=b"x" * (8 * 100 * 12 + 65537))
    assert huge.status_code == 413 and "request body larger than" in huge.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is counted while reading
        for _ in range(100):
            yield b"x" * 4096

    assert classifier.post("/v1/classify", content=chunks()).status_code == 413
    assert classifier.post("/v1/classify", json={"texts": ["still alive"]}).status_code == 200


def test_api_key(folders: dict[str, Path]) -> None:
    with TestClient(create_app(folders["cls"], api_key=KEY)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
            response = client.post("/v1/classify", json={"texts": ["x"]}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert "missing or wrong API key" in response.json()["detail"]
        assert client.get("/v1/model").status_code == 401
        assert client.post("/v1/classify", content=b"{", headers={}).status_code == 401  # auth before parsing
        assert client.get("/healthz").json()["auth_required"] is True
        ok = client.post("/v1/classify", json={"texts": ["x"]}, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and len(ok.json()["results"]) == 1


def test_concurrent_requests_share_forward_passes(classifier: TestClient, folders: dict[str, Path]) -> None:
    batcher = classifier.app.state.batchers["classify"]
    passes_before = batcher.forward_passes
    texts = [f"the film {word} ." for word in ("is", "was", "seems", "feels")] * 12
    barrier = threading.Barrier(16)

    def request(i: int) -> tuple[int, dict]:
        if i < 16:
            barrier.wait()  # the first wave arrives together
        response = classifier.post("/v1/classify", json={"texts": [texts[i]]})
        return response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(request, range(len(texts))))
    assert [status for status, _ in answers] == [200] * len(texts)
    expected = expected_probabilities(folders["cls"], texts[:4])
    for i, (_, body) in enumerate(answers):  # each client got its own text's answer
        assert body["results"][0]["scores"]["positive"] == pytest.approx(expected[i % 4, 1], abs=1e-5)
    passes = batcher.forward_passes - passes_before
    assert passes < len(texts) / 2, passes


def test_a_failing_batch_answers_500_and_the_server_lives_on(classifier: TestClient,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    batcher = classifier.app.state.batchers["classify"]
    working = batcher.run_batch

    def broken(texts: list[str]) -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(batcher, "run_batch", broken)
    response = classifier.post("/v1/classify", json={"texts": ["x"]})
    assert response.status_code == 500 and response.json() == {"detail": "internal error: RuntimeError"}
    monkeypatch.setattr(batcher, "run_batch", working)
    assert classifier.post("/v1/classify", json={"texts": ["x"]}).status_code == 200


def test_fill_mask(folders: dict[str, Path]) -> None:
    with TestClient(create_app(folders["mlm"])) as client:
        assert client.get("/v1/model").json()["tasks"] == ["embed", "fill-mask"]
        body = {"texts": ["the film is [MASK] .", "[MASK] movie was [MASK] .", "the [MASK]"], "top_k": 3}
        results = client.post("/v1/fill-mask", json=body).json()["results"]
        assert [len(masks) for masks in results] == [1, 2, 1]
        special = set(Encoder(folders["mlm"]).tokenizer.all_special_ids)
        for masks in results:
            for candidates in masks:
                scores = [c["score"] for c in candidates]
                assert len(candidates) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
                assert not special & {c["id"] for c in candidates}
        alone = client.post("/v1/fill-mask", json={"texts": ["the [MASK]"], "top_k": 3}).json()["results"][0]
        assert [c["id"] for c in alone[0]] == [c["id"] for c in results[2][0]]
        assert alone[0][0]["score"] == pytest.approx(results[2][0][0]["score"], abs=1e-5)
        no_mask = client.post("/v1/fill-mask", json={"texts": ["fine", "no mask"]})
        assert no_mask.status_code == 422 and no_mask.json()["detail"] == "text 0 has no [MASK] to fill"
        assert client.post("/v1/fill-mask", json={"texts": ["[MASK]"], "top_k": 0}).status_code == 422
        assert client.post("/v1/classify", json={"texts": ["x"]}).status_code == 404
        assert client.post("/v1/search", json={"texts": ["x"]}).json()["detail"].startswith("no search index")


def test_ner(folders: dict[str, Path]) -> None:
    with TestClient(create_app(folders["ner"])) as client:
        results = client.post("/v1/ner", json={"texts": ["our hero", "the film is wonderful ."]}).json()["results"]
    for text, result in zip(["our hero", "the film is wonderful ."], results, strict=True):
        assert [t["token"] for t in result["tokens"]] == text.split()  # the words albertkit predict tags
        assert {t["label"] for t in result["tokens"]} <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}
        assert [(e["type"], e["start"], e["end"]) for e in result["entities"]] == entity_spans(
            [t["label"] for t in result["tokens"]])
        assert all(text[e["char_start"]:e["char_end"]] == e["text"] for e in result["entities"])


QUESTIONS = [
    {"question": "what is the film ?", "context": "the film is wonderful . our hero remains moving at times ."},
    {"question": "who ?", "context": "our hero"},
    {"question": "the cast", "context": "this movie was dull from start to finish despite the cast ." * 6},
]


def test_qa_answers_are_spans_of_their_contexts_batched_or_alone(folders: dict[str, Path]) -> None:
    with TestClient(create_app(folders["qa"], max_wait_ms=20)) as client:
        described = client.get("/v1/model").json()
        assert described["tasks"] == ["embed", "qa"] and described["tokenizer"] == {
            "kind": "SentencePiece", "file": "spiece.model", "vocab_size": 60, "do_lower_case": True}
        together = client.post("/v1/qa", json={"questions": QUESTIONS}).json()["results"]
        alone = [client.post("/v1/qa", json={"questions": [q]}).json()["results"][0] for q in QUESTIONS]
        too_long = client.post("/v1/qa", json={"questions": [{"question": "x", "context": "y" * 10001}]})
    assert [r["answer"] for r in together] == [r["answer"] for r in alone]
    np.testing.assert_allclose([r["score"] for r in together], [r["score"] for r in alone], rtol=1e-4)
    for question, result in zip(QUESTIONS, together, strict=True):
        assert result["answer"] and question["context"][result["start"]:result["end"]] == result["answer"]
    assert too_long.status_code == 413


def test_qa_long_context_runs_as_windows(folders: dict[str, Path]) -> None:
    model = TaskModel(folders["qa"])
    model.predictor.spec.max_seq_length = 24  # the context needs several windows
    model.predictor.spec.max_query_length, model.predictor.spec.doc_stride = 8, 6
    (windowed,) = model.answer([(QUESTIONS[2]["question"], QUESTIONS[2]["context"])])
    context = QUESTIONS[2]["context"]
    assert context[windowed["start"]:windowed["end"]] == windowed["answer"] != ""
    with TestClient(create_app(folders["cls"])) as client:
        response = client.post("/v1/qa", json={"questions": QUESTIONS[:1]})
    assert response.status_code == 404 and "does not support qa" in response.json()["detail"]


def test_micro_batcher_gathers_splits_and_survives() -> None:
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(items)
        if -1 in items:
            raise ValueError("bad item")
        return [2 * x for x in items]

    async def scenario() -> None:
        batcher = MicroBatcher(double, max_batch=4, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit([i, 10 + i]) for i in range(3)))
        assert results == [[0, 20], [2, 22], [4, 24]]
        assert sorted(len(c) for c in calls) == [2, 4]  # 6 items, max_batch 4: two calls
        assert await batcher.submit(list(range(9))) == [2 * x for x in range(9)]  # one big request, 3 slices
        assert batcher.forward_passes == 5 and batcher.items_done == 15
        with pytest.raises(ValueError, match="bad item"):
            await batcher.submit([-1])
        assert await batcher.submit([7]) == [14]
        await batcher.stop()

    asyncio.run(scenario())


def test_ner_long_text_runs_as_windows_and_keeps_every_word(folders: dict[str, Path]) -> None:
    model = TaskModel(folders["ner"])
    model.predictor.spec.max_seq_length = 8  # windows of 6 pieces
    text = "the film is wonderful . our hero . this movie was dull from start to finish ."
    assert len(model.tokenizer.encode_batch([text])[0]) > 12
    (result,) = model.ner([text])
    assert [t["token"] for t in result["tokens"]] == text.split()  # nothing cut
    assert all(0 < t["score"] <= 1 for t in result["tokens"])
