"""An exported ONNX folder (`albertkit export`) run through onnxruntime behind the call of albertkit's models, so
prediction and evaluation take either backend: `model(input_ids=..., attention_mask=..., token_type_ids=...)`
returns an `AlbertOutput` of CPU tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from albertkit.errors import UserError
from albertkit.inference.export import INPUT_NAMES, ONNX_NAME, QUANTIZED_NAME
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertOutput

BACKENDS = ("torch", "onnx")


class OnnxRuntimeModel:
    """`model.onnx` (or `model_quantized.onnx` with `quantize="int8"`) of an export folder on onnxruntime's CPU
    provider, with the folder's config."""

    device = torch.device("cpu")

    def __init__(self, folder: str | Path, quantize: str | None = None):
        try:
            import onnxruntime
        except ImportError as err:
            raise UserError("--backend onnx needs onnxruntime: pip install 'albertkit[export]'") from err
        folder = Path(folder)
        path = folder / (QUANTIZED_NAME if quantize else ONNX_NAME)
        if not path.is_file():
            hint = " (export it with --quantize int8)" if quantize else " (make it with albertkit export)"
            raise UserError(f"no {path.name} in this folder{hint}", folder)
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.config = AlbertConfig.from_pretrained(folder)

    def eval(self) -> OnnxRuntimeModel:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None) -> AlbertOutput:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        zeros = np.zeros(tuple(input_ids.shape), dtype=np.int64)
        feeds = {name: zeros + (name == "attention_mask") if given[name] is None else given[name].cpu().numpy()
                 for name in INPUT_NAMES}
        values = self.session.run(self.output_names, feeds)
        return AlbertOutput(**{name: torch.from_numpy(value) for name, value in zip(self.output_names, values,
                                                                                      strict=True)})
