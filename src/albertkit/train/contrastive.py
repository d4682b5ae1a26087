"""Contrastive fine-tuning for sentence embeddings (SimCSE), through the one training loop.

Unsupervised (Gao et al. 2021): each sentence is encoded twice with dropout on; the two views are a positive
pair, the other sentences of the batch negatives. Supervised: the positives are the labeled paraphrase pairs
of a file. Both minimise InfoNCE over cosine similarities divided by a temperature. Evaluation: Spearman
correlation between cosine similarity and the gold score of held-out sentence pairs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from albertkit.errors import UserError
from albertkit.inference.embed import (
    POOLINGS,
    Encoder,
    pad_batch,
    pool_embeddings,
    with_special_tokens,
)
from albertkit.inference.sentence_transformers_folder import write_sentence_transformers_modules
from albertkit.io.tables import (
    BadRows,
    iter_input_texts,
    keep_width,
    read_table,
    reporting_skipped_rows,
    separator_hint,
)
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.folder import write_model_folder
from albertkit.modeling.model import AlbertModel, AlbertOutput
from albertkit.report.render import write_report
from albertkit.runtime.console import say
from albertkit.tasks.metrics import spearman
from albertkit.tokenization.loading import load_tokenizer
from albertkit.train.engine import is_main_process
from albertkit.train.events import TrainCallback
from albertkit.train.loop import TrainResult, train
from albertkit.train.settings import TrainSettings, load_settings, save_settings, setting


@dataclass
class ContrastiveSettings(TrainSettings):
    """`albertkit embed-train`: the loop's settings with SimCSE's recipe (batch 64, lr 3e-5, one epoch, no
    warmup) as defaults, and the contrastive objective."""

    batch_size: int = 64
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.0
    pooling: str = setting("mean", "how token vectors become one sentence vector", choices=POOLINGS)
    temperature: float = setting(0.05, "softmax temperature of the InfoNCE loss over cosine similarities",
                                 minimum=1e-6)
    max_seq_length: int = setting(64, "tokens per sentence, [CLS] and [SEP] included", minimum=3)
    dropout: float = setting(0.1, "dropout while training: the noise that makes a sentence's two views differ "
                             "(unsupervised)", minimum=0)
    positive_threshold: float = setting(1.0, "supervised: pairs scored at least this are positives")
    skip_bad_rows: bool = setting(False, "skip (and report) rows of the input files that cannot be read, instead "
                                  "of stopping at the first")


@dataclass
class SentencePairs:
    """Sentence pairs with a gold similarity (a 0/1 paraphrase label or a graded score)."""

    first: list[str]
    second: list[str]
    scores: np.ndarray


def read_sentence_pairs(path: str | Path, columns: tuple[int, int, int] = (0, 1, 2),
                        bad_rows: BadRows | None = None) -> SentencePairs:
    """sentence1, sentence2, score columns of a .tsv/.csv/.jsonl (AFQMC's layout by default), read once; a first row
    whose score is no number is a header. Later rows without a numeric score are bad rows (`bad_rows`' policy)."""
    path, bad_rows = Path(path), bad_rows if bad_rows is not None else BadRows()
    table = read_table(path, bad_rows)
    rows = table.rows
    first = next(rows, None)
    if first is None:
        raise UserError("no sentence pairs in the file", path)
    width = len(table.header or first[1])
    if max(columns) >= width:
        raise UserError(f"sentence pairs need {max(columns) + 1} columns; the first row has {width}", path, first[0])
    if table.header is not None or _is_number(first[1][columns[2]]):
        rows = itertools.chain([first], rows)
    first_texts, second_texts, scores = [], [], []
    for number, cells in keep_width(path, rows, width, bad_rows, separator_hint(path)):
        score = cells[columns[2]]
        if not _is_number(score):
            bad_rows.reject(path, number, f"score {score!r} is not a number", "a score that is not a number")
            continue
        first_texts.append(cells[columns[0]])
        second_texts.append(cells[columns[1]])
        scores.append(float(score))
    bad_rows.report(path)
    if not scores:
        raise UserError("no sentence pairs in the file", path)
    return SentencePairs(first_texts, second_texts, np.array(scores, dtype=np.float64))


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def similarity_spearman(encoder: Encoder, pairs: SentencePairs, pooling: str = "mean", batch_size: int = 64) -> float:
    """Spearman correlation between the cosine similarity of each pair's embeddings and its gold score."""
    a = encoder.encode(pairs.first, batch_size=batch_size, pooling=pooling, show_progress=False)
    b = encoder.encode(pairs.second, batch_size=batch_size, pooling=pooling, show_progress=False)
    return spearman((a * b).sum(axis=1), pairs.scores)


class SentenceEncoder(torch.nn.Module):
    """The encoder with its pooling as `forward`, so that DDP sees the call it wraps."""

    def __init__(self, albert: AlbertModel, pooling: str):
        super().__init__()
        self.albert = albert
        self.config = albert.config  # checkpoints record the model's config
        self.pooling = pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pool_embeddings(self.albert, input_ids, attention_mask, self.pooling)


class ContrastiveTask:
    """In-batch InfoNCE over (anchor, positive) id sequences; positives None means dropout views (SimCSE)."""

    greater_is_better = True

    def __init__(self, tokenizer: Any, anchors: list[np.ndarray], positives: list[np.ndarray] | None,
                 eval_pairs: SentencePairs | None, options: ContrastiveSettings, seed: int, info: dict[str, Any]):
        self.tokenizer = tokenizer
        self.anchors = anchors
        self.positives = positives
        self.eval_pairs = eval_pairs
        self.options = options
        self.seed = seed
        self.info = info
        self.metric_name = "spearman" if eval_pairs is not None else None

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.anchors) // batch_size

    def micro_batches(self, batch_size: int, epoch: int, step: int, rank: int, world_size: int,
                      micro_batch_size: int) -> list[dict[str, torch.Tensor]]:
        # One forward pass per process: every row's negatives are the other rows of the same pass.
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.anchors))
        rows = order[step * batch_size:(step + 1) * batch_size][rank::world_size]
        pad = self.tokenizer.pad_token_id
        input_ids, attention_mask = pad_batch([self.anchors[i] for i in rows], pad)
        positives = self.positives if self.positives is not None else self.anchors
        positive_ids, positive_mask = pad_batch([positives[i] for i in rows], pad)
        return [{"input_ids": input_ids, "attention_mask": attention_mask,
                 "positive_input_ids": positive_ids, "positive_attention_mask": positive_mask}]

    def count_items(self, batch: dict[str, torch.Tensor]) -> None:
        return None

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], num_items: float | None) -> AlbertOutput:
        anchors = F.normalize(model(batch["input_ids"], batch["attention_mask"]), dim=-1)
        positives = F.normalize(model(batch["positive_input_ids"], batch["positive_attention_mask"]), dim=-1)
        similarity = anchors @ positives.T / self.options.temperature
        return AlbertOutput(loss=F.cross_entropy(similarity, torch.arange(len(similarity), device=similarity.device)))

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        if self.eval_pairs is None:
            return {}
        encoder = Encoder.from_model(model.albert, self.tokenizer, self.options.max_seq_length)
        return {"spearman": similarity_spearman(encoder, self.eval_pairs, self.options.pooling)}

    def save_model(self, model: torch.nn.Module, directory: Path, summary: dict[str, Any]) -> None:
        albert = model.albert
        # The saved config keeps the folder's own dropout: the extra noise was for training only.
        albert.config.hidden_dropout_prob, albert.config.attention_probs_dropout_prob = self.info["dropout"]
        write_model_folder(albert, directory, self.tokenizer,
                           {"task": "sentence-embeddings", "pooling": self.options.pooling, "normalize": True,
                            "sentence_transformers": True, **self.info, "summary": summary})
        # Also a sentence-transformers model giving `albertkit embed`'s unit vectors (Encoder's default length).
        write_sentence_transformers_modules(directory, albert, self.options.pooling, normalize=True,
                                            max_length=min(512, albert.config.max_position_embeddings))


