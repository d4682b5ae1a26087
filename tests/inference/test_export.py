"""ONNX export: every head reproduces PyTorch in onnxruntime (< 1e-4) on new batch sizes and lengths; int8 stays close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.export import OUTPUTS, example_batch, export_model, run_onnx, run_pytorch
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import HEADS

TINY = dict(vocab_size=60, embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128)


def model_folder(root: Path, head: str) -> Path:
    torch.manual_seed(0)
    folder = root / head
    HEADS[head](AlbertConfig.from_preset("tiny", id2label={0: "a", 1: "b", 2: "c"}, **TINY)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("head", sorted(OUTPUTS))
def test_onnx_matches_pytorch(head: str, tmp_path: Path) -> None:
    folder = model_folder(tmp_path, head)
    report = export_model(folder, tmp_path / "model.onnx")
    assert report.max_abs_diff < 1e-4 and report.opset == 17 and report.outputs == tuple(OUTPUTS[head])
    # A batch unlike both the traced example and the built-in probe: other sizes, one row without padding.
    batch = example_batch((20, 2, 7, 20, 1), vocab_size=60, seed=5)
    model = HEADS[head].from_pretrained(folder).eval()
    expected = run_pytorch(model, report.outputs, batch)
    got = run_onnx(tmp_path / "model.onnx", batch)
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)) < 1e-4


def test_int8_is_smaller_and_close(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "AlbertForSequenceClassification")
    float_report = export_model(folder, tmp_path / "fp32.onnx")
    report = export_model(folder, tmp_path / "int8.onnx", quantize="int8")
    assert report.max_abs_diff == pytest.approx(float_report.max_abs_diff, abs=1e-6)
    assert 0 < report.quantized_max_abs_diff < 0.05
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size
    # Every linear layer call runs in int8: hidden mapping, 6 per layer x 2 layers (shared weights), pooler, classifier;
    # only attention's activation-by-activation products (scores, context: 2 per layer) stay float.
    ops = [node.op_type for node in onnx.load(tmp_path / "int8.onnx").graph.node]
    assert ops.count("MatMulInteger") == 1 + 6 * 2 + 2 and ops.count("MatMul") == 2 * 2
    assert "ONNX int8 vs PyTorch" in report.summary()


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = model_folder(tmp_path, "AlbertModel")
    with pytest.raises(UserError, match="unknown quantization 'int4'"):
        export_model(folder, tmp_path / "m.onnx", quantize="int4")
    with pytest.raises(UserError, match="opset 13 is too old"):
        export_model(folder, tmp_path / "m.onnx", opset=13)
    assert main(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "max abs difference ONNX float32 vs PyTorch" in capsys.readouterr().out
