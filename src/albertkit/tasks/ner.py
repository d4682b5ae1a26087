"""NER files -> NerExample -> features, and predicted word tags -> entities with character offsets.

Two file layouts, detected from the first lines:
  CoNLL: one "token<TAB>...<TAB>tag" per line (or space separated), blank line between sentences, tag last;
  one sentence per line: "tokens separated by spaces<TAB>tags separated by spaces" (e.g. Resume NER .bmes).
Tags are O or B-/I-/M-/E-/S-TYPE (BIO, BIOES, BMES). Without tags (prediction) a file is one sentence per
line, split into words by the spec's word_split.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from albertkit.errors import UserError
from albertkit.io.tables import BadRows
from albertkit.runtime.console import progress_bar
from albertkit.tasks.base import Task, label_names, register
from albertkit.tasks.files import read_task_text, split_lines
from albertkit.tasks.metrics import entity_scores, entity_spans
from albertkit.tokenization.cjk import CJK_IDEOGRAPH

if TYPE_CHECKING:
    from albertkit.tasks.spec import TaskSpec

_TAG = re.compile(r"O|[BIMES]-\S+")
_WORD_PATTERNS = {"whitespace": re.compile(r"\S+"), "char": re.compile(r"\S")}
# Raw text split "by whitespace" still makes each CJK ideograph a word, as BERT's basic tokenizer does: Chinese
# has no spaces between words, and a whole unspaced sentence must not become one word (and one entity).
_RAW_TEXT_PATTERNS = {**_WORD_PATTERNS, "whitespace": re.compile(
    f"{CJK_IDEOGRAPH.pattern}|(?:(?!{CJK_IDEOGRAPH.pattern})\\S)+")}
_WORD_SEPARATORS = {"whitespace": " ", "char": ""}
_PREFIX_ORDER = {"B": 0, "I": 1, "M": 2, "E": 3, "S": 4}
_FORMAT_SAMPLE_LINES = 200
_ENCODE_CHUNK = 65536
LABEL_PAD = -100


@dataclass(slots=True)
class NerExample:
    """One sentence: its words, their tags (None when unlabeled), and the words' character spans in `text`."""

    words: list[str]
    tags: list[str] | None = None
    line: int = 0
    text: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def from_words(cls, words: list[str], tags: list[str] | None, line: int, word_split: str) -> NerExample:
        """An example whose text is the words joined (by a space, or nothing for character-level words)."""
        lengths = np.array([len(word) for word in words], dtype=np.int64)
        gap = len(_WORD_SEPARATORS[word_split])
        starts = np.concatenate([[0], np.cumsum(lengths + gap)[:-1]]) if len(words) else lengths
        offsets = list(zip(starts.tolist(), (starts + lengths).tolist(), strict=True))
        return cls(words, tags, line, _WORD_SEPARATORS[word_split].join(words), offsets)

    @classmethod
    def from_text(cls, text: str, word_split: str, line: int = 0) -> NerExample:
        """An unlabeled example of raw text (each CJK ideograph a word of its own); entity offsets will index
        this very string."""
        matches = list(_RAW_TEXT_PATTERNS[word_split].finditer(text))
        return cls([m.group() for m in matches], None, line, text, [m.span() for m in matches])


@dataclass
class NerEntity:
    """An entity found in a sentence: type and [start, end) character span of `text` in the sentence."""

    type: str
    start: int
    end: int
    text: str


