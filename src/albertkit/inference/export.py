"""Export a model folder to ONNX (dynamic batch and sequence axes), checked against PyTorch, optionally int8.

The result is a folder in the layout `optimum.onnxruntime` reads (`ORTModelForSequenceClassification`,
`ORTModelForFeatureExtraction`, ...): `model.onnx`, `config.json` and the tokenizer files, so that
`transformers.AutoTokenizer` and onnxruntime (or optimum) run it without albertkit; with int8 quantization also
`model_quantized.onnx`, optimum's name for it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from albertkit.errors import UserError
from albertkit.io.atomic import atomic_folder
from albertkit.modeling.folder import (
    check_tokenizer_matches,
    load_any_model,
    read_model_info,
    write_model_info,
)
from albertkit.runtime.device import resolve_device
from albertkit.tokenization.loading import load_tokenizer, tokenizer_file

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
ONNX_NAME, QUANTIZED_NAME = "model.onnx", "model_quantized.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# What each head's ONNX graph returns: AlbertOutput fields, in order, each marked True when it has a sequence axis.
OUTPUTS: dict[str, dict[str, bool]] = {
    "AlbertModel": {"last_hidden_state": True, "pooler_output": False},
    "AlbertForPreTraining": {"prediction_logits": True, "sop_logits": False},
    "AlbertForMaskedLM": {"logits": True},
    "AlbertForSequenceClassification": {"logits": False},
    "AlbertForTokenClassification": {"logits": True},
    "AlbertForQuestionAnswering": {"start_logits": True, "end_logits": True},
}
# The parity check's probe: more rows and longer than the traced example, so the dynamic axes are exercised.
TRACE_LENGTHS, PROBE_LENGTHS = (9, 5), (3, 17, 1, 12)
MIN_OPSET = 17


@dataclass
class ExportReport:
    """Where the model went and how closely onnxruntime reproduces PyTorch on a probe batch."""

    folder: Path
    architecture: str
    outputs: tuple[str, ...]
    opset: int
    max_abs_diff: float  # float32 ONNX against PyTorch
    with_tokenizer: bool = True
    quantized: str | None = None
    quantized_max_abs_diff: float | None = None  # the int8 model against PyTorch

    @property
    def path(self) -> Path:
        """The float32 model."""
        return self.folder / ONNX_NAME

    def summary(self) -> str:
        lines = [f"exported {self.architecture} to {self.path} (opset {self.opset}, outputs: {', '.join(self.outputs)})",
                 f"max abs difference ONNX float32 vs PyTorch: {self.max_abs_diff:.3g}"]
        if self.quantized:
            lines.append(f"{self.quantized} model: {self.folder / QUANTIZED_NAME}; max abs difference ONNX "
                         f"{self.quantized} vs PyTorch: {self.quantized_max_abs_diff:.3g}")
        if not self.with_tokenizer:
            lines.append("no tokenizer in the model folder: add the model's tokenizer files to the export folder "
                         "before loading it with transformers or optimum")
        return "\n".join(lines)


class _OnnxSignature(torch.nn.Module):
    """The model with positional (input_ids, attention_mask, token_type_ids) in and a tuple of tensors out."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(getattr(out, name) for name in self.outputs)


