"""int8 inference on the CPU: PyTorch dynamic quantization of every Linear layer (weights stored as int8,
activations quantized on the fly per batch); embeddings and LayerNorms stay float32."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from albertkit.errors import UserError

QUANTIZATIONS = ("int8",)


def quantize_model(model: nn.Module, quantize: str | None) -> nn.Module:
    """`model` itself when `quantize` is None, else an int8 copy of it for CPU inference."""
    if quantize is None:
        return model
    if quantize not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if next(model.parameters()).device.type != "cpu":
        raise UserError("--quantize int8 (PyTorch dynamic quantization) runs on the CPU: add --device cpu")
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the dynamic path still works on torch 2.x.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=False)
