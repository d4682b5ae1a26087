"""Model cards: the README.md of every saved folder holds the Hub's metadata, exactly the figures albertkit measured
(checked against the run's log and `evaluate`), and code that runs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.inference.predict import evaluate_model
from albertkit.modeling.folder import load_any_model, read_model_info, update_model_card, write_model_folder
from albertkit.modeling.model_card import CARD_NAME, GENERATED_MARK
from albertkit.report.runlog import read_log
from albertkit.tokenization.loading import load_tokenizer


@pytest.fixture(scope="module")
def finetuned(model_folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (short) fine-tuning run: best/ and final/ written by the training loop."""
    root = tmp_path_factory.mktemp("run")
    rows = [f"{s}\t{'positive' if any(w in s for w in ('wonderful', 'gripping', 'brilliant')) else 'negative'}"
            for s in model_folders["corpus"].read_text().splitlines()]
    (root / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[:240]) + "\n")
    (root / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[240:320]) + "\n")
    assert main(["finetune", "--task", "classification", "--model", str(model_folders["mlm"]), "--out", str(root / "sst"),
                 "--train", str(root / "train.tsv"), "--dev", str(root / "dev.tsv"), "--max-steps", "6",
                 "--eval-every", "3", "--batch-size", "16", "--lr", "3e-3", "--log-every", "3"]) == 0
    return root


def card(folder: Path) -> ModelCard:
    return ModelCard.load(folder / CARD_NAME)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def run_snippets(folder: Path, path_hint: str) -> dict:
    """Run every Python block of the card with its placeholder path pointed at `folder`; the last namespace."""
    namespace: dict = {}
    for block in code_blocks((folder / CARD_NAME).read_text(), "python"):
        namespace = {}
        exec(block.replace(path_hint, str(folder)), namespace)
    return namespace


def test_dev_figures_are_the_logged_evaluations(finetuned: Path) -> None:
    evals = [r for r in read_log(finetuned / "sst") if r["kind"] == "eval"]
    best = max(evals, key=lambda r: r["accuracy"])
    data = card(finetuned / "sst" / "best").data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert data.license == "unknown" and "albertkit" in data.tags
    assert data.model_name == "sst-best"
    results = {(r.dataset_split, r.metric_name): r.metric_value for r in data.eval_results}
    assert results[("dev", "dev accuracy")] == pytest.approx(best["accuracy"], abs=1e-6)
    assert results[("dev", "dev macro F1")] == pytest.approx(best["macro_f1"], abs=1e-6)
    assert {split for split, _ in results} == {"dev"}  # nothing else was measured
    final = card(finetuned / "sst" / "final").data
    last = {(r.metric_name): r.metric_value for r in final.eval_results}
    assert last["dev accuracy"] == pytest.approx(evals[-1]["accuracy"], abs=1e-6)
    text = (finetuned / "sst" / "final" / CARD_NAME).read_text()
    assert "6 optimizer steps" in text and f"best evaluation at step {best['step']}" in text


def test_test_figures_are_what_evaluate_measured(finetuned: Path) -> None:
    best = finetuned / "sst" / "best"
    measured = evaluate_model(best, finetuned / "dev.tsv")
    update_model_card(best, measured | {"broken": math.nan}, split="test", license="apache-2.0", language="en")
    info = read_model_info(best)
    assert info["evaluations"]["test"]["examples"] == 80 and info["license"] == "apache-2.0"
    assert set(info["evaluations"]["test"]["metrics"]) == {"accuracy", "macro_f1", "mcc"}  # no NaN, no matrix
    data = card(best).data
    assert data.license == "apache-2.0" and data.language == ["en"]
    tests = {r.metric_name: r for r in data.eval_results if r.dataset_split == "test"}
    assert tests["test accuracy"].metric_value == pytest.approx(measured["accuracy"], abs=1e-6)
    assert tests["test accuracy"].dataset_name == "dev.tsv"
    assert f"| test | dev.tsv | 80 |  | accuracy | {measured['accuracy']:.4f} |" in (best / CARD_NAME).read_text()
    with pytest.raises(UserError, match="unknown model card field"):
        update_model_card(best, licence="mit")


@pytest.mark.parametrize("name, pipeline_tag", [("cls", "text-classification"), ("mlm", "fill-mask"),
                                                ("ner", "token-classification"), ("qa", "question-answering")])
def test_every_head_gets_a_card_whose_code_runs(model_folders: Path, name: str, pipeline_tag: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    write_model_folder(load_any_model(model_folders[name]), folder, load_tokenizer(model_folders[name]), {"task": "init",
                                                                                              "preset": "tiny", "seed": 0})
    data = card(folder).data
    assert data.pipeline_tag == pipeline_tag and not data.eval_results and not data.metrics
    text = (folder / CARD_NAME).read_text()
    assert "No evaluation was recorded" in text and "randomly initialised, untrained" in text
    assert text.rstrip().endswith(GENERATED_MARK)
    namespace = run_snippets(folder, f"path/to/{name}")
    assert "model" in namespace or "run" in namespace


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("cls", False), ("pooler", True)])
def test_embedding_card_code_gives_albertkit_embeddings(model_folders: Path, pooling: str, normalize: bool,
                                                        tmp_path: Path) -> None:
    folder = tmp_path / "encoder"
    albert = load_any_model(model_folders["cls"]).albert
    write_model_folder(albert, folder, load_tokenizer(model_folders["cls"]),
                       {"task": "sentence-embeddings", "pooling": pooling, "normalize": normalize})
    text = (folder / CARD_NAME).read_text()
    assert f"--pooling {pooling}" in text and ("--no-normalize" in text) != normalize
    snippet = code_blocks(text, "python")[-1]  # the transformers one
    namespace: dict = {}
    exec(snippet.replace("path/to/encoder", str(folder)), namespace)
    expected = Encoder(folder).encode(["first text", "second text"], pooling=pooling, normalize=normalize)
    np.testing.assert_allclose(namespace["vectors"].numpy(), expected, atol=1e-5)


def test_model_init_writes_an_honest_card(model_folders: Path, tmp_path: Path) -> None:
    assert main(["model", "init", "--tokenizer", str(model_folders["cls"]), "--out", str(tmp_path / "fresh")]) == 0
    data = card(tmp_path / "fresh").data
    assert data.pipeline_tag == "fill-mask" and not data.eval_results
    assert "None: randomly initialised from the `tiny` preset (seed 0)" in (tmp_path / "fresh" / CARD_NAME).read_text()


def test_a_readme_albertkit_did_not_write_is_kept(model_folders: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / CARD_NAME).write_text("# my own notes\n")
    write_model_folder(load_any_model(model_folders["cls"]), folder, load_tokenizer(model_folders["cls"]), {"task": "init"})
    assert (folder / CARD_NAME).read_text() == "# my own notes\n"
    assert json.loads((folder / "albertkit.json").read_text()) == {"task": "init"}
    assert torch.equal(load_any_model(folder).classifier.weight, load_any_model(model_folders["cls"]).classifier.weight)
