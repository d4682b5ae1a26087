"""Pretraining wiring: MLM + sentence-order prediction on prepared token shards, through the one loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.pretraining import PretrainingData
from albertkit.errors import UserError
from albertkit.inference.pretrain_eval import evaluation_batches, evaluation_data, score_pretraining
from albertkit.modeling.config import PRESETS, AlbertConfig
from albertkit.modeling.corpus_init import unigram_log_probs, warm_start
from albertkit.modeling.folder import check_tokenizer_matches, write_model_folder
from albertkit.modeling.model import IGNORE_INDEX, AlbertForPreTraining
from albertkit.report.render import write_report
from albertkit.runtime.console import say
from albertkit.tokenization.loading import load_tokenizer
from albertkit.train.engine import is_main_process
from albertkit.train.events import TrainCallback
from albertkit.train.loop import TrainResult, train
from albertkit.train.settings import TrainSettings, load_settings, save_settings, setting


@dataclass
class PretrainSettings(TrainSettings):
    """`albertkit pretrain run`: the loop's settings with pretraining's defaults, and how the model and its examples
    are built. The defaults are the small-machine recipe of configs/pretrain/tiny.yaml (AdamW, small batches, 30%
    single-word masking, a warm start from the corpus; benchmarks/RESULTS.md); configs/pretrain/base.yaml and
    large.yaml hold the paper's (LAMB, batch 4096, 15% n-gram masking)."""

    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    batch_size: int = 16
    warmup_ratio: float = 0.05
    max_steps: int | None = 2000
    eval_every: int | None = 200
    save_every_minutes: float | None = 10.0
    preset: str | None = setting(None, "size of a new model (with --tokenizer); not with --model", choices=PRESETS)
    max_seq_length: int | None = setting(None, "tokens per example", minimum=8,
                                         unset="the length the data was prepared for")
    masked_lm_prob: float = setting(0.3, "share of the tokens masked for MLM", minimum=0)
    max_predictions_per_seq: int | None = setting(None, "masked tokens per sequence at most", minimum=1,
                                                  unset="from --masked-lm-prob and the length")
    max_ngram: int = setting(1, "longest n-gram masked as one span (in words)", minimum=1)
    short_seq_prob: float = setting(0.1, "share of examples given a shorter random length", minimum=0)
    eval_batches: int = setting(20, "held-out batches per evaluation", minimum=1)
    sop_weight: float = setting(1.0, "weight of the sentence-order loss beside the MLM loss", minimum=0)
    unigram_bias: bool = setting(True, "a new model's MLM output bias starts at the corpus's log unigram "
                                 "probabilities")
    embedding_init: str = setting("ppmi", "a new model's word embeddings: random, or ppmi (an SVD of the "
                                  "corpus's co-occurrence PMI)", choices=("random", "ppmi"))
    model: dict[str, Any] = setting({}, "AlbertConfig fields of a new model that differ from the preset",
                                    keys=[f.name for f in dataclasses.fields(AlbertConfig) if f.name != "extra"])


class PretrainingTask:
    """MLM + SOP over `PretrainingData`; evaluation on the held-out slice with fixed masks."""

    metric_name = None
    greater_is_better = True

    def __init__(self, data_dir: Path | list[Path], options: PretrainSettings, tokenizer: Any, seed: int):
        kwargs = dict(
            max_seq_length=options.max_seq_length, short_seq_prob=options.short_seq_prob,
            masked_lm_prob=options.masked_lm_prob, max_predictions_per_seq=options.max_predictions_per_seq,
            max_ngram=options.max_ngram, seed=seed,
        )
        self.train_data = PretrainingData(data_dir, "train", **kwargs)
        self.valid_data = evaluation_data(data_dir, "valid", options.max_seq_length, seed)
        self.options = options
        self.tokenizer = tokenizer
        self._steps: int | None = None
        self._log_unigram: np.ndarray | None = None

    def steps_per_epoch(self, batch_size: int) -> int:
        if self._steps is None:
            self._steps = self.train_data.num_batches(batch_size, 0)
        return self._steps

    def micro_batches(self, batch_size, epoch, step, rank, world_size, micro_batch_size):
        # Epochs differ a little in example count (random target lengths): wrap around within an epoch.
        index = step % max(1, self.train_data.num_batches(batch_size, epoch))
        batch = self.train_data.batch(batch_size, epoch, index, rank=rank, world_size=world_size)
        return split_micro_batches(batch, micro_batch_size)

    def count_items(self, batch):
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def loss(self, model, batch, num_items):
        output = model(**batch, num_items_in_batch=num_items)
        if self.options.sop_weight != 1.0:
            output.loss = output.mlm_loss + self.options.sop_weight * output.sop_loss
        return output

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Held-out MLM (every scored token shown as [MASK]) beside the unigram baselines of the training split,
        and SOP accuracy, over the same fixed masks each time (see inference.pretrain_eval)."""
        if self._log_unigram is None:
            self._log_unigram = unigram_log_probs(self.train_data.shards.token_ids, self.train_data.vocab_size)
        batches = evaluation_batches(self.valid_data, 32, self.options.eval_batches)
        return score_pretraining(model, batches, self._log_unigram)

    def save_model(self, model, directory, summary):
        write_model_folder(model, directory, self.tokenizer, {"task": "pretraining", "summary": summary})


def split_micro_batches(batch: dict[str, torch.Tensor], micro_batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Rows of `batch` in groups of `micro_batch_size`, each trimmed to its own longest row."""
    rows = next(iter(batch.values())).shape[0]
    micro = []
    for start in range(0, rows, micro_batch_size):
        part = {k: v[start : start + micro_batch_size] for k, v in batch.items()}
        if "attention_mask" in part:
            longest = int(part["attention_mask"].sum(1).max())
            part = {k: v[:, :longest] if v.dim() == 2 else v for k, v in part.items()}
        micro.append(part)
    return micro


