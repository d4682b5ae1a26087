"""Inference for fine-tuned models: run features through a model, decode them, score them, write them.

`evaluate_model` and `predict_file` back `albertkit evaluate` and `albertkit predict`; `evaluate_features`
is what fine-tuning calls at each evaluation.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches, token_budget_batches
from albertkit.errors import UserError
from albertkit.inference.onnx_backend import BACKENDS, OnnxRuntimeModel
from albertkit.inference.quantize import quantize_model
from albertkit.io.atomic import write_atomic, write_text_atomic
from albertkit.io.tables import BadRows, reporting_skipped_rows
from albertkit.modeling.folder import load_any_model, read_model_info
from albertkit.runtime.console import progress_bar
from albertkit.runtime.device import CUDA_MAX_TOKENS, autocast, autocast_dtype, resolve_device
from albertkit.runtime.memory import keep_freed_memory
from albertkit.tasks.metrics import compute_metrics
from albertkit.tasks.spec import (
    TaskSpec,
    featurize,
    ner_entities,
    ner_word_tags,
    qa_best_spans,
    read_examples,
)
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


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def decode(spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
           outputs: list[dict[str, np.ndarray]]) -> tuple[Any, list[dict[str, Any]]]:
    """(predictions in the form `compute_metrics` takes, one output record per example)."""
    if spec.task in ("classification", "pair"):
        probs = _softmax(np.stack([o["logits"] for o in outputs]))
        ids = probs.argmax(-1)
        records = [{"label": spec.labels[i], "probabilities": dict(zip(spec.labels, map(float, p), strict=True))}
                   for i, p in zip(ids, probs, strict=True)]
        return ids, records
    if spec.task == "regression":
        values = np.stack([o["logits"] for o in outputs]).reshape(-1)
        return values, [{"value": float(v)} for v in values]
    if spec.task == "ner":
        tags = ner_word_tags(spec, features, [o["logits"] for o in outputs])
        records = [{"tags": t, "entities": [vars(e) for e in ner_entities(ex, t)]}
                   for ex, t in zip(examples, tags, strict=True)]
        return tags, records
    spans = qa_best_spans(features, [o["start_logits"] for o in outputs], [o["end_logits"] for o in outputs],
                          version_2=spec.version_2)
    records = [{"id": ex.id, "answer": spans[ex.id].text, "start": spans[ex.id].start, "end": spans[ex.id].end}
               for ex in examples]
    return {ex.id: spans[ex.id].text for ex in examples}, records


def references(spec: TaskSpec, examples: list[Any]) -> Any:
    """Gold answers in the form `compute_metrics` takes."""
    if spec.task in ("classification", "pair"):
        return np.array([spec.label2id[ex.label] for ex in examples])
    if spec.task == "regression":
        return np.array([float(ex.label) for ex in examples])
    if spec.task == "ner":
        return [ex.tags for ex in examples]
    return {ex.id: ex.answer_texts for ex in examples}


def evaluate_features(model: torch.nn.Module, spec: TaskSpec, examples: list[Any], features: list[dict[str, Any]],
                      batch_size: int = 64, pad_id: int = 0, amp_dtype: torch.dtype | None = None,
                      max_tokens: int = 0) -> dict[str, Any]:
    """Metrics of `model` on labeled examples; classification adds the confusion matrix (rows: gold)."""
    outputs = run_features(model, features, batch_size, pad_id, amp_dtype=amp_dtype, max_tokens=max_tokens)
    predictions, _ = decode(spec, examples, features, outputs)
    gold = references(spec, examples)
    metrics: dict[str, Any] = compute_metrics(spec.task, predictions, gold)
    if spec.task in ("classification", "pair"):
        matrix = np.zeros((len(spec.labels), len(spec.labels)), dtype=np.int64)
        np.add.at(matrix, (gold, predictions), 1)
        metrics.update(confusion_matrix=matrix.tolist(), labels=list(spec.labels))
    return metrics


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


def load_finetuned(model_dir: str | Path, quantize: str | None = None, device: str = "cpu",
                   backend: str = "torch") -> tuple[torch.nn.Module, Any, TaskSpec]:
    """Model (on `device`, the CPU unless asked; int8 on the CPU with `quantize="int8"`; with `backend="onnx"`, the
    folder's exported ONNX model on onnxruntime's CPU provider), tokenizer and task settings of a folder written by
    `albertkit finetune` (or exported from one)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    target = resolve_device(device, cpu_only=quantize is not None or backend == "onnx")
    info = read_model_info(model_dir)
    if "task_spec" not in info:
        raise UserError("not a fine-tuned model folder (albertkit.json has no task settings)", model_dir)
    spec = TaskSpec.from_dict(info["task_spec"])
    keep_freed_memory()
    if backend == "onnx":
        model = OnnxRuntimeModel(model_dir, quantize)
    else:
        model = quantize_model(load_any_model(model_dir).to(target).eval(), quantize)
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.vocab_size} pieces but the model expects "
                        f"{model.config.vocab_size}", model_dir)
    return model, tokenizer, spec