def example_batch(lengths: tuple[int, ...], vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids, right-padded to the longest of `lengths`, with the matching mask and token types."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    attention_mask = (torch.arange(longest) < torch.tensor(lengths)[:, None]).long()
    input_ids = torch.randint(5, vocab_size, (len(lengths), longest), generator=generator) * attention_mask
    token_type_ids = (torch.arange(longest) >= torch.tensor(lengths)[:, None] // 2).long() * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def export_model(
    model_dir: str | Path, out_dir: str | Path, format: str = "onnx", quantize: str | None = None,
    opset: int = MIN_OPSET, device: str = "auto",
) -> ExportReport:
    """Export the model folder's model into the folder `out_dir` and check onnxruntime against PyTorch on a probe
    batch: `model.onnx` (float32), `config.json`, the tokenizer files, and with `quantize="int8"` also
    `model_quantized.onnx` (int8 weights, activations quantized at run time).

    The folder appears only once written whole; an existing `out_dir` must be empty or an earlier export.
    The graph is traced on the CPU; the PyTorch side of the check runs in float32 on `device`.
    """
    target = resolve_device(device)
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if quantize not in (None, *QUANTIZATIONS):
        raise UserError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old; albertkit exports opset {MIN_OPSET} or newer")
    out_dir = Path(out_dir)
    if out_dir.suffix == ".onnx":
        raise UserError(f"export writes a folder ({ONNX_NAME}, config.json, tokenizer files) that onnxruntime, "
                        f"optimum and transformers read: give a folder, e.g. --out {out_dir.with_suffix('')}")
    model = load_any_model(model_dir).eval()
    tokenizer = load_tokenizer(model_dir) if tokenizer_file(model_dir).is_file() else None
    if tokenizer is not None:
        check_tokenizer_matches(tokenizer, model.config, model_dir)
    architecture = type(model).__name__
    outputs = tuple(OUTPUTS[architecture])
    with atomic_folder(out_dir, ONNX_NAME, "ONNX export") as partial:
        write_onnx(model, partial / ONNX_NAME, opset)
        probe = example_batch(PROBE_LENGTHS, model.config.vocab_size, seed=1)
        expected = run_pytorch(model.to(target), outputs, probe)
        report = ExportReport(out_dir, architecture, outputs, opset,
                              max_abs_diff(run_onnx(partial / ONNX_NAME, probe), expected), tokenizer is not None)
        if quantize == "int8":
            quantize_int8(partial / ONNX_NAME, partial / QUANTIZED_NAME)
            report.quantized = quantize
            report.quantized_max_abs_diff = max_abs_diff(run_onnx(partial / QUANTIZED_NAME, probe), expected)
        model.config.architectures = [architecture]
        model.config.save_pretrained(partial)
        if read_model_info(model_dir):  # the task settings: predict and evaluate --backend onnx read this folder
            write_model_info(partial, read_model_info(model_dir))
        if tokenizer is not None:
            tokenizer.save_pretrained(partial)
    return report


def write_onnx(model: torch.nn.Module, path: Path, opset: int = MIN_OPSET) -> None:
    """torch.onnx.export with dynamic batch and sequence axes (the TorchScript exporter: no onnxscript needed).

    The traced example holds padding, so the graph keeps the unpadded path, which is exact for any mask.
    """
    outputs = OUTPUTS[type(model).__name__]
    example = example_batch(TRACE_LENGTHS, model.config.vocab_size)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes |= {name: {0: "batch", 1: "sequence"} if per_token else {0: "batch"} for name, per_token in outputs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side checks that the example satisfies
        torch.onnx.export(
            _OnnxSignature(model, tuple(outputs)).eval(), tuple(example[name] for name in INPUT_NAMES), str(path),
            input_names=list(INPUT_NAMES), output_names=list(outputs), dynamic_axes=axes,
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )


def quantize_int8(float_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantization: int8 weights, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # onnxruntime logs every integer tensor it leaves alone (the unpadding indices)
    try:
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def run_pytorch(model: torch.nn.Module, outputs: tuple[str, ...], batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """The model's `outputs` for one batch, run where the model's weights are, as float32 arrays."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                    token_type_ids=batch["token_type_ids"].to(device))
    return [getattr(out, name).float().cpu().numpy() for name in outputs]


def run_onnx(path: Path | str, batch: dict[str, torch.Tensor | np.ndarray]) -> list[np.ndarray]:
    """Outputs of an exported model for one batch, on onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in INPUT_NAMES}
    return session.run(None, feeds)


def max_abs_diff(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
