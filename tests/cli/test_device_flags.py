"""--device on every command that runs a model: asking for a GPU that is not there is one line and exit 2,
before anything is written; --device cpu runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.train.contrastive import ContrastiveSettings
from albertkit.train.settings import load_settings


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def commands(folders: dict[str, Path], out: Path) -> dict[str, list[str]]:
    corpus, model = str(folders["corpus"]), str(folders["cls"])
    return {
        "predict": ["predict", "--model", model, "--input", corpus, "--output", str(out / "p.jsonl")],
        "evaluate": ["evaluate", "--model", model, "--data", corpus, "--output", str(out / "m.json")],
        "serve": ["serve", "--model", model, "--port", "1"],
        "embed": ["embed", "--model", model, "--input", corpus, "--output", str(out / "e.npy")],
        "search build": ["search", "build", "--model", model, "--input", corpus, "--index", str(out / "index")],
        "search query": ["search", "query", "--index", str(out / "index"), "a film"],
        "export": ["export", "--model", model, "--out", str(out / "onnx")],
        "embed-train": ["embed-train", "--model", model, "--sentences", corpus, "--out", str(out / "run")],
        "finetune": ["finetune", "--model", model, "--train", corpus, "--dev", corpus, "--out", str(out / "ft")],
        "pretrain run": ["pretrain", "run", "--data", str(out / "data"), "--out", str(out / "pt")],
        "similarity": ["similarity", "--model", model, "a film", "a movie"],
        "cluster": ["cluster", "--model", model, "--input", corpus, "--out", str(out / "clusters")],
        "knn-classify": ["knn-classify", "--index", str(out / "index"), "--input", corpus],
    }


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve", "embed", "search build", "search query", "export", "embed-train", "finetune",
                                     "pretrain run", "similarity", "cluster", "knn-classify"])
def test_absent_gpu_is_refused_before_writing(model_folders: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture, command: str) -> None:
    argv = commands(model_folders, tmp_path)[command]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("albertkit: error: --device cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() "
                   "is False); use --device cpu or auto")
    assert list(tmp_path.iterdir()) == []


def test_training_settings_from_a_config_file_are_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("device: cuda:0\n", encoding="utf-8")
    with pytest.raises(UserError, match="--device cuda:0: no CUDA GPU"):
        load_settings(ContrastiveSettings, config)
    assert load_settings(ContrastiveSettings, config, {"device": "cpu"}).device == "cpu"


def test_device_cpu_runs(model_folders: dict[str, Path], tmp_path: Path) -> None:
    argv = commands(model_folders, tmp_path)
    assert main([*argv["embed"], "--device", "cpu", "--precision", "fp32"]) == 0
    assert np.load(tmp_path / "e.npy").shape == (400, 64)
    assert main([*argv["embed"], "--device", "cpu", "--precision", "fp16"]) == 2  # fp16 needs CUDA


@pytest.fixture(scope="module")
def classifier(model_folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny random classifier as a fine-tuned folder and a labelled file."""
    from builders import finetuned_classifier

    return finetuned_classifier(model_folders, tmp_path_factory.mktemp("device"), rows=50, seed=4)


def test_predict_in_bf16_and_by_token_budget(classifier: tuple[Path, Path], tmp_path: Path) -> None:
    import json

    folder, data = classifier
    base = ["predict", "--model", str(folder), "--input", str(data), "--device", "cpu"]

    def probabilities(name: str, *extra: str) -> np.ndarray:
        assert main([*base, "--output", str(tmp_path / name), *extra]) == 0
        records = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        return np.array([r["probabilities"]["positive"] for r in records])

    fp32 = probabilities("fp32.jsonl")
    np.testing.assert_allclose(probabilities("budget.jsonl", "--max-tokens", "64"), fp32, atol=1e-6)
    np.testing.assert_allclose(probabilities("bf16.jsonl", "--precision", "bf16"), fp32, atol=0.02)
    assert main([*base, "--output", str(tmp_path / "x.jsonl"), "--precision", "fp16"]) == 2


def test_evaluate_and_serve_take_the_device(classifier: tuple[Path, Path], tmp_path: Path) -> None:
    import json

    from albertkit.serve.model_functions import TaskModel

    folder, data = classifier
    assert main(["evaluate", "--model", str(folder), "--data", str(data), "--device", "cpu", "--precision", "bf16",
                 "--output", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["examples"] == 50
    fp32 = TaskModel(folder, device="cpu").functions["classify"](["a wonderful film"])[0]
    bf16_model = TaskModel(folder, device="cpu", precision="bf16")
    assert bf16_model.encoder.amp_dtype is torch.bfloat16
    bf16 = bf16_model.functions["classify"](["a wonderful film"])[0]
    assert bf16["label"] == fp32["label"] and abs(bf16["score"] - fp32["score"]) < 0.02


def test_pretrain_evaluate_takes_the_device(model_folders: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    args = ["pretrain", "evaluate", "--model", str(model_folders["mlm"]), "--input", str(model_folders["corpus"]),
            "--max-documents", "20", "--max-seq-length", "32", "--json"]
    assert main([*args, "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA GPU" in capsys.readouterr().err
    assert main([*args, "--device", "cpu", "--precision", "bf16"]) == 0
