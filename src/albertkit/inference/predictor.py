"""The one path from a fine-tuned model's inputs to its predictions, shared by finetune's evaluation, `evaluate`,
`predict` and `serve`: the task featurizes, the model runs, the task decodes. The same model therefore gives the
same answer from every command.

    predictor = Predictor("runs/sst2/best")                     # model, tokenizer, task settings
    predictor.predict_inputs(["a gripping film"])               # [{"label": ..., "probabilities": {...}}]
    predictor.evaluate(read_examples(predictor.spec, "dev.tsv"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches, token_budget_batches
from albertkit.errors import UserError
from albertkit.inference.onnx_backend import BACKENDS, OnnxRuntimeModel
from albertkit.inference.quantize import quantize_model
from albertkit.modeling.folder import load_any_model, read_model_info
from albertkit.runtime.console import progress_bar
from albertkit.runtime.device import CUDA_MAX_TOKENS, autocast, autocast_dtype, resolve_device
from albertkit.runtime.memory import keep_freed_memory
from albertkit.tasks.base import Task, get_task, spec_fields_for_model
from albertkit.tasks.spec import TaskSpec
from albertkit.tokenization.loading import load_tokenizer

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


@torch.inference_mode()
def run_features(model: torch.nn.Module, features: list[dict[str, Any]], batch_size: int = 64,
                 pad_id: int = 0, show_progress: bool = False, amp_dtype: torch.dtype | None = None,
                 max_tokens: int = 0) -> list[dict[str, np.ndarray]]:
    """The head's outputs for every feature, in feature order (batches go longest first, unpadded): `batch_size`
    features per batch, or with `max_tokens` as many as that many padded tokens hold; under autocast in
    `amp_dtype` (None: the model's own dtype)."""
    device = model_device(model)
    lengths = np.array([len(f["input_ids"]) for f in features])
    outputs: list[dict[str, np.ndarray] | None] = [None] * len(features)
    batches = (token_budget_batches(lengths, max_tokens) if max_tokens
               else length_bucketed_batches(lengths, batch_size, shuffle=False))
    for rows in progress_bar(batches, desc="predicting", unit="batch", disable=not show_progress, mininterval=1.0):
        batch = collate([features[i] for i in rows], pad_id)
        with autocast(device, amp_dtype):
            out = model(**{k: batch[k].to(device) for k in MODEL_INPUTS})
        produced = {name: getattr(out, name).float().cpu().numpy()
                    for name in ("logits", "start_logits", "end_logits") if getattr(out, name) is not None}
        # Per-token outputs (NER logits, QA start/end) keep only the feature's own tokens.
        per_token = {name for name, value in produced.items() if value.ndim == 3 or name != "logits"}
        for j, i in enumerate(rows):
            outputs[i] = {name: value[j][: lengths[i]] if name in per_token else value[j]
                          for name, value in produced.items()}
    return outputs  # type: ignore[return-value]


def evaluate_features(model: torch.nn.Module, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
                      batch_size: int = 64, pad_id: int = 0, amp_dtype: torch.dtype | None = None,
                      max_tokens: int = 0) -> dict[str, Any]:
    """Metrics of `model` on labeled, featurized examples, as the task reports them (classification adds the
    confusion matrix)."""
    task = get_task(spec.task)
    outputs = run_features(model, features, batch_size, pad_id, amp_dtype=amp_dtype, max_tokens=max_tokens)
    predictions, _ = task.decode(spec, examples, features, outputs)
    return task.metrics(spec, predictions, task.references(spec, examples))


def model_device(model: Any) -> torch.device:
    """Where `model` runs: albertkit's models and the ONNX backend say so; any other module: its weights' device."""
    return model.device if hasattr(model, "device") else next(model.parameters()).device


def inference_settings(model: torch.nn.Module, precision: str, max_tokens: int | None) -> dict[str, Any]:
    """run_features' autocast dtype and token budget for `model`'s device (the Encoder's rules)."""
    device = model_device(model)
    if max_tokens is not None and max_tokens < 0:
        raise UserError(f"max tokens must be at least 0 (0: batches of batch_size), got {max_tokens}")
    budget = max_tokens if max_tokens is not None else (CUDA_MAX_TOKENS if device.type == "cuda" else 0)
    return {"amp_dtype": autocast_dtype(precision, device, inference=True), "max_tokens": budget}


def architecture_of(model: Any) -> str:
    """The head's class name (an ONNX export's from its config.json)."""
    if isinstance(model, torch.nn.Module):
        return type(model).__name__
    return (model.config.architectures or ["AlbertModel"])[0]


def folder_spec(model_dir: str | Path, model: Any) -> TaskSpec | None:
    """The task settings of a model folder: albertkit.json's (a fine-tuned folder), else those of the registered
    task that fits the folder's head (any HF folder with a task head); None for a folder without a task head."""
    info = read_model_info(model_dir)
    if "task_spec" in info:
        return TaskSpec.from_dict(info["task_spec"])
    fields = spec_fields_for_model(architecture_of(model), model.config)
    return None if fields is None else TaskSpec(**fields)


def load_task_model(model_dir: str | Path, quantize: str | None = None, device: str = "cpu",
                    backend: str = "torch") -> tuple[torch.nn.Module, Any, TaskSpec]:
    """Model (on `device`, the CPU unless asked; int8 on the CPU with `quantize="int8"`; with `backend="onnx"`, the
    folder's exported ONNX model on onnxruntime's CPU provider), tokenizer and task settings of a folder written by
    `albertkit finetune` (or exported from one, or any HF folder with a task head)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    target = resolve_device(device, cpu_only=quantize is not None or backend == "onnx")
    keep_freed_memory()
    if backend == "onnx":
        model = OnnxRuntimeModel(model_dir, quantize)
    else:
        model = quantize_model(load_any_model(model_dir).to(target).eval(), quantize)
    spec = folder_spec(model_dir, model)
    if spec is None:
        raise UserError(f"not a fine-tuned model folder ({architecture_of(model)} has no task head, and "
                        "albertkit.json has no task settings)", model_dir)
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.vocab_size} pieces but the model expects "
                        f"{model.config.vocab_size}", model_dir)
    return model, tokenizer, spec


class Predictor:
    """A fine-tuned model with its tokenizer and task settings; see the module notes. `device`, `quantize` and
    `backend` as for `load_task_model`; `precision` and `max_tokens` as for `inference_settings`."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 64, quantize: str | None = None,
                 precision: str = "auto", max_tokens: int | None = None, backend: str = "torch"):
        model, tokenizer, spec = load_task_model(model_dir, quantize, device, backend)
        self._attach(model, tokenizer, spec, batch_size, **inference_settings(model, precision, max_tokens))

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, spec: TaskSpec, batch_size: int = 64,
                   amp_dtype: torch.dtype | None = None, max_tokens: int = 0) -> Predictor:
        """A Predictor over a model already in memory (fine-tuning's evaluation, the server's model)."""
        predictor = cls.__new__(cls)
        predictor._attach(model, tokenizer, spec, batch_size, amp_dtype, max_tokens)
        return predictor

    def _attach(self, model: Any, tokenizer: Any, spec: TaskSpec, batch_size: int, amp_dtype: torch.dtype | None,
                max_tokens: int) -> None:
        self.model, self.tokenizer, self.spec, self.batch_size = model, tokenizer, spec, batch_size
        self.amp_dtype, self.max_tokens = amp_dtype, max_tokens

    def with_model(self, model: Any) -> Predictor:
        """The same predictor over another model of the same head (its int8 or ONNX twin)."""
        return Predictor.from_model(model, self.tokenizer, self.spec, self.batch_size, self.amp_dtype, self.max_tokens)

    @property
    def task(self) -> Task:
        return get_task(self.spec.task)

    def featurize(self, examples: list[Any]) -> list[dict[str, Any]]:
        return self.task.featurize(self.spec, self.tokenizer, examples)

    def run(self, examples: list[Any], show_progress: bool = False) -> tuple[Any, list[dict[str, Any]]]:
        """(predictions in the form the task's metrics take, one output record per example)."""
        features = self.featurize(examples)
        outputs = run_features(self.model, features, self.batch_size, self.tokenizer.pad_token_id, show_progress,
                               self.amp_dtype, self.max_tokens)
        return self.task.decode(self.spec, examples, features, outputs)

    def predict(self, examples: list[Any]) -> list[dict[str, Any]]:
        """One output record per example (read with `tasks.spec.read_examples`)."""
        return self.run(examples)[1]

    def examples(self, items: list[Any]) -> list[Any]:
        """Unlabeled examples of API inputs (a text; a (text, pair) or (question, context) tuple), read the way
        the task's files are."""
        return [self.task.example(self.spec, item, i) for i, item in enumerate(items)]

    def predict_inputs(self, items: list[Any]) -> list[dict[str, Any]]:
        """One output record per API input."""
        return self.predict(self.examples(items))

    def evaluate(self, examples: list[Any], features: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The task's metrics on labeled examples (`features`: theirs, when already made)."""
        features = features if features is not None else self.featurize(examples)
        return evaluate_features(self.model, self.spec, examples, features, self.batch_size,
                                 self.tokenizer.pad_token_id, self.amp_dtype, self.max_tokens)
