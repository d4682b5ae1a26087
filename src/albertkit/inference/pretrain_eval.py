"""Held-out pretraining quality: MLM scored where every scored token is shown as [MASK], beside what the unigram
distribution alone achieves at the same positions, and sentence-order accuracy.

`albertkit pretrain evaluate` runs it on raw text for any ALBERT folder with an MLM head (albertkit's, or one
transformers saved from AlbertForPreTraining or AlbertForMaskedLM); pretraining's own evaluation calls
`score_pretraining` on its held-out split.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.corpus import CorpusStats, read_raw_documents
from albertkit.data.prepare import prepare_pretraining_data
from albertkit.data.pretraining import PretrainingData
from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.io.text import resolve_text_files
from albertkit.modeling.corpus_init import unigram_log_probs
from albertkit.modeling.folder import check_tokenizer_matches, load_any_model
from albertkit.modeling.model import IGNORE_INDEX, AlbertForMaskedLM, AlbertForPreTraining
from albertkit.runtime.device import autocast, autocast_dtype, resolve_device
from albertkit.tokenization.loading import load_tokenizer

# Every evaluation masks the same way, whatever the training masks: 15% of the words, one word per span.
EVAL_MASKED_LM_PROB = 0.15
EVAL_MAX_NGRAM = 1


def evaluation_data(data_dir: str | Path | list[str | Path], split: str, max_seq_length: int | None, seed: int) -> PretrainingData:
    """A prepared split as fixed evaluation examples: full length, 15% single-word masks, all shown as [MASK]."""
    return PretrainingData(data_dir, split, max_seq_length=max_seq_length, short_seq_prob=0.0,
                           masked_lm_prob=EVAL_MASKED_LM_PROB, max_ngram=EVAL_MAX_NGRAM, seed=seed, mask_all=True)


def evaluation_batches(data: PretrainingData, batch_size: int = 32, max_batches: int | None = None
                       ) -> Iterable[dict[str, torch.Tensor]]:
    """The split's epoch-0 batches (a batch no larger than the split), at most `max_batches` of them."""
    batch_size = min(batch_size, data.num_examples(0))
    if batch_size == 0:
        return []
    count = data.num_batches(batch_size, 0)
    return (data.batch(batch_size, 0, index) for index in range(min(count, max_batches or count)))


@torch.no_grad()
def score_pretraining(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                      log_unigram: np.ndarray) -> dict[str, float]:
    """MLM loss, accuracy and perplexity at the labelled positions of `batches`; beside them the accuracy of always
    predicting the unigram's most frequent token (`mlm_baseline_accuracy`) and the unigram's own loss
    (`mlm_unigram_loss`) at the same positions; SOP accuracy and its pair count when the model has the SOP head."""
    device = next(model.parameters()).device
    log_unigram_t = torch.as_tensor(log_unigram, device=device)
    most_frequent = int(log_unigram_t.argmax())
    loss_sum = unigram_sum = 0.0
    correct = baseline = count = sop_correct = sop_count = 0
    with_sop = isinstance(model, AlbertForPreTraining)
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
        out = model(**inputs, num_items_in_batch=1)
        masked = batch["labels"][batch["labels"] != IGNORE_INDEX]
        logits = out.prediction_logits if with_sop else out.logits
        loss_sum += float(out.mlm_loss)
        correct += int((logits.argmax(-1) == masked).sum())
        baseline += int((masked == most_frequent).sum())
        unigram_sum -= float(log_unigram_t[masked].sum())
        count += masked.numel()
        if with_sop and "sentence_order_label" in batch:
            sop_correct += int((out.sop_logits.argmax(-1) == batch["sentence_order_label"]).sum())
            sop_count += batch["sentence_order_label"].numel()
    if count == 0:
        return {}
    scores = {"mlm_loss": loss_sum / count, "mlm_accuracy": correct / count,
              "perplexity": math.exp(min(loss_sum / count, 50.0)), "mlm_baseline_accuracy": baseline / count,
              "mlm_unigram_loss": unigram_sum / count, "masked_tokens": count}
    if sop_count:
        scores.update(sop_accuracy=sop_correct / sop_count, sop_pairs=sop_count)
    return scores


