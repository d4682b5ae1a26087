"""Metrics against scikit-learn, scipy, hand-computed seqeval cases and the official SQuAD rules."""

import numpy as np
import pytest

from albertkit.tasks.base import TASK_NAMES, get_task
from albertkit.tasks.metrics import (
    accuracy,
    compute_metrics,
    entity_scores,
    entity_spans,
    macro_f1,
    matthews_corrcoef,
    mse,
    normalize_answer,
    pearson,
    primary_metric,
    spearman,
    squad_exact_match,
    squad_f1,
    squad_scores,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(20))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes, n = rng.integers(2, 6), rng.integers(5, 60)
    refs, preds = rng.integers(0, num_classes, n), rng.integers(0, num_classes, n)
    assert accuracy(preds, refs) == pytest.approx(sklearn_metrics.accuracy_score(refs, preds))
    assert macro_f1(preds, refs) == pytest.approx(
        sklearn_metrics.f1_score(refs, preds, average="macro", zero_division=0)
    )
    assert matthews_corrcoef(preds, refs) == pytest.approx(sklearn_metrics.matthews_corrcoef(refs, preds))


def test_classification_metrics_by_hand():
    refs = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, 1, 0, 2]
    assert accuracy(preds, refs) == pytest.approx(4 / 6)
    # per-class F1: 0 -> 2*1/(2+2)=0.5, 1 -> 2*2/(3+3)=2/3, 2 -> 1
    assert macro_f1(preds, refs) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    # binary MCC by formula (tp*tn - fp*fn)/sqrt(...) with tp=3, tn=4, fp=1, fn=2
    binary = matthews_corrcoef([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    assert binary == pytest.approx((3 * 4 - 1 * 2) / np.sqrt(4 * 5 * 6 * 5))
    assert matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0  # undefined -> 0, like sklearn


def test_string_labels_work():
    assert macro_f1(["pos", "neg", "neg"], ["pos", "pos", "neg"]) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_regression_metrics_match_reference_formulas():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(scale=0.5, size=50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert mse(x, y) == pytest.approx(np.mean((x - y) ** 2))
    # without ties, Spearman = 1 - 6 sum d^2 / (n (n^2 - 1))
    d = np.argsort(np.argsort(x)) - np.argsort(np.argsort(y))
    assert spearman(x, y) == pytest.approx(1 - 6 * np.sum(d**2) / (50 * (50**2 - 1)))


def test_spearman_with_ties_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = [1, 2, 2, 3, 3, 3, 5, 0]
    y = [0.1, 0.4, 0.3, 0.9, 0.2, 0.5, 1.0, 0.0]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        # I- without B- starts an entity (conlleval / seqeval default)
        (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),
        (["I-PER"], [("PER", 0, 1)]),
        # a type change inside a run splits it
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
        (["B-PER", "I-PER", "I-LOC"], [("PER", 0, 2), ("LOC", 2, 3)]),
        # single-token entities and B directly after B
        (["B-PER", "B-PER", "O", "B-ORG"], [("PER", 0, 1), ("PER", 1, 2), ("ORG", 3, 4)]),
        # BIOES
        (["S-LOC", "B-PER", "I-PER", "E-PER", "S-LOC"], [("LOC", 0, 1), ("PER", 1, 4), ("LOC", 4, 5)]),
        # BMES (Resume NER): M- means inside
        (["B-NAME", "M-NAME", "E-NAME", "O", "S-NAME"], [("NAME", 0, 3), ("NAME", 4, 5)]),
        (["B-ORG", "M-ORG", "O", "B-ORG", "E-ORG"], [("ORG", 0, 2), ("ORG", 3, 5)]),
        # E- directly after E- opens a new entity
        (["B-PER", "E-PER", "E-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_entity_spans_follow_seqeval(tags, spans):
    assert entity_spans(tags) == spans


def test_entity_scores_by_hand():
    refs = [["B-PER", "I-PER", "O", "B-LOC"], ["S-ORG", "O"]]
    preds = [["B-PER", "I-PER", "O", "B-ORG"], ["S-ORG", "B-LOC"]]
    scores = entity_scores(preds, refs)
    # gold: PER, LOC, ORG; predicted: PER, ORG (wrong type at 3), ORG, LOC -> 2 correct of 4 / of 3
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert entity_scores([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags but 2"):
        entity_scores([["O"]], [["O", "O"]])


def test_chinese_answers_are_scored_by_character():
    assert normalize_answer("“北京”是首都。") == "北 京 是 首 都"
    assert normalize_answer("《三体》的作者 Liu Cixin") == "三 体 的 作 者 liu cixin"
    assert squad_exact_match("北京。", ["“北京”"]) == 1.0
    # Three of four characters shared: precision 3/3, recall 3/4.
    assert squad_f1("北京大", ["北京大学"]) == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert squad_f1("上海", ["北京大学"]) == 0.0
    # English keeps SQuAD's own rule: curly quotes are not punctuation there.
    assert normalize_answer("“Paris”") == "“paris”"


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert squad_exact_match("the Eiffel Tower.", ["Eiffel Tower", "tower"]) == 1.0
    assert squad_exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    # pred tokens [eiffel], gold [eiffel, tower]: p=1, r=1/2 -> f1=2/3; best over golds
    assert squad_f1("Eiffel", ["Eiffel Tower", "the tower"]) == pytest.approx(2 / 3)
    assert squad_f1("in Paris France", ["Paris"]) == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    # v2.0: no answer is the empty string; golds that normalise to nothing count as no answer
    assert squad_exact_match("", []) == 1.0
    assert squad_f1("", ["the"]) == 1.0
    assert squad_f1("Paris", []) == 0.0
    scores = squad_scores(
        {"q1": "the Paris", "q2": "", "q3": "London"}, {"q1": ["Paris"], "q2": [], "q3": ["Rome"]}
    )
    assert scores == {"exact_match": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}
    assert squad_scores({}, {"q1": ["x"]}) == {"exact_match": 0.0, "f1": 0.0}


def test_compute_metrics_per_task():
    for task in TASK_NAMES:
        assert primary_metric(task) in get_task(task).metric_names
    cls = compute_metrics("classification", [1, 0, 1], [1, 1, 1])
    assert set(cls) == {"accuracy", "macro_f1", "mcc"} and cls["accuracy"] == pytest.approx(2 / 3)
    reg = compute_metrics("regression", [1.0, 2.0, 3.0], [2.0, 4.0, 6.5])
    assert set(reg) == {"pearson", "spearman", "mse"} and reg["spearman"] == pytest.approx(1.0)
    assert compute_metrics("ner", [["S-X"]], [["S-X"]])["f1"] == 1.0
    assert compute_metrics("qa", {"a": "x"}, {"a": ["x"]}) == {"exact_match": 1.0, "f1": 1.0}
    assert primary_metric("regression") == "spearman"
    with pytest.raises(ValueError, match="unknown task type 'tagging'"):
        compute_metrics("tagging", [], [])
