"""SQuAD v1.1 / v2.0 JSON -> QaExample -> sliding-window features, and logits -> answer spans.

BERT's recipe: the context is split at whitespace into words with character spans, words into pieces,
and windows of at most max_seq_length tokens ([CLS] question [SEP] window [SEP]) start every doc_stride
pieces. Every piece knows the characters of the context it comes from (the tokenizer aligns pieces with the
text through normalization and unknown characters), so answers come back as exact slices of the context.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from albertkit.errors import UserError
from albertkit.io.tables import BadRows
from albertkit.runtime.console import progress_bar
from albertkit.tasks.base import Task, register
from albertkit.tasks.files import read_task_text
from albertkit.tasks.metrics import squad_scores
from albertkit.tasks.ner import split_words

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec

_ENCODE_CHUNK = 65536


@dataclass(slots=True)
class QaExample:
    """One question about a context; answers are (text, character start) pairs, empty when there is none."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)
    is_impossible: bool = False

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


@dataclass
class QaPrediction:
    """The best answer span of a question: context[start:end]; "" with start = end = -1 for no answer."""

    text: str
    start: int
    end: int
    score: float


def _expect(value: Any, kind: type, where: str, path: Path) -> Any:
    if not isinstance(value, kind):
        raise UserError(f"{where} should be a JSON {kind.__name__}, found {type(value).__name__}", path)
    return value


def read_squad_examples(path: Path, bad_rows: BadRows | None = None) -> list[QaExample]:
    """Questions of a SQuAD-format file (data[].paragraphs[].context / qas[]); errors name the JSON path.

    An answer whose text is not at its answer_start is moved to the nearest occurrence in the context;
    one that does not occur at all is dropped, and a question left without answers is a bad row (`bad_rows`'
    policy: an error naming its line, or skipped and reported).
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    text = read_task_text(path)
    try:
        root = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"invalid JSON ({err.msg} at column {err.colno})", path, err.lineno) from None
    articles = _expect(_expect(root, dict, "the top level", path).get("data"), list, "'data'", path)
    examples: list[QaExample] = []
    for a, article in enumerate(articles):
        paragraphs = _expect(
            _expect(article, dict, f"data[{a}]", path).get("paragraphs"), list, f"data[{a}].paragraphs", path
        )
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = _expect(
                _expect(paragraph, dict, where, path).get("context"), str, f"{where}.context", path
            )
            for q, qa in enumerate(_expect(paragraph.get("qas"), list, f"{where}.qas", path)):
                example = _read_question(
                    _expect(qa, dict, f"{where}.qas[{q}]", path), context, f"{where}.qas[{q}]", path
                )
                if example.answers or example.is_impossible or not qa.get("answers"):
                    examples.append(example)
                else:
                    bad_rows.reject(path, _line_of(text, example.id),
                                    f"question {example.id!r}: no answer text found in the context",
                                    "no answer text found in the context")
    bad_rows.report(path, "questions")
    if not examples:
        raise UserError("the file has no questions", path)
    return examples


def _line_of(text: str, qid: str) -> int:
    """The line where a question id appears in the JSON text (for messages; 0 when not found)."""
    position = text.find(json.dumps(qid))
    return text.count("\n", 0, position) + 1 if position >= 0 else 0


def _read_question(qa: dict[str, Any], context: str, where: str, path: Path) -> QaExample:
    qid = str(qa.get("id", where))
    question = _expect(qa.get("question"), str, f"{where}.question", path)
    answers = []
    for i, answer in enumerate(_expect(qa.get("answers", []), list, f"{where}.answers", path)):
        answer = _expect(answer, dict, f"{where}.answers[{i}]", path)
        answer_text = _expect(answer.get("text"), str, f"{where}.answers[{i}].text", path)
        start = _expect(answer.get("answer_start", -1), int, f"{where}.answers[{i}].answer_start", path)
        start = _locate(context, answer_text, start)
        if start >= 0:
            answers.append((answer_text, start))
    return QaExample(qid, question, context, answers, bool(qa.get("is_impossible", False)))


def _locate(context: str, answer: str, start: int) -> int:
    """`start` if the answer is there, else its occurrence nearest to `start`, else -1."""
    if not answer or context[start : start + len(answer)] == answer:
        return start if answer else -1
    occurrences = [match.start() for match in re.finditer(re.escape(answer), context)]
    return min(occurrences, key=lambda i: abs(i - start)) if occurrences else -1


def _piece_spans(tokenizer: Any, words: list[str], word_starts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pieces of all words (flat), pieces per word, and each piece's [start, end) in its context."""
    encoded: list[tuple[list[int], list[tuple[int, int]]]] = []
    for start in range(0, len(words), _ENCODE_CHUNK):
        encoded.extend(tokenizer.encode_with_offsets(words[start : start + _ENCODE_CHUNK]))
    # A word that normalizes to nothing still needs a piece so that answers there can be pointed at.
    encoded = [
        (ids, spans) if ids else ([tokenizer.unk_token_id], [(0, len(word))])
        for (ids, spans), word in zip(encoded, words, strict=True)
    ]
    counts = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int64, count=len(encoded))
    total = int(counts.sum())
    flat = np.fromiter(itertools.chain.from_iterable(ids for ids, _ in encoded), dtype=np.int64, count=total)
    spans = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(spans for _, spans in encoded)),
        dtype=np.int64, count=2 * total,
    ).reshape(total, 2)
    word_start = np.repeat(word_starts, counts)
    return flat, counts, word_start + spans[:, 0], word_start + spans[:, 1]


