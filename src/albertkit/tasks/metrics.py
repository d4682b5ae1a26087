"""Evaluation metrics for fine-tuning tasks, numpy only.

Classification: accuracy, macro-F1, Matthews correlation. Regression: Pearson, Spearman, MSE.
NER: entity-level precision / recall / F1 exactly as seqeval's default (conlleval-style chunking).
QA: SQuAD v1.1 / v2.0 exact match and F1 with the official answer normalisation.
All scores are fractions in [0, 1] (SQuAD's official script prints them times 100).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from albertkit.tasks.base import TASK_NAMES, Task, get_task
from albertkit.tokenization.cjk import CJK_IDEOGRAPH


def _as_arrays(
    predictions: Sequence | np.ndarray, references: Sequence | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(predictions), np.asarray(references)
    if pred.shape != ref.shape:
        raise ValueError(f"predictions {pred.shape} and references {ref.shape} differ in shape")
    return pred.ravel(), ref.ravel()


def accuracy(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Fraction of predictions equal to their reference."""
    pred, ref = _as_arrays(predictions, references)
    return float(np.mean(pred == ref)) if ref.size else 0.0


def _confusion_matrix(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rows: reference class, columns: predicted class, over the classes seen in either."""
    classes, codes = np.unique(np.concatenate([ref, pred]), return_inverse=True)
    k = len(classes)
    ref_codes, pred_codes = codes[: len(ref)], codes[len(ref) :]
    return np.bincount(ref_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def macro_f1(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Unweighted mean of per-class F1 over classes present in predictions or references (as sklearn)."""
    pred, ref = _as_arrays(predictions, references)
    if not ref.size:
        return 0.0
    cm = _confusion_matrix(pred, ref)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2*tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def matthews_corrcoef(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K, as sklearn); 0.0 when undefined."""
    pred, ref = _as_arrays(predictions, references)
    if not ref.size:
        return 0.0
    cm = _confusion_matrix(pred, ref).astype(np.float64)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), cm.sum()
    cov_ytyp = c * s - t @ p
    cov_ypyp = s * s - p @ p
    cov_ytyt = s * s - t @ t
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return float(cov_ytyp / denom) if denom > 0 else 0.0


def pearson(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant."""
    x, y = (a.astype(np.float64) for a in _as_arrays(predictions, references))
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x @ x) * (y @ y))
    return float((x @ y) / denom) if denom > 0 else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (scipy's rankdata 'average')."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    is_new = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group = np.cumsum(is_new) - 1
    group_starts = np.flatnonzero(is_new)
    group_ends = np.append(group_starts[1:], len(values))
    mean_rank = (group_starts + group_ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def spearman(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks); 0.0 when either side is constant."""
    x, y = _as_arrays(predictions, references)
    return pearson(_average_ranks(x.astype(np.float64)), _average_ranks(y.astype(np.float64)))


def mse(predictions: Sequence | np.ndarray, references: Sequence | np.ndarray) -> float:
    """Mean squared error."""
    x, y = (a.astype(np.float64) for a in _as_arrays(predictions, references))
    return float(np.mean((x - y) ** 2)) if x.size else 0.0


# --- NER: entity spans, seqeval-compatible ------------------------------------------------------

_O, _B, _I, _E, _S, _DOT, _OTHER = range(7)
# BMES's M- means inside, like I-; seqeval knows no M and would lose such entities.
_PREFIX_CODES = {"O": _O, "B": _B, "I": _I, "M": _I, "E": _E, "S": _S, ".": _DOT}


def _tag_parts(tag: str) -> tuple[int, str]:
    """seqeval's split of a tag into (prefix code, entity type); an unknown prefix is neither O nor B/I/E/S."""
    return _PREFIX_CODES.get(tag[:1], _OTHER), tag[1:].split("-", maxsplit=1)[-1] or "_"


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities in one tag sequence as (type, start, end), end exclusive.

    Chunking is seqeval's default (conlleval rules), so IOB1, IOB2, BIOES and BMES tags all work;
    an I- after O or after another type starts a new entity.
    """
    if not len(tags):
        return []
    # A trailing O closes the last entity, as in seqeval.
    uniques, inverse = np.unique(np.array([*tags, "O"], dtype=str), return_inverse=True)
    parts = [_tag_parts(tag) for tag in uniques]
    type_names, type_codes = np.unique([entity_type for _, entity_type in parts], return_inverse=True)
    prefix = np.array([code for code, _ in parts])[inverse]
    kind = type_codes[inverse]
    # seqeval starts with prev_tag 'O' and prev_type '' (a type no real tag has).
    prev_prefix = np.concatenate([[_O], prefix[:-1]])
    prev_kind = np.concatenate([[-1], kind[:-1]])
    type_change = prev_kind != kind

    # seqeval's end_of_chunk / start_of_chunk rules, evaluated at every position at once.
    ends = (
        np.isin(prev_prefix, (_E, _S))
        | (np.isin(prev_prefix, (_B, _I)) & np.isin(prefix, (_B, _S, _O)))
        | (~np.isin(prev_prefix, (_O, _DOT)) & type_change)
    )
    starts = (
        np.isin(prefix, (_B, _S))
        | (np.isin(prev_prefix, (_E, _S, _O)) & np.isin(prefix, (_E, _I)))
        | (~np.isin(prefix, (_O, _DOT)) & type_change)
    )
    end_positions = np.flatnonzero(ends)
    start_positions = np.flatnonzero(starts)
    # Each chunk begins at the last start strictly before its end (0 if none), as seqeval's loop.
    last_start = np.searchsorted(start_positions, end_positions, side="left") - 1
    begins = np.where(last_start >= 0, start_positions[np.maximum(last_start, 0)], 0)
    return [
        (str(type_names[kind[end - 1]]), int(begin), int(end))
        for begin, end in zip(begins, end_positions, strict=True)
    ]


def entity_scores(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Micro precision / recall / F1 over entities, as seqeval's default (0.0 where undefined)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predicted sentences but {len(references)} reference sentences")
    pred_entities: set[tuple[int, str, int, int]] = set()
    true_entities: set[tuple[int, str, int, int]] = set()
    for sentence, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        if len(pred) != len(ref):
            raise ValueError(f"sentence {sentence}: {len(pred)} predicted tags but {len(ref)} reference tags")
        pred_entities.update((sentence, *span) for span in entity_spans(pred))
        true_entities.update((sentence, *span) for span in entity_spans(ref))
    correct = len(pred_entities & true_entities)
    precision = correct / len(pred_entities) if pred_entities else 0.0
    recall = correct / len(true_entities) if true_entities else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- QA: SQuAD ---------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
# Chinese answers (CMRC 2018, DRCD) are scored by character, as their official scripts do: every ideograph
# is a token of its own and full-width punctuation is dropped like ASCII punctuation.
_CHINESE_PUNCTUATION = _PUNCTUATION | set("，。、！？：；“”‘’（）《》〈〉【】「」『』〔〕…—－～·")


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace; text
    with CJK ideographs also drops full-width punctuation and splits into characters (CMRC 2018's rule)."""
    chinese = CJK_IDEOGRAPH.search(text) is not None
    punctuation = _CHINESE_PUNCTUATION if chinese else _PUNCTUATION
    text = "".join(ch for ch in text.lower() if ch not in punctuation)
    if chinese:
        text = CJK_IDEOGRAPH.sub(lambda match: f" {match.group()} ", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction: str, gold_answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    return float(max(normalize_answer(prediction) == normalize_answer(gold) for gold in _golds(gold_answers)))


def squad_f1(prediction: str, gold_answers: Sequence[str]) -> float:
    """Best token-overlap F1 against the gold answers (an empty side scores 1 only against empty)."""
    pred_tokens = normalize_answer(prediction).split()
    return max(_token_f1(pred_tokens, normalize_answer(gold).split()) for gold in _golds(gold_answers))


def _golds(gold_answers: Sequence[str]) -> list[str]:
    """SQuAD v2.0's rule: gold answers that normalise to nothing are dropped; none left means no-answer."""
    golds = [gold for gold in gold_answers if normalize_answer(gold)]
    return golds or [""]


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean exact match and F1 over every question in `references` (a missing prediction scores 0).

    `references` maps question id to its gold answer texts; an empty list means no answer (v2.0),
    which a prediction of "" matches.
    """
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    exact, f1 = 0.0, 0.0
    for qid, golds in references.items():
        if qid in predictions:
            exact += squad_exact_match(predictions[qid], golds)
            f1 += squad_f1(predictions[qid], golds)
    return {"exact_match": exact / len(references), "f1": f1 / len(references)}


# --- per task ------------------------------------------------------------------------------------


def compute_metrics(task: str, predictions: object, references: object) -> dict[str, float]:
    """The scores of a registered task type (its `metric_names`).

    classification / pair: label ids; regression: floats; ner: one tag list per sentence;
    qa: {id: answer text} predictions and {id: [gold texts]} references.
    """
    return _task(task).scores(predictions, references)


def primary_metric(task: str) -> str:
    """The metric that model selection and early stopping follow for a task type."""
    return _task(task).primary_metric


def _task(name: str) -> Task:
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task type {name!r}; expected one of {sorted(TASK_NAMES)}")
    return get_task(name)