def evaluate_model(model_dir: str | Path, data_path: str | Path, output: str | Path | None = None,
                   batch_size: int = 64, quantize: str | None = None, device: str = "auto",
                   precision: str = "auto", max_tokens: int | None = None, backend: str = "torch",
                   bad_rows: BadRows | None = None) -> dict[str, Any]:
    """`albertkit evaluate`: metrics of a fine-tuned model on a labeled file, printed by the CLI and saved.

    With `quantize`, the metrics are the quantized model's, and `float32` / `quantization_change` give the float
    model's figures and the difference (quantized minus float). `device`, `precision` and `max_tokens` as for
    `predict_file`. `backend="onnx"`: the folder's ONNX export (the change is then against the float32 ONNX model).
    Bad rows follow `bad_rows` (default: the first is an error); when skipping, the result counts them."""
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    model, tokenizer, spec = load_finetuned(model_dir, None, "cpu" if quantize and device == "auto" else device,
                                            backend)
    run = inference_settings(model, precision, max_tokens)
    with reporting_skipped_rows():
        examples = read_examples(spec, data_path, require_labels=True, bad_rows=bad_rows)
    if not examples:
        raise UserError("no examples to evaluate", data_path)
    features = featurize(spec, tokenizer, examples)
    quantized = model if quantize is None else (
        quantize_model(model, quantize) if backend == "torch" else OnnxRuntimeModel(model_dir, quantize))
    metrics = evaluate_features(quantized, spec, examples, features, batch_size, tokenizer.pad_token_id, **run)
    result = {"model": str(model_dir), "data": str(data_path), "examples": len(examples), "backend": backend,
              **({"skipped_rows": bad_rows.count} if bad_rows.skip else {}), **metrics}
    if quantize is not None:
        reference = evaluate_features(model, spec, examples, features, batch_size, tokenizer.pad_token_id, **run)
        floats = {k: v for k, v in reference.items() if isinstance(v, float)}
        result.update(quantize=quantize, float32=floats,
                      quantization_change={k: metrics[k] - v for k, v in floats.items()})
    if output is not None:
        write_text_atomic(output, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def predict_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, batch_size: int = 64,
                 chunk_size: int = 4096, quantize: str | None = None, device: str = "auto",
                 precision: str = "auto", max_tokens: int | None = None, backend: str = "torch",
                 bad_rows: BadRows | None = None) -> int:
    """`albertkit predict`: one record per input example, JSONL or CSV by the output's suffix; returns the count.

    Examples are featurized and predicted in chunks; the file appears under its name only when complete.
    `quantize="int8"`: predict with the int8 model (CPU). `device`: auto, cpu, cuda, cuda:N or mps; `precision`:
    auto (bf16 autocast on CUDA, fp32 elsewhere), fp32, bf16 or fp16; `max_tokens`: padded tokens per batch
    (default: 16,384 on CUDA; elsewhere, and with 0, batches of `batch_size`). `backend="onnx"`: the folder's ONNX
    export on onnxruntime (`model_quantized.onnx` with `quantize`). Bad rows follow `bad_rows` (default: the first
    is an error).
    """
    model, tokenizer, spec = load_finetuned(model_dir, quantize, device, backend)
    run = inference_settings(model, precision, max_tokens)
    with reporting_skipped_rows():
        examples = read_examples(spec, input_path, require_labels=False, bad_rows=bad_rows)
    if not examples:
        raise UserError("no examples to predict", input_path)
    output_path = Path(output_path)
    as_csv = output_path.suffix.lower() == ".csv"
    if as_csv and spec.task in ("ner", "qa"):
        raise UserError(f"CSV output suits classification and regression; write {spec.task} predictions as .jsonl")

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = None
            progress = progress_bar(total=len(examples), desc="predicting", unit=" examples", mininterval=1.0)
            for start in range(0, len(examples), chunk_size):
                chunk = examples[start : start + chunk_size]
                features = featurize(spec, tokenizer, chunk)
                outputs = run_features(model, features, batch_size, tokenizer.pad_token_id, **run)
                _, records = decode(spec, chunk, features, outputs)
                for example, record in zip(chunk, records, strict=True):
                    record = {"line": getattr(example, "line", None), **record}
                    if as_csv:
                        row = {k: v for k, v in record.items() if k != "probabilities"}
                        row.update({f"p_{k}": v for k, v in record.get("probabilities", {}).items()})
                        if writer is None:
                            writer = csv.DictWriter(handle, fieldnames=list(row))
                            writer.writeheader()
                        writer.writerow(row)
                    else:
                        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                progress.update(len(chunk))
            progress.close()

    write_atomic(output_path, write)
    return len(examples)