def _window_starts(num_tokens: int, window: int, stride: int) -> list[int]:
    starts = [0]
    while starts[-1] + window < num_tokens:
        starts.append(starts[-1] + min(window, stride))
    return starts


def _max_context(num_tokens: int, starts: list[int], window: int) -> np.ndarray:
    """For each window and token: is this the window where the token has the most context on both sides (BERT)."""
    position = np.arange(num_tokens)[None, :]
    begin = np.array(starts)[:, None]
    length = np.minimum(window, num_tokens - begin)
    inside = (position >= begin) & (position < begin + length)
    score = np.where(
        inside, np.minimum(position - begin, begin + length - 1 - position) + 0.01 * length, -np.inf
    )
    best = score.argmax(axis=0)  # first window wins ties, as in BERT
    return best[None, :] == np.arange(len(starts))[:, None]


def featurize_qa(
    spec: TaskSpec, tokenizer: Any, examples: list[QaExample], show_progress: bool | None = None
) -> list[dict[str, Any]]:
    """One feature per window; start_positions / end_positions point at the first answer (0 = [CLS] when
    the window lacks it or there is none). Features also hold example_id, context, context_offset (index of
    the first context token), char_starts / char_ends and max_context for the window's context tokens.
    """
    # SQuAD asks several questions about each paragraph: tokenize every distinct context once.
    context_index = {context: i for i, context in enumerate(dict.fromkeys(ex.context for ex in examples))}
    all_words, all_word_starts, words_per_context = [], [], []
    for context in context_index:
        words, spans = split_words(context, "whitespace")
        all_words.extend(words)
        all_word_starts.extend(start for start, _ in spans)
        words_per_context.append(len(words))
    flat, counts, char_starts, char_ends = _piece_spans(
        tokenizer, all_words, np.array(all_word_starts, np.int64)
    )
    word_bounds = np.concatenate([[0], np.cumsum(words_per_context)]).astype(np.int64)
    piece_bounds = np.concatenate([[0], np.cumsum(counts)])[word_bounds]
    questions = tokenizer.encode_batch([example.question for example in examples])
    features = []
    progress = progress_bar(examples, desc="featurizing", unit=" questions", disable=show_progress is False)
    for index, example in enumerate(progress):
        c = context_index[example.context]
        p0, p1 = piece_bounds[c], piece_bounds[c + 1]
        doc, doc_starts, doc_ends = flat[p0:p1], char_starts[p0:p1], char_ends[p0:p1]
        query = questions[index][: spec.max_query_length]
        window = spec.max_seq_length - len(query) - 3
        starts = _window_starts(len(doc), window, spec.doc_stride)
        max_context = _max_context(len(doc), starts, window)
        answer = _answer_tokens(example, doc_starts, doc_ends)
        offset = len(query) + 2
        for w, begin in enumerate(starts):
            end = min(begin + window, len(doc))
            input_ids = [
                tokenizer.cls_token_id,
                *query,
                tokenizer.sep_token_id,
                *doc[begin:end].tolist(),
                tokenizer.sep_token_id,
            ]
            feature: dict[str, Any] = {
                "input_ids": input_ids,
                "token_type_ids": [0] * offset + [1] * (end - begin + 1),
                "attention_mask": [1] * len(input_ids),
                "example_id": example.id,
                "context": example.context,
                "context_offset": offset,
                "char_starts": doc_starts[begin:end],
                "char_ends": doc_ends[begin:end],
                "max_context": max_context[w, begin:end],
            }
            if answer is not None:
                inside = answer[0] >= begin and answer[1] < end and answer[0] >= 0
                feature["start_positions"] = answer[0] - begin + offset if inside else 0
                feature["end_positions"] = answer[1] - begin + offset if inside else 0
            features.append(feature)
    return features


def _answer_tokens(
    example: QaExample, doc_starts: np.ndarray, doc_ends: np.ndarray
) -> tuple[int, int] | None:
    """Context token indexes of the first answer, (-1, -1) for no answer, None for an unlabeled question."""
    if example.is_impossible or not example.answers:
        return (-1, -1) if example.is_impossible else None
    text, start = example.answers[0]
    first = int(np.searchsorted(doc_ends, start, side="right"))  # first token ending after the answer starts
    last = (
        int(np.searchsorted(doc_starts, start + len(text), side="left")) - 1
    )  # last token starting inside it
    return (first, last) if first <= last else (-1, -1)