def split_words(text: str, word_split: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of raw text and their character spans: whitespace-separated, or every non-space character."""
    matches = list(_WORD_PATTERNS[word_split].finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


def sorted_tags(tags: Iterable[str]) -> list[str]:
    """Tag names in a stable order: O first, then by entity type and B, I, M, E, S."""
    rest = sorted(set(tags) - {"O"}, key=lambda tag: (tag[2:], _PREFIX_ORDER[tag[0]]))
    return ["O", *rest]


def _layout(lines: list[str]) -> str:
    """ "sentence" (tokens<TAB>tags), "conll" (token ... tag per line) or "raw" (untagged text per line)."""
    sample = [
        line for line in lines[:_FORMAT_SAMPLE_LINES] if line.strip() and not line.startswith("-DOCSTART-")
    ]
    tabbed = [line for line in sample if "\t" in line]
    if tabbed:
        return "sentence" if any(" " in line.split("\t")[-1].strip() for line in tabbed) else "conll"
    # Without tabs, CoNLL's space-separated columns end in a tag on every line.
    return "conll" if sample and all(_TAG.fullmatch(line.split()[-1]) for line in sample) else "raw"


def _fields(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def read_ner_examples(
    spec: TaskSpec, path: Path, *, require_tags: bool, bad_rows: BadRows | None = None
) -> list[NerExample]:
    """Sentences of a NER file; a sentence with a tag/token count mismatch or an unknown tag is a bad row
    (`bad_rows`' policy: a UserError at its line, or skipped and reported)."""
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    lines = split_lines(read_task_text(path))
    layout = _layout(lines)
    if layout == "raw" and require_tags:
        raise UserError(
            "no tags found: expected CoNLL lines 'token<TAB>tag' or 'tokens<TAB>tags' (one sentence per line)",
            path,
        )
    if layout == "raw":
        examples = [
            NerExample.from_text(line, spec.word_split, number)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]
    else:
        read = _conll_sentences if layout == "conll" else _line_sentences
        sentences = _check_tags(spec, read(lines, path, bad_rows), layout, path, bad_rows)
        bad_rows.report(path, "sentences")
        examples = [
            NerExample.from_words(words, tags, number, spec.word_split) for number, words, tags in sentences
        ]
    if not examples:
        raise UserError("the file has no sentences", path)
    return examples


def _check_tags(
    spec: TaskSpec, sentences: list[tuple[int, list[str], list[str]]], layout: str, path: Path, bad_rows: BadRows
) -> list[tuple[int, list[str], list[str]]]:
    """The sentences whose tags are all well formed and, once the training tags are known, one of them."""
    distinct = set(itertools.chain.from_iterable(tags for _, _, tags in sentences))
    known = set(spec.labels)
    bad = {tag for tag in distinct if not _TAG.fullmatch(tag) or (known and tag not in known)}
    if not bad:
        return sentences
    kept = []
    for number, words, tags in sentences:
        tag = next((tag for tag in tags if tag in bad), None)
        if tag is None:
            kept.append((number, words, tags))
            continue
        problem = "is not O or B-/I-/M-/E-/S-TYPE" if not _TAG.fullmatch(tag) else (
            f"is unknown; the training tags are {spec.labels}")
        line = number + tags.index(tag) if layout == "conll" else number
        bad_rows.reject(path, line, f"tag {tag!r} {problem}", "a tag that is malformed or unknown")
    return kept


def _line_sentences(lines: list[str], path: Path, bad_rows: BadRows) -> list[tuple[int, list[str], list[str]]]:
    sentences = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            bad_rows.reject(path, number, f"expected 'tokens<TAB>tags', found {len(parts)} tab-separated fields",
                            f"{len(parts)} tab-separated fields")
            continue
        words, tags = parts[0].split(), parts[1].split()
        if len(words) != len(tags):
            bad_rows.reject(path, number, f"{len(tags)} tags for {len(words)} tokens", "other counts of tags and tokens")
            continue
        sentences.append((number, words, tags))
    return sentences


def _conll_sentences(lines: list[str], path: Path, bad_rows: BadRows) -> list[tuple[int, list[str], list[str]]]:
    sentences: list[tuple[int, list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    first_line = 0
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append((first_line, words, tags))
                words, tags = [], []
            continue
        fields = _fields(line)
        if len(fields) < 2:
            bad_rows.reject(path, number, "expected a token and its tag separated by a tab", "a token without a tag")
            continue
        if not words:
            first_line = number
        words.append(fields[0].strip())
        tags.append(fields[-1].strip())
    return sentences


def featurize_ner(spec: TaskSpec, tokenizer: Any, examples: list[NerExample]) -> list[dict[str, Any]]:
    """Features of whole words, each word's label on its first real piece (-100 elsewhere).

    A sentence that fits in max_seq_length is one feature; a longer one becomes overlapping windows of whole
    words (each window starts about halfway into the previous one), so every word is seen with context on
    both sides and ner_word_tags tags it from the window where it sits most centrally. Besides the model
    inputs a feature holds word_ids (the window's word of each token, -1 on [CLS]/[SEP]), word_positions (the
    labeled token of each word in the window), example_index, first_word (the window's first word in its
    sentence) and num_words (of the sentence). A single word longer than the whole window is tagged O.
    """
    all_words = [word for example in examples for word in example.words]
    pieces: list[list[int]] = []
    for start in progress_bar(range(0, len(all_words), _ENCODE_CHUNK), desc="tokenizing words"):
        pieces.extend(tokenizer.encode_batch(all_words[start : start + _ENCODE_CHUNK]))
    # A word that normalizes to nothing (a lone zero-width character) still needs a token to carry its tag.
    pieces = [word_pieces or [tokenizer.unk_token_id] for word_pieces in pieces]
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=int(counts.sum()))
    flat, counts, label_shift = _place_labels(flat, counts, _bare_space_id(tokenizer), spec.word_split)
    token_ends = np.cumsum(counts)
    token_starts = token_ends - counts
    word_counts = np.fromiter((len(ex.words) for ex in examples), dtype=np.int64, count=len(examples))
    word_bounds = np.concatenate([[0], np.cumsum(word_counts)])
    tag_ids = _tag_ids(spec, examples)
    budget = spec.max_seq_length - 2
    features = []
    bounds = enumerate(zip(word_bounds[:-1].tolist(), word_bounds[1:].tolist(), strict=True))
    for index, (w0, w1) in progress_bar(bounds, total=len(examples), desc="featurizing", unit=" sentences"):
        for first, end in word_windows(token_starts[w0:w1], token_ends[w0:w1], budget):
            a, b = w0 + first, w0 + end  # the window's words, as indices into all words
            t0 = token_starts[a] if b > a else 0
            tokens = flat[t0 : token_ends[b - 1] if b > a else 0]
            word_positions = 1 + token_starts[a:b] - t0 + label_shift[a:b]
            length = len(tokens) + 2
            feature: dict[str, Any] = {
                "input_ids": [tokenizer.cls_token_id, *tokens.tolist(), tokenizer.sep_token_id],
                "token_type_ids": [0] * length,
                "attention_mask": [1] * length,
                "word_ids": [-1, *np.repeat(np.arange(b - a), counts[a:b]).tolist(), -1],
                "word_positions": word_positions.tolist(),
                "example_index": index,
                "first_word": first,
                "num_words": w1 - w0,
            }
            if tag_ids is not None:
                labels = np.full(length, LABEL_PAD, dtype=np.int64)
                labels[word_positions] = tag_ids[a:b]
                feature["labels"] = labels.tolist()
            features.append(feature)
    return features


def word_windows(starts: np.ndarray, ends: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """[first, end) word ranges of at most `budget` tokens that cover a sentence's words (token `starts` and
    `ends` of each word), each starting about halfway into the previous one; words longer than `budget` alone
    are left out. A sentence that fits (or has no words) is one window."""
    n = len(starts)
    windows: list[tuple[int, int]] = []
    first = 0
    while first < n:
        end = first + int(np.searchsorted(ends[first:] - starts[first], budget, side="right"))
        if end == first:  # this one word is longer than the whole window
            first += 1
            continue
        windows.append((first, end))
        if end == n:
            break
        middle = (starts[first] + ends[end - 1]) / 2
        first = min(max(int(np.searchsorted(starts, middle, side="left")), first + 1), end)
    return windows or [(0, 0)]


def _bare_space_id(tokenizer: Any) -> int | None:
    """The id of the lone "▁" piece (a word boundary with no text), if the vocabulary has one."""
    (space_id,) = tokenizer.convert_tokens_to_ids(["▁"])
    return space_id if tokenizer.convert_ids_to_tokens([space_id]) == ["▁"] else None


def _place_labels(
    flat: np.ndarray, counts: np.ndarray, space_id: int | None, word_split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which piece of each word carries its tag: the first one that is not a lone "▁".

    Character-level words drop that "▁" altogether: running Chinese text has no boundary marker between
    characters, so the model never saw one there in pretraining.
    """
    starts = np.cumsum(counts) - counts
    bare = (flat[starts] == space_id) & (counts > 1) if space_id is not None else np.zeros(len(counts), bool)
    if word_split == "char" and bare.any():
        keep = np.ones(len(flat), dtype=bool)
        keep[starts[bare]] = False
        return flat[keep], counts - bare, np.zeros(len(counts), dtype=np.int64)
    return flat, counts, bare.astype(np.int64)


def _tag_ids(spec: TaskSpec, examples: list[NerExample]) -> np.ndarray | None:
    if any(example.tags is None for example in examples):
        return None
    all_tags = np.array([tag for example in examples for tag in example.tags], dtype=str)
    names, inverse = np.unique(all_tags, return_inverse=True)
    label2id = spec.label2id
    return np.array([label2id[name] for name in names], dtype=np.int64)[inverse] if len(names) else inverse


def most_central(total: int, windows: Iterable[tuple[int, np.ndarray]], fill: float) -> np.ndarray:
    """Per item of a sequence of `total` items, the values of the window (first item, per-item values) where it
    has the most context on its shorter side (the earlier window on a tie); `fill` where no window has it."""
    chosen: np.ndarray | None = None
    context = np.full(total, -1, dtype=np.int64)
    for first, values in windows:
        if chosen is None:
            chosen = np.full((total, *values.shape[1:]), fill, dtype=values.dtype)
        positions = np.arange(len(values))
        window_context = np.minimum(positions, len(values) - 1 - positions)
        items = first + positions
        better = window_context > context[items]
        chosen[items[better]] = values[better]
        context[items[better]] = window_context[better]
    return chosen if chosen is not None else np.full(total, fill)


def ner_word_probabilities(
    spec: TaskSpec, features: list[dict[str, Any]], logits: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per sentence, a (words, labels) array: the softmax at each word's labeled token, taken from the window
    where the word sits most centrally (`most_central`); a row of zeros for a word in no window (longer than
    max_seq_length on its own).

    `logits` holds one (tokens, num_labels) array per feature; rows padded past the feature's length are fine.
    """
    windows: dict[int, list[tuple[int, np.ndarray]]] = {}
    num_words: dict[int, int] = {}
    for feature, feature_logits in zip(features, logits, strict=True):
        index = feature["example_index"]
        at_words = np.asarray(feature_logits, dtype=np.float64)[feature["word_positions"]]
        shifted = np.exp(at_words - at_words.max(axis=-1, keepdims=True)) if len(at_words) else at_words
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True) if len(at_words) else at_words
        windows.setdefault(index, []).append((feature["first_word"], probabilities.reshape(-1, len(spec.labels))))
        num_words[index] = feature["num_words"]
    return [most_central(num_words[i], windows[i], fill=0.0).reshape(num_words[i], len(spec.labels))
            for i in sorted(windows)]


def word_tags(spec: TaskSpec, probabilities: np.ndarray) -> tuple[list[str], list[float]]:
    """The tag and its probability for each word of one sentence (O, 0.0 for a word in no window)."""
    labels = np.array([*spec.labels, "O"], dtype=object)
    ids = np.where(probabilities.max(axis=-1, initial=0.0) > 0, probabilities.argmax(axis=-1), -1)
    return labels[ids].tolist(), probabilities.max(axis=-1, initial=0.0).tolist()


def ner_word_tags(
    spec: TaskSpec, features: list[dict[str, Any]], logits: Sequence[np.ndarray]
) -> list[list[str]]:
    """Predicted tag of every word of every sentence (see `ner_word_probabilities`); O for a word in no window."""
    return [word_tags(spec, probabilities)[0] for probabilities in ner_word_probabilities(spec, features, logits)]


def ner_entities(example: NerExample, tags: Sequence[str]) -> list[NerEntity]:
    """Entities of one sentence from its word tags, with character spans in `example.text`."""
    if len(tags) != len(example.words):
        raise ValueError(f"{len(tags)} tags for {len(example.words)} words")
    entities = []
    for entity_type, first, end in entity_spans(tags):
        start, stop = example.offsets[first][0], example.offsets[end - 1][1]
        entities.append(NerEntity(entity_type, start, stop, example.text[start:stop]))
    return entities


@register
class NerTask(Task):
    """Tags per word: token classification on each word's first real piece, long sentences as windows."""

    name = "ner"
    outputs = "token_classes"
    head = "AlbertForTokenClassification"
    endpoint = "ner"
    metric_names = ("precision", "recall", "f1")
    primary_metric = "f1"

    def spec_from_config(self, architecture: str, config: Any) -> dict[str, Any] | None:
        if architecture != self.head:
            return None
        return {"task": self.name, "labels": label_names(config),
                "max_seq_length": min(self.default_max_seq_length, config.max_position_embeddings)}

    def read_train(self, spec: TaskSpec, path: Path, bad_rows: BadRows) -> tuple[TaskSpec, list[Any]]:
        """Sentences, the tag set (O first) and, when every word is one character, character-level tags."""
        examples = read_ner_examples(spec, path, require_tags=True, bad_rows=bad_rows)
        updates: dict[str, Any] = {
            "labels": spec.labels or sorted_tags(itertools.chain.from_iterable(ex.tags for ex in examples))
        }
        if max(map(len, itertools.chain.from_iterable(ex.words for ex in examples))) == 1:
            # Single characters throughout: character-level tags, so sentences are the characters run together.
            updates["word_split"] = "char"
            examples = [NerExample.from_words(ex.words, ex.tags, ex.line, "char") for ex in examples]
        return dataclasses.replace(spec, **updates), examples

    def read(self, spec: TaskSpec, path: Path, require_labels: bool, bad_rows: BadRows) -> list[Any]:
        return read_ner_examples(spec, path, require_tags=require_labels, bad_rows=bad_rows)

    def example(self, spec: TaskSpec, item: Any, index: int) -> NerExample:
        return NerExample.from_text(item, spec.word_split, index + 1)

    def featurize(self, spec: TaskSpec, tokenizer: Any, examples: list[Any]) -> list[dict[str, Any]]:
        return featurize_ner(spec, tokenizer, examples)

    def decode(self, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
               outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
        """Tags per sentence, and records {"tags", "scores", "entities": [{"type", "start", "end", "text",
        "words"}]}: start/end index the sentence's text, words = [first word, end word)."""
        all_tags, records = [], []
        probabilities = ner_word_probabilities(spec, features, [o["logits"] for o in outputs])
        for example, word_probabilities in zip(examples, probabilities, strict=True):
            tags, scores = word_tags(spec, word_probabilities)
            entities = [{**vars(entity), "words": [first, end]} for entity, (_, first, end)
                        in zip(ner_entities(example, tags), entity_spans(tags), strict=True)]
            all_tags.append(tags)
            records.append({"tags": tags, "scores": scores, "entities": entities})
        return all_tags, records

    def references(self, spec: TaskSpec, examples: list[Any]) -> Any:
        return [ex.tags for ex in examples]

    def scores(self, predictions: Any, references: Any) -> dict[str, float]:
        return entity_scores(predictions, references)