def train_sentence_embeddings(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    sentences: str | Path | None = None,
    pairs: str | Path | None = None,
    eval_pairs: str | Path | None = None,
    config_path: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    **settings: Any,
) -> tuple[TrainResult, float | None]:
    """`albertkit embed-train`: fine-tune the encoder of `model_dir` for sentence similarity; the model lands in
    `out_dir/final`.

    `sentences` (one per line, or a .tsv/.csv column 0): unsupervised SimCSE. `pairs` (sentence1, sentence2,
    label columns): supervised, positives where the label reaches `positive_threshold`. `eval_pairs`: Spearman
    correlation on held-out pairs, before training (returned) and at each evaluation (in the result).
    `settings` are `ContrastiveSettings` fields; they override the YAML file `config_path`, which overrides the
    defaults.
    """
    if (sentences is None) == (pairs is None):
        raise UserError("give either sentences (unsupervised SimCSE) or labeled pairs (supervised), not both")
    options = load_settings(ContrastiveSettings, config_path, settings)
    tokenizer = load_tokenizer(model_dir)
    original = AlbertConfig.from_pretrained(model_dir)
    albert = AlbertModel.from_pretrained(model_dir, hidden_dropout_prob=options.dropout,
                                         attention_probs_dropout_prob=options.dropout)
    max_length = min(options.max_seq_length, albert.config.max_position_embeddings)
    bad_rows = BadRows(options.skip_bad_rows)
    with reporting_skipped_rows():
        anchors, positives, mode = read_training_sentences(tokenizer, sentences, pairs, options.positive_threshold,
                                                           max_length, bad_rows)
        held_out = read_sentence_pairs(eval_pairs, bad_rows=bad_rows) if eval_pairs is not None else None
    if len(anchors) < options.batch_size:
        raise UserError(f"{len(anchors)} training examples, fewer than one batch of {options.batch_size}",
                        sentences or pairs)
    info = {"mode": mode, "base_model": str(model_dir), "temperature": options.temperature,
            "dropout": [original.hidden_dropout_prob, original.attention_probs_dropout_prob]}
    task = ContrastiveTask(tokenizer, anchors, positives, held_out, options, options.seed, info)
    model = SentenceEncoder(albert, options.pooling)
    before = None
    if held_out is not None:
        model.eval()
        before = task.evaluate(model)["spearman"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_settings(out_dir, options, "embed-train", {"model": model_dir, "sentences": sentences, "pairs": pairs,
                                                    "eval_pairs": eval_pairs}, resume)
    result = train(model, task, options, out_dir, resume=resume, callbacks=callbacks,
                   run_info={"task": "sentence-embeddings", "mode": mode, "spearman_before": before})
    if is_main_process():
        say(f"report: {write_report(out_dir)}")
    return result, before


def read_training_sentences(
    tokenizer: Any, sentences: str | Path | None, pairs: str | Path | None, positive_threshold: float, max_length: int,
    bad_rows: BadRows | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray] | None, str]:
    """(anchors, positives, mode) as token ids: `sentences` give anchors without positives (unsupervised), `pairs`
    give the pairs scored at least `positive_threshold` (supervised)."""

    def tokenize(texts: list[str]) -> list[np.ndarray]:
        return with_special_tokens(tokenizer.encode_batch(texts), tokenizer.cls_token_id, tokenizer.sep_token_id,
                                   max_length)

    if sentences is not None:
        column = 0 if Path(sentences).suffix in (".tsv", ".csv") else None
        texts = [text for _, text in iter_input_texts(sentences, column, bad_rows=bad_rows) if text.strip()]
        if bad_rows is not None:
            bad_rows.report(sentences)
        return tokenize(texts), None, "unsupervised"
    labeled = read_sentence_pairs(pairs, bad_rows=bad_rows)
    keep = np.flatnonzero(labeled.scores >= positive_threshold)
    return (tokenize([labeled.first[i] for i in keep]), tokenize([labeled.second[i] for i in keep]),
            "supervised")
