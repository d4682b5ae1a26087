"""Fine-tuning wiring: task heads on a pretrained ALBERT, through the one training loop.

Classification, sentence pairs, regression, NER and extractive QA; length-bucketed batches with dynamic
padding; the best model on the dev metric kept in OUT/best; optional LoRA (peft) or a frozen encoder.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches
from albertkit.errors import UserError
from albertkit.inference.predict import evaluate_model
from albertkit.inference.predictor import evaluate_features
from albertkit.io.tables import BadRows, reporting_skipped_rows
from albertkit.modeling.folder import update_model_card, write_model_folder
from albertkit.modeling.model import HEADS
from albertkit.report.render import write_report
from albertkit.runtime.console import say
from albertkit.tasks.base import TASK_NAMES, get_task
from albertkit.tasks.spec import TaskSpec, featurize, read_examples, read_train_examples
from albertkit.tokenization.loading import load_tokenizer
from albertkit.train.engine import is_main_process
from albertkit.train.events import TrainCallback
from albertkit.train.loop import TrainResult, train
from albertkit.train.settings import TrainSettings, load_settings, save_settings, setting

# Linear layers LoRA adapts: every projection of ALBERT's shared layer (so each adapter serves all layers).
LORA_TARGETS = ["query", "key", "value", "dense", "ffn", "ffn_output"]



@dataclass
class FinetuneSettings(TrainSettings):
    """`albertkit finetune`: the loop's settings with fine-tuning's defaults (AdamW at 5e-5, three epochs), the
    task and how its files are read, and which parameters train."""

    epochs: float = 3.0
    log_every: int = 20
    task: str | None = setting(None, "task type (required here or as `task:` in the config file)", choices=TASK_NAMES)
    text_column: str | int | None = setting(None, "text column: header name or 0-based index", unset="0")
    text_pair_column: str | int | None = setting(None, "second text of a pair: name or index", unset="1")
    label_column: str | int | None = setting(None, "label column: name or index", unset="the last column")
    header: bool | None = setting(None, "whether the files start with a header row", unset="detected")
    max_seq_length: int | None = setting(None, "tokens per example", minimum=8, unset="128; 384 for qa")
    doc_stride: int | None = setting(None, "qa: overlap of context windows in tokens", minimum=1, unset="128")
    max_query_length: int | None = setting(None, "qa: question tokens kept", minimum=1, unset="64")
    lora_r: int | None = setting(None, "train LoRA adapters of this rank instead of all weights", minimum=1)
    lora_alpha: float | None = setting(None, "LoRA scaling", minimum=0, unset="2 x rank")
    lora_dropout: float = setting(0.1, "dropout on the LoRA adapters' input", minimum=0)
    freeze_encoder: bool = setting(False, "train the task head only")
    dropout: float | None = setting(None, "dropout of the encoder's hidden states and attention weights", minimum=0,
                                    unset="the model's config.json")
    eval_batch_size: int = setting(64, "rows per forward pass when evaluating on dev", minimum=1)
    skip_bad_rows: bool = setting(False, "skip (and report) rows of the train and dev files that cannot be read, "
                                  "instead of stopping at the first")


class FinetuningTask:
    """A labeled task for the training loop; evaluation decodes dev predictions and scores them."""

    def __init__(self, spec: TaskSpec, tokenizer: Any, train_features: list[dict[str, Any]],
                 dev_examples: list[Any], dev_features: list[dict[str, Any]], seed: int, eval_batch_size: int):
        self.spec, self.tokenizer, self.seed = spec, tokenizer, seed
        self.train_features, self.dev_examples, self.dev_features = train_features, dev_examples, dev_features
        self.lengths = np.array([len(f["input_ids"]) for f in train_features])
        self.eval_batch_size = eval_batch_size
        self.metric_name = get_task(spec.task).primary_metric
        self.greater_is_better = self.metric_name != "mse"
        self._epoch_batches: tuple[int, list[np.ndarray]] | None = None

    def _batches(self, batch_size: int, epoch: int) -> list[np.ndarray]:
        """The epoch's full batches of similar lengths, in a shuffled order fixed by (seed, epoch)."""
        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            size = min(batch_size, len(self.lengths))
            batches = length_bucketed_batches(self.lengths, size, shuffle=True, seed=self.seed, epoch=epoch)
            self._epoch_batches = (epoch, [b for b in batches if len(b) == size])
        return self._epoch_batches[1]

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self._batches(batch_size, 0))

    def micro_batches(self, batch_size, epoch, step, rank, world_size, micro_batch_size):
        rows = self._batches(batch_size, epoch)[step]
        share = len(rows) // world_size
        rows = rows[rank * share : (rank + 1) * share]
        return [collate([self.train_features[i] for i in rows[start : start + micro_batch_size]],
                        self.tokenizer.pad_token_id) for start in range(0, len(rows), micro_batch_size)]

    def count_items(self, batch):
        return None

    def loss(self, model, batch, num_items):
        return model(**batch)

    def evaluate(self, model: torch.nn.Module) -> dict[str, Any]:
        return evaluate_features(model, self.spec, self.dev_examples, self.dev_features, self.eval_batch_size,
                                 self.tokenizer.pad_token_id)

    def save_model(self, model: torch.nn.Module, directory: Path, summary: dict[str, Any]) -> None:
        write_model_folder(plain_model(model), directory, self.tokenizer,
                           {"task": self.spec.task, "task_spec": self.spec.to_dict(), "summary": summary})


