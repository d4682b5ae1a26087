"""`albertkit evaluate` and `albertkit predict`: files through the `Predictor` (inference/predictor.py), the
path that fine-tuning's evaluation and `serve` take too; metrics and predictions written atomically."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch

from albertkit.errors import UserError
from albertkit.inference.onnx_backend import OnnxRuntimeModel
from albertkit.inference.predictor import Predictor, load_task_model
from albertkit.inference.quantize import quantize_model
from albertkit.io.atomic import write_atomic, write_text_atomic
from albertkit.io.tables import BadRows, reporting_skipped_rows
from albertkit.runtime.console import progress_bar
from albertkit.tasks.spec import TaskSpec, read_examples


def load_finetuned(model_dir: str | Path, quantize: str | None = None, device: str = "cpu",
                   backend: str = "torch") -> tuple[torch.nn.Module, Any, TaskSpec]:
    """Model, tokenizer and task settings of a fine-tuned folder (see `predictor.load_task_model`)."""
    return load_task_model(model_dir, quantize, device, backend)


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
    predictor = Predictor(model_dir, "cpu" if quantize and device == "auto" else device, batch_size, None,
                          precision, max_tokens, backend)
    with reporting_skipped_rows():
        examples = read_examples(predictor.spec, data_path, require_labels=True, bad_rows=bad_rows)
    if not examples:
        raise UserError("no examples to evaluate", data_path)
    features = predictor.featurize(examples)
    quantized = predictor if quantize is None else predictor.with_model(
        quantize_model(predictor.model, quantize) if backend == "torch" else OnnxRuntimeModel(model_dir, quantize))
    metrics = quantized.evaluate(examples, features)
    result = {"model": str(model_dir), "data": str(data_path), "examples": len(examples), "backend": backend,
              **({"skipped_rows": bad_rows.count} if bad_rows.skip else {}), **metrics}
    if quantize is not None:
        reference = predictor.evaluate(examples, features)
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
    predictor = Predictor(model_dir, device, batch_size, quantize, precision, max_tokens, backend)
    with reporting_skipped_rows():
        examples = read_examples(predictor.spec, input_path, require_labels=False, bad_rows=bad_rows)
    if not examples:
        raise UserError("no examples to predict", input_path)
    output_path = Path(output_path)
    as_csv = output_path.suffix.lower() == ".csv"
    if as_csv and predictor.task.endpoint != "classify":
        raise UserError(f"CSV output suits classification and regression; write {predictor.spec.task} predictions "
                        "as .jsonl")

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = None
            progress = progress_bar(total=len(examples), desc="predicting", unit=" examples", mininterval=1.0)
            for start in range(0, len(examples), chunk_size):
                chunk = examples[start : start + chunk_size]
                records = predictor.predict(chunk)
                for example, record in zip(chunk, records, strict=True):
                    record = {"line": getattr(example, "line", None), **record}
                    if as_csv:
                        row = {k: ",".join(v) if isinstance(v, list) else v for k, v in record.items()
                               if k != "probabilities"}
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