def qa_best_spans(
    features: list[dict[str, Any]],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
) -> dict[str, QaPrediction]:
    """The best answer span per question over all its windows (BERT's post-processing).

    Spans pair the n_best highest start and end logits of each window, start at a token in its max-context
    window and are at most max_answer_length tokens. With version_2, the question gets no answer when the
    lowest [CLS] score over its windows beats the best span's score.
    """
    best: dict[str, QaPrediction] = {}
    null_score: dict[str, float] = {}
    for feature, feature_start, feature_end in zip(features, start_logits, end_logits, strict=True):
        qid, offset, n = feature["example_id"], feature["context_offset"], len(feature["char_starts"])
        starts, ends = np.asarray(feature_start, np.float64), np.asarray(feature_end, np.float64)
        null_score[qid] = min(null_score.get(qid, np.inf), starts[0] + ends[0])
        best.setdefault(qid, QaPrediction("", -1, -1, -np.inf))
        if n == 0:
            continue
        doc_start, doc_end = starts[offset : offset + n], ends[offset : offset + n]
        top_start = np.argsort(-doc_start, kind="stable")[:n_best]
        top_end = np.argsort(-doc_end, kind="stable")[:n_best]
        char_starts, char_ends = feature["char_starts"][top_start], feature["char_ends"][top_end]
        length = top_end[None, :] - top_start[:, None] + 1
        valid = (length >= 1) & (length <= max_answer_length) & feature["max_context"][top_start][:, None]
        valid &= char_ends[None, :] > char_starts[:, None]  # a lone "▁" piece has no text
        scores = np.where(valid, doc_start[top_start][:, None] + doc_end[top_end][None, :], -np.inf)
        i, j = np.unravel_index(int(scores.argmax()), scores.shape)
        if scores[i, j] > best[qid].score:
            start, end = int(char_starts[i]), int(char_ends[j])
            best[qid] = QaPrediction(feature["context"][start:end], start, end, float(scores[i, j]))
    if version_2:
        for qid, prediction in best.items():
            if null_score[qid] > prediction.score:
                best[qid] = QaPrediction("", -1, -1, float(null_score[qid]))
    return best


def qa_predictions(
    features: list[dict[str, Any]],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
) -> dict[str, str]:
    """{question id: answer text} ("" for no answer); `qa_best_spans` gives the character spans and scores."""
    spans = qa_best_spans(features, start_logits, end_logits, n_best, max_answer_length, version_2)
    return {qid: prediction.text for qid, prediction in spans.items()}


@register
class QaTask(Task):
    """Extractive QA: the best span of the context over its windows; SQuAD exact match and F1."""

    name = "qa"
    outputs = "spans"
    head = "AlbertForQuestionAnswering"
    head_modules = ("qa_outputs",)
    endpoint = "qa"
    metric_names = ("exact_match", "f1")
    primary_metric = "f1"
    default_max_seq_length = 384

    def complete_spec(self, spec: TaskSpec) -> None:
        if spec.max_seq_length < spec.max_query_length + 3 + 8:
            raise UserError(
                f"max_seq_length {spec.max_seq_length} leaves too little room for context after a question of "
                f"up to max_query_length {spec.max_query_length} tokens: raise it or lower max_query_length"
            )

    def num_labels(self, spec: TaskSpec) -> int:
        return 2

    def head_config(self, spec: TaskSpec) -> dict[str, Any]:
        return {"id2label": None}

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        if architecture != self.head:
            return None
        length = min(512, config.max_position_embeddings)
        return {"task": self.name, "max_seq_length": length, "max_query_length": min(64, length // 2),
                "doc_stride": min(128, length // 4)}

    def read_train(self, spec: TaskSpec, path: Path, bad_rows: BadRows) -> tuple[TaskSpec, list[Any]]:
        """Questions; a file with an unanswerable question makes the task SQuAD 2.0 (version_2)."""
        examples = read_squad_examples(path, bad_rows)
        version_2 = spec.version_2 or any(ex.is_impossible for ex in examples)
        return dataclasses.replace(spec, version_2=version_2), examples

    def read(self, spec: TaskSpec, path: Path, require_labels: bool, bad_rows: BadRows) -> list[Any]:
        return read_squad_examples(path, bad_rows)

    def example(self, spec: TaskSpec, item: Any, index: int) -> QaExample:
        question, context = item
        return QaExample(str(index), question, context)

    def featurize(self, spec: TaskSpec, tokenizer: Any, examples: list[Any]) -> list[dict[str, Any]]:
        return featurize_qa(spec, tokenizer, examples)

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        """{id: answer text}, and records {"id", "answer", "start", "end", "score"}: answer = context[start:end],
        "" with start = end = -1 for no answer; score None where no span was possible."""
        spans = qa_best_spans(features, [o["start_logits"] for o in outputs], [o["end_logits"] for o in outputs],
                              version_2=spec.version_2)
        records = [{"id": ex.id, "answer": spans[ex.id].text, "start": spans[ex.id].start, "end": spans[ex.id].end,
                    "score": spans[ex.id].score if np.isfinite(spans[ex.id].score) else None} for ex in examples]
        return {ex.id: spans[ex.id].text for ex in examples}, records

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        return {ex.id: ex.answer_texts for ex in examples}

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        return squad_scores(predictions, references)