def plain_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model as a plain ALBERT: LoRA adapters merged into a copy's weights, the training model untouched."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def build_model(spec: TaskSpec, model_dir: str | Path, options: FinetuneSettings) -> torch.nn.Module:
    """The task's head on the encoder of `model_dir`, with LoRA or a frozen encoder when asked."""
    task = get_task(spec.task)
    overrides: dict[str, Any] = task.head_config(spec)
    if options.dropout is not None:
        if options.dropout >= 1:
            raise UserError(f"dropout must be below 1, not {options.dropout}")
        overrides.update(hidden_dropout_prob=options.dropout, attention_probs_dropout_prob=options.dropout)
    model = HEADS[task.head].from_pretrained(model_dir, **overrides)
    if model.config.max_position_embeddings < spec.max_seq_length:
        raise UserError(f"max_seq_length {spec.max_seq_length} is above the model's max_position_embeddings "
                        f"{model.config.max_position_embeddings}", Path(model_dir) / "config.json")
    if options.freeze_encoder:
        for param in model.albert.parameters():
            param.requires_grad_(False)
    if options.lora_r:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise UserError("LoRA needs peft: pip install 'albertkit[train]' (or pip install peft)") from err
        lora = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha or 2 * options.lora_r,
                          lora_dropout=options.lora_dropout, target_modules=LORA_TARGETS,
                          modules_to_save=list(task.head_modules))
        model = get_peft_model(model, lora)
    return model


def _task_spec(options: FinetuneSettings) -> TaskSpec:
    """The task and how its files are read, from the settings that name TaskSpec fields (None: TaskSpec's default)."""
    values = {k: v for k, v in dataclasses.asdict(options).items()
              if k in {f.name for f in dataclasses.fields(TaskSpec)} and v is not None}
    return TaskSpec(**values)


def train_task_model(model: torch.nn.Module, spec: TaskSpec, tokenizer: Any, train_examples: list[Any],
                     dev_examples: list[Any], run_dir: str | Path, options: FinetuneSettings,
                     task_class: type[FinetuningTask] = FinetuningTask, **task_options: Any) -> TrainResult:
    """Train an already built `model` on examples read with `spec` (prune's recovery, distillation), the best on
    dev kept in RUN_DIR/best. `task_class` (with `task_options`) may change the loss."""
    task_impl = task_class(spec, tokenizer, featurize(spec, tokenizer, train_examples), dev_examples,
                           featurize(spec, tokenizer, dev_examples), options.seed, options.eval_batch_size,
                           **task_options)
    info = {"task": spec.task, "train_examples": len(train_examples), "dev_examples": len(dev_examples),
            "labels": spec.labels, "parameters": sum(p.numel() for p in model.parameters())}
    return train(model, task_impl, options, run_dir, run_info=info)


def finetune_settings(task: str | None, config_path: str | Path | None, settings: dict[str, Any]) -> FinetuneSettings:
    """The effective settings: `settings` over the YAML file `config_path` over the defaults; `task` (None: the
    config file's) is the `task` setting, which must be given somewhere."""
    options = load_settings(FinetuneSettings, config_path, {**settings, **({"task": task} if task else {})})
    if options.task is None:
        raise UserError("no task: pass --task or set `task:` in the config file")
    return options


def run_finetuning(
    task: str | None,
    model_dir: str | Path,
    train_path: str | Path,
    dev_path: str | Path,
    out_dir: str | Path,
    *,
    test_path: str | Path | None = None,
    config_path: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    **settings: Any,
) -> TrainResult:
    """`albertkit finetune`: train a task head on `model_dir`, keep the best on dev in OUT/best, test it.

    `settings` are `FinetuneSettings` fields; they override the YAML file `config_path`, which overrides the
    defaults. `task` (None: the config file's) is the `task` setting. `callbacks` hook into the training loop."""
    out_dir = Path(out_dir)
    options = finetune_settings(task, config_path, settings)
    tokenizer = load_tokenizer(model_dir)
    bad_rows = BadRows(options.skip_bad_rows)
    with reporting_skipped_rows():
        spec, train_examples = read_train_examples(_task_spec(options), train_path, bad_rows)
        dev_examples = read_examples(spec, dev_path, bad_rows=bad_rows)
    if bad_rows.skip:
        say(f"{len(train_examples):,} training and {len(dev_examples):,} dev examples{bad_rows.summary()}")
    if not train_examples or not dev_examples:
        raise UserError("no examples to train on" if not train_examples else "no dev examples",
                        train_path if not train_examples else dev_path)
    torch.manual_seed(options.seed)  # the new head's initial weights follow the run's seed
    model = build_model(spec, model_dir, options)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.vocab_size} pieces but the model expects "
                        f"{model.config.vocab_size}", model_dir)
    task_impl = FinetuningTask(spec, tokenizer, featurize(spec, tokenizer, train_examples), dev_examples,
                               featurize(spec, tokenizer, dev_examples), options.seed, options.eval_batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_settings(out_dir, options, "finetune", {"model": model_dir, "train": train_path, "dev": dev_path,
                                                 "test": test_path}, resume)
    info = {"task": options.task, "data": str(train_path), "train_examples": len(train_examples),
            "dev_examples": len(dev_examples), "skipped_rows": bad_rows.count, "labels": spec.labels,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    result = train(model, task_impl, options, out_dir, resume=resume, run_info=info, callbacks=callbacks)
    if is_main_process():
        say(f"report: {write_report(out_dir)}")
    if test_path is not None:
        test_metrics = evaluate_model(out_dir / "best", test_path, output=out_dir / "test_metrics.json",
                                      bad_rows=BadRows(options.skip_bad_rows))
        update_model_card(out_dir / "best", test_metrics, split="test")  # the card shows the test figures too
        say("test: " + json.dumps({k: v for k, v in test_metrics.items() if isinstance(v, float)}))
    return result