def build_pretraining_model(
    model_dir: str | Path | None, preset: str | None, tokenizer: Any, overrides: dict[str, Any]
) -> AlbertForPreTraining:
    """Continue from a model folder, or a fresh model of a preset sized to the tokenizer's vocabulary."""
    if model_dir is not None:
        model = AlbertForPreTraining.from_pretrained(model_dir)
    elif preset is not None:
        config = AlbertConfig.from_preset(preset, **{"vocab_size": tokenizer.vocab_size, **overrides})
        model = AlbertForPreTraining(config)
    else:
        raise UserError("give --model DIR to continue pretraining, or --preset NAME with --tokenizer DIR")
    check_tokenizer_matches(tokenizer, model.config)
    return model


def run_pretraining(
    data_dir: str | Path | list[str | Path],
    out_dir: str | Path,
    *,
    model_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    **settings: Any,
) -> TrainResult:
    """`albertkit pretrain run`: pretrain (or continue pretraining) an ALBERT with MLM + SOP.

    `settings` are `PretrainSettings` fields; they override the YAML file `config_path`, which overrides the
    defaults. The run folder gets config.yaml, log.jsonl, checkpoints/, final/ and report.html. Several data
    folders (slices prepared on several machines, say) are read as one corpus. `callbacks` hook into the
    training loop."""
    data_dirs = [Path(d) for d in ([data_dir] if isinstance(data_dir, str | Path) else data_dir)]
    out_dir = Path(out_dir)
    for folder in data_dirs:
        if not (folder / "index.json").is_file() and not (folder / "train").is_dir():
            raise UserError("not a prepared data folder (run `albertkit pretrain prepare` first)", folder)
    data = data_dirs[0] if len(data_dirs) == 1 else data_dirs
    options = load_settings(PretrainSettings, config_path, settings)
    tokenizer_dir = tokenizer_dir or model_dir or data_dirs[0] / "tokenizer"
    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(options.seed)  # the new model's initial weights follow the run's seed
    model = build_pretraining_model(model_dir, options.preset if model_dir is None else None, tokenizer, options.model)
    if options.max_seq_length and options.max_seq_length > model.config.max_position_embeddings:
        raise UserError(
            f"max_seq_length {options.max_seq_length} is above the model's max_position_embeddings"
            f" {model.config.max_position_embeddings}"
        )
    task = PretrainingTask(data, options, tokenizer, options.seed)
    if model_dir is None:  # (a resumed run then loads its checkpoint over it)
        warm_start(model, task.train_data.shards.token_ids, unigram_bias=options.unigram_bias,
                   embeddings=options.embedding_init, seed=options.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_settings(out_dir, options, "pretrain run", {"data": " ".join(map(str, data_dirs)), "model": model_dir, "tokenizer": tokenizer_dir},
                  resume)
    info = {"task": "pretraining", "data": " ".join(map(str, data_dirs)), "parameters": model.num_parameters(),
            "model_config": model.config.to_dict()}
    result = train(model, task, options, out_dir, resume=resume, run_info=info, callbacks=callbacks)
    if is_main_process():
        say(f"report: {write_report(out_dir)}")
    return result
