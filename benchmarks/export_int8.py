"""Accuracy and CPU speed of a classifier in PyTorch, ONNX float32 and ONNX int8 (dynamic quantization).

    python benchmarks/export_int8.py --model runs/sst2 --data ../shared/data/en/sst2/test.tsv

Exports both ONNX models with `albertkit.inference.export.export_model` (one folder: model.onnx and
model_quantized.onnx; parity against PyTorch printed), then runs the
same length-sorted batches through all three: accuracy on the file's labels, agreement of int8 with float32,
throughput at --batch-size and single-text latency. Prints a JSON result and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from albertkit.inference.embed import Encoder, iter_input_texts, pad_batch
from albertkit.inference.export import export_model

Predict = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


def read_labeled(path: Path, text_column: str, label_column: str, label2id: dict[str, int] | None) -> tuple[list[str], np.ndarray]:
    texts = [text for _, text in iter_input_texts(path, text_column)]
    names = [label for _, label in iter_input_texts(path, label_column)]
    labels = [label2id[n] if label2id and n in label2id else int(n) for n in names]
    return texts, np.array(labels)


def torch_predictor(encoder: Encoder) -> Predict:
    def predict(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return encoder.model(input_ids, attention_mask=attention_mask).logits.numpy()
    return predict


def onnx_predictor(path: Path, threads: int) -> Predict:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                 "token_type_ids": np.zeros_like(input_ids.numpy())}
        return session.run(None, feeds)[0]
    return predict


def run_all(predict: Predict, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, float]:
    """Logits of every batch, concatenated, and the seconds it took."""
    started = time.perf_counter()
    logits = np.concatenate([predict(ids, mask) for ids, mask in batches])
    return logits, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a sequence-classification model folder")
    parser.add_argument("--data", type=Path, required=True, help="labeled .tsv, e.g. ../shared/data/en/sst2/test.tsv")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-texts", type=int, default=200, help="texts timed one at a time")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for both runtimes")
    parser.add_argument("--keep", type=Path, help="folder to keep the export in (model.onnx, model_quantized.onnx)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    encoder = Encoder(args.model)
    texts, labels = read_labeled(args.data, args.text_column, args.label_column, encoder.model.config.label2id)
    sequences = encoder.tokenize(texts)
    order = np.argsort([len(s) for s in sequences], kind="stable")
    batches = [pad_batch([sequences[i] for i in order[start:start + args.batch_size]], encoder.tokenizer.pad_token_id)
               for start in range(0, len(order), args.batch_size)]
    singles = [pad_batch([s], encoder.tokenizer.pad_token_id) for s in sequences[:args.latency_texts]]
    labels = labels[order]

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch) / "onnx"
        report = export_model(args.model, folder, quantize="int8")  # model.onnx and model_quantized.onnx
        files = {"onnx_fp32": folder / "model.onnx", "onnx_int8": folder / "model_quantized.onnx"}
        sizes = {name: path.stat().st_size for name, path in files.items()}
        runtimes = {"pytorch": torch_predictor(encoder),
                    **{name: onnx_predictor(path, args.threads) for name, path in files.items()}}
        results, predictions = {}, {}
        for name, predict in runtimes.items():
            run_all(predict, batches[:2])  # warm-up
            logits, seconds = run_all(predict, batches)
            _, single_seconds = run_all(predict, singles)
            predictions[name] = logits.argmax(1)
            results[name] = {
                "accuracy": round(float((predictions[name] == labels).mean()), 4),
                "texts_per_s": round(len(texts) / seconds, 1),
                "latency_ms": round(1000 * single_seconds / len(singles), 2),
            }
    result = {
        "model": str(args.model), "data": str(args.data), "texts": len(texts), "batch_size": args.batch_size,
        "threads": args.threads, "parity_fp32_max_abs_diff": report.max_abs_diff,
        "parity_int8_max_abs_diff": report.quantized_max_abs_diff, "file_bytes": sizes,
        "int8_agrees_with_fp32": round(float((predictions["onnx_int8"] == predictions["onnx_fp32"]).mean()), 4),
        "accuracy_change_int8": round(results["onnx_int8"]["accuracy"] - results["onnx_fp32"]["accuracy"], 4),
        "speedup_int8_vs_fp32": round(results["onnx_int8"]["texts_per_s"] / results["onnx_fp32"]["texts_per_s"], 2),
        "speedup_int8_vs_pytorch": round(results["onnx_int8"]["texts_per_s"] / results["pytorch"]["texts_per_s"], 2),
        "runtimes": results,
    }
    print(json.dumps(result, indent=2))
    print(f"\n| runtime | accuracy | texts/s (batch {args.batch_size}) | latency ms (batch 1) |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['accuracy']:.4f} | {r['texts_per_s']} | {r['latency_ms']} |")


if __name__ == "__main__":
    main()
