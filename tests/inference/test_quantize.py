"""--quantize int8: the linear layers become int8 dynamic-quantized ones, outputs stay close to float32, and
evaluate, predict, embed and serve take it."""

import json

import numpy as np
import pytest
import torch
from builders import finetuned_classifier, movie_sentences

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.inference.predict import load_finetuned
from albertkit.inference.quantize import quantize_model


@pytest.fixture(scope="module")
def classifier_folder(model_folders, tmp_path_factory):
    """The tiny random classifier as a fine-tuned folder (task settings in albertkit.json) and a labelled file."""
    return finetuned_classifier(model_folders, tmp_path_factory.mktemp("quantize"))


def test_int8_model_has_quantized_linears_and_close_logits(classifier_folder):
    folder, _ = classifier_folder
    model, tokenizer, _ = load_finetuned(folder)
    quantized, _, _ = load_finetuned(folder, quantize="int8")
    kinds = {m._get_name() for m in quantized.modules()}
    assert "DynamicQuantizedLinear" in kinds and "Linear" not in kinds
    batch = tokenizer(["the film is wonderful .", "the plot was dull at times ."], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = quantized(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert float((a - b).abs().max()) < 0.05 * float(a.abs().max()) + 1e-3
    assert quantize_model(model, None) is model
    with pytest.raises(UserError, match="unknown quantization 'int4'"):
        quantize_model(model, "int4")


def test_evaluate_reports_the_change_against_float32(classifier_folder, tmp_path, capsys):
    folder, dev = classifier_folder
    assert main(["evaluate", "--model", str(folder), "--data", str(dev), "--quantize", "int8",
                 "--output", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["quantize"] == "int8" and result["examples"] == 60
    assert result["quantization_change"]["accuracy"] == pytest.approx(
        result["accuracy"] - result["float32"]["accuracy"])


def test_predict_and_embed_take_int8(classifier_folder, tmp_path):
    folder, dev = classifier_folder
    assert main(["predict", "--model", str(folder), "--input", str(dev), "--output", str(tmp_path / "p.jsonl"),
                 "--quantize", "int8"]) == 0
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 60 and set(records[0]["probabilities"]) == {"negative", "positive"}
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(movie_sentences(20, seed=5)) + "\n")
    assert main(["embed", "--model", str(folder), "--input", str(texts), "--output", str(tmp_path / "q.npy"),
                 "--quantize", "int8"]) == 0
    floats = Encoder(folder, device="cpu").encode(movie_sentences(20, seed=5))
    cosines = (np.load(tmp_path / "q.npy") * floats).sum(axis=1)
    assert cosines.min() > 0.99


def test_served_model_quantized(classifier_folder):
    from albertkit.serve.model_functions import TaskModel

    folder, _ = classifier_folder
    served = TaskModel(folder, quantize="int8")
    assert "DynamicQuantizedLinear" in {m._get_name() for m in served.model.modules()}
    assert served.classify(["the film is wonderful ."])[0]["label"] in ("negative", "positive")


def test_onnx_backend_predicts_as_torch_and_reports_int8_change(classifier_folder, tmp_path):
    folder, dev = classifier_folder
    export = tmp_path / "onnx"
    assert main(["export", "--model", str(folder), "--out", str(export), "--quantize", "int8"]) == 0
    assert main(["predict", "--model", str(folder), "--input", str(dev), "--output", str(tmp_path / "t.jsonl")]) == 0
    assert main(["predict", "--model", str(export), "--input", str(dev), "--output", str(tmp_path / "o.jsonl"),
                 "--backend", "onnx"]) == 0
    torch_probs, onnx_probs = ([json.loads(line)["probabilities"]["positive"] for line in
                                (tmp_path / name).read_text().splitlines()] for name in ("t.jsonl", "o.jsonl"))
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)
    assert main(["evaluate", "--model", str(export), "--data", str(dev), "--backend", "onnx", "--quantize", "int8",
                 "--output", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["backend"] == "onnx" and result["quantize"] == "int8"
    assert result["float32"]["accuracy"] == pytest.approx(
        json.loads(_evaluate_json(folder, dev, tmp_path))["accuracy"])


def _evaluate_json(folder, dev, tmp_path) -> str:
    assert main(["evaluate", "--model", str(folder), "--data", str(dev), "--output", str(tmp_path / "f.json")]) == 0
    return (tmp_path / "f.json").read_text()


@pytest.mark.parametrize("export_int8, flags, message", [
    (None, ["--backend", "onnx"], "no model.onnx in this folder (make it with albertkit export)"),
    (False, ["--backend", "onnx", "--quantize", "int8"], "no model_quantized.onnx in this folder (export it with"),
])
def test_missing_onnx_models_are_one_line_errors(classifier_folder, tmp_path, capsys, export_int8, flags, message):
    folder, dev = classifier_folder
    target = folder
    if export_int8 is not None:
        target = tmp_path / "onnx"
        assert main(["export", "--model", str(folder), "--out", str(target)]) == 0
        capsys.readouterr()
    assert main(["evaluate", "--model", str(target), "--data", str(dev), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_served_onnx_export_classifies_as_torch(classifier_folder, tmp_path):
    from albertkit.serve.model_functions import TaskModel

    folder, _ = classifier_folder
    export = tmp_path / "onnx"
    assert main(["export", "--model", str(folder), "--out", str(export), "--quantize", "int8"]) == 0
    texts = ["the film is wonderful .", "the plot was dull at times from start to finish ."]
    served, reference = TaskModel(export, backend="onnx"), TaskModel(folder)
    assert served.tasks == ["classify"] and served.describe()["architecture"] == "AlbertForSequenceClassification"
    for got, want in zip(served.classify(texts), reference.classify(texts), strict=True):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-4)
    assert TaskModel(export, backend="onnx", quantize="int8").classify(texts)[0]["label"] in ("negative", "positive")
    with pytest.raises(UserError, match="embeddings need --backend torch"):
        served.encoder.encode(texts)