def evaluate_pretraining(
    model_dir: str | Path, inputs: str | Path | Iterable[str | Path], *, max_seq_length: int = 128,
    max_documents: int | None = None, batch_size: int = 32, seed: int = 0, output: str | Path | None = None,
    device: str = "auto", precision: str = "auto",
) -> dict[str, Any]:
    """`albertkit pretrain evaluate`: score the model folder `model_dir` (its own tokenizer) on the raw text of
    `inputs` (the first `max_documents` documents), cut into `max_seq_length` sentence pairs. The baselines come
    from the evaluated text's own unigram counts, which can only flatter them. Writes the scores as JSON to
    `output` when given. The model runs on `device` in `precision` (auto: bf16 autocast on CUDA, fp32 elsewhere)."""
    target = resolve_device(device)
    model = load_any_model(model_dir, default="AlbertForMaskedLM")
    if not isinstance(model, AlbertForPreTraining | AlbertForMaskedLM):
        raise UserError(f"{type(model).__name__} has no masked-LM head to evaluate", Path(model_dir) / "config.json")
    tokenizer = load_tokenizer(model_dir)
    check_tokenizer_matches(tokenizer, model.config, model_dir)
    files = resolve_text_files(inputs)
    if not files:
        raise UserError("no input files given")
    model.to(target).eval()
    amp_dtype = autocast_dtype(precision, target, inference=True)
    with tempfile.TemporaryDirectory(prefix="albertkit-eval-") as tmp:
        if max_documents is not None:
            files = [_first_documents(files, max_documents, Path(tmp) / "documents.txt")]
        with contextlib.redirect_stdout(io.StringIO()):
            prepare_pretraining_data(files, model_dir, Path(tmp) / "data", max_seq_length=max_seq_length,
                                     valid_fraction=0.0, workers=1, seed=seed)
        data = evaluation_data(Path(tmp) / "data", "train", max_seq_length, seed)
        log_unigram = unigram_log_probs(data.shards.token_ids, model.config.vocab_size)
        with autocast(target, amp_dtype):
            scores = score_pretraining(model, evaluation_batches(data, batch_size), log_unigram)
        if not scores:
            raise UserError("too little text to evaluate: no sentence pair could be built", files[0])
        scores.update(documents=data.shards.num_documents, max_seq_length=max_seq_length)
    if output is not None:
        write_text_atomic(output, json.dumps(scores, indent=2) + "\n")
    return scores


def _first_documents(files: list[Path], count: int, out: Path) -> Path:
    """The first `count` documents of `files` (by the corpus reader's rules) in one text file."""
    documents = itertools.islice(read_raw_documents(files, CorpusStats()), count)
    out.write_text("".join("\n".join(d.paragraphs) + "\n\n" for d in documents), encoding="utf-8")
    return out


def format_scores(scores: dict[str, Any]) -> str:
    """The scores as a few lines: MLM against the baselines, SOP."""
    lines = [
        f"masked tokens {scores['masked_tokens']:,} in {scores['documents']:,} documents "
        f"({scores['max_seq_length']}-token pairs, every scored token shown as [MASK])",
        f"MLM loss {scores['mlm_loss']:.4f} (unigram baseline {scores['mlm_unigram_loss']:.4f}), "
        f"perplexity {scores['perplexity']:.1f}",
        f"MLM accuracy {scores['mlm_accuracy']:.4f} (most-frequent-token baseline {scores['mlm_baseline_accuracy']:.4f},"
        f" {scores['mlm_accuracy'] / max(scores['mlm_baseline_accuracy'], 1e-9):.2f}x)",
    ]
    if "sop_accuracy" in scores:
        lines.append(f"SOP accuracy {scores['sop_accuracy']:.4f} over {scores['sop_pairs']:,} pairs (chance 0.5)")
    return "\n".join(lines)
