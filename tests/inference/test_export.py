"""ONNX export: every head reproduces PyTorch in onnxruntime (< 1e-4) on new batch sizes and lengths; int8 stays close;
the folder runs with onnxruntime and transformers' AutoTokenizer alone (optimum's layout)."""

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
from albertkit.modeling.folder import load_any_model, write_model_folder
from albertkit.modeling.model import HEADS
from albertkit.tokenization.loading import load_tokenizer

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
    report = export_model(folder, tmp_path / "onnx")
    assert report.max_abs_diff < 1e-4 and report.opset == 17 and report.outputs == tuple(OUTPUTS[head])
    assert report.path == tmp_path / "onnx" / "model.onnx" and not report.with_tokenizer
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["config.json", "model.onnx"]
    assert "no tokenizer in the model folder" in report.summary()
    # A batch unlike both the traced example and the built-in probe: other sizes, one row without padding.
    batch = example_batch((20, 2, 7, 20, 1), vocab_size=60, seed=5)
    model = HEADS[head].from_pretrained(folder).eval()
    expected = run_pytorch(model, report.outputs, batch)
    got = run_onnx(report.path, batch)
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)) < 1e-4


def test_int8_is_smaller_and_close(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "AlbertForSequenceClassification")
    float_report = export_model(folder, tmp_path / "fp32")
    report = export_model(folder, tmp_path / "int8", quantize="int8")
    assert report.max_abs_diff == pytest.approx(float_report.max_abs_diff, abs=1e-6)
    assert 0 < report.quantized_max_abs_diff < 0.05
    int8 = tmp_path / "int8" / "model_quantized.onnx"
    assert (tmp_path / "int8" / "model.onnx").read_bytes() == (tmp_path / "fp32" / "model.onnx").read_bytes()
    assert int8.stat().st_size < (tmp_path / "fp32" / "model.onnx").stat().st_size
    # Every linear layer call runs in int8: hidden mapping, 6 per layer x 2 layers (shared weights), pooler, classifier;
    # only attention's activation-by-activation products (scores, context: 2 per layer) stay float.
    ops = [node.op_type for node in onnx.load(int8).graph.node]
    assert ops.count("MatMulInteger") == 1 + 6 * 2 + 2 and ops.count("MatMul") == 2 * 2
    assert f"int8 model: {int8}; max abs difference ONNX int8 vs PyTorch" in report.summary()


@pytest.mark.parametrize("head, optimum_outputs", [("cls", ["logits"]), ("encoder", ["last_hidden_state"])])
def test_folder_runs_with_onnxruntime_and_auto_tokenizer(head: str, optimum_outputs: list[str], tmp_path: Path,
                                                         model_folders: dict[str, Path]) -> None:
    """What optimum's ORTModelForSequenceClassification / ORTModelForFeatureExtraction read: model.onnx with the
    output names they look up, config.json, and a tokenizer transformers loads from the same folder."""
    import onnxruntime
    import transformers

    source = model_folders["cls"]
    if head == "encoder":  # a bare encoder, as feature extraction exports it
        source = tmp_path / "encoder"
        write_model_folder(load_any_model(model_folders["cls"]).albert, source, load_tokenizer(model_folders["cls"]), {})
    export_model(source, tmp_path / "onnx", quantize="int8")
    out = tmp_path / "onnx"
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    config = transformers.AutoConfig.from_pretrained(out)
    assert config.model_type == "albert" and config.architectures == [type(load_any_model(source)).__name__]
    texts = ["the film is wonderful .", "this movie was dull from start to finish despite the cast .", "boring"]
    batch = tokenizer(texts, padding=True, return_tensors="np")
    ours = load_tokenizer(source)(texts, padding=True, return_tensors="pt")
    np.testing.assert_array_equal(batch["input_ids"], ours["input_ids"].numpy())
    expected = run_pytorch(load_any_model(source).eval(), tuple(optimum_outputs), ours)[0]
    real = batch["attention_mask"].astype(bool)
    for name, tolerance in (("model.onnx", 1e-4), ("model_quantized.onnx", 0.05)):
        session = onnxruntime.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()][:1] == optimum_outputs
        # As optimum does: token types are zeros when the tokenizer gives none (transformers 5's AlbertTokenizer).
        feeds = {i.name: batch.get(i.name, np.zeros_like(batch["input_ids"])).astype(np.int64)
                 for i in session.get_inputs()}
        got = session.run(optimum_outputs, feeds)[0]
        difference = np.abs(got - expected)[real] if head == "encoder" else np.abs(got - expected)
        assert difference.max() < tolerance, name
    if head == "cls":
        assert config.id2label == {0: "negative", 1: "positive"}


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = model_folder(tmp_path, "AlbertModel")
    with pytest.raises(UserError, match="unknown quantization 'int4'"):
        export_model(folder, tmp_path / "m", quantize="int4")
    with pytest.raises(UserError, match="opset 13 is too old"):
        export_model(folder, tmp_path / "m", opset=13)
    assert main(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")]) == 2
    assert "not a model folder" in capsys.readouterr().err
    # --out model.onnx (a file, as before 0.2): one clear line pointing at a folder, nothing written.
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "m.onnx")]) == 2
    assert f"give a folder, e.g. --out {tmp_path / 'm'}" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["export", "--model", str(folder), "--out", str(mine)]) == 2
    assert "holds no ONNX export" in capsys.readouterr().err and [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AlbertModel", "mine"]
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "m")]) == 0
    assert "max abs difference ONNX float32 vs PyTorch" in capsys.readouterr().out
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "m"), "--quantize", "int8"]) == 0
    assert (tmp_path / "m" / "model_quantized.onnx").is_file()  # an earlier export is replaced whole
