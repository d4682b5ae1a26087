"""The Python API: every example of docs/python-api.md runs as written; in-memory data trains exactly as the
same file does through the CLI; settings and data mistakes are named."""

import re
from pathlib import Path

import pytest
from safetensors.torch import load_file

import albertkit
from albertkit.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow  # a tokenizer, 10 pretraining steps, two fine-tunings and SimCSE on the bundled sample
def test_every_example_of_the_api_docs_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = doc_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the documentation's own code
    assert namespace["pretrained"].steps == 10 and sorted(namespace["losses"].losses) == [5, 10]
    assert (tmp_path / "runs" / "pretrain" / "tokenizer" / "spiece.model").is_file()
    assert (tmp_path / "runs" / "sentiment" / "inputs" / "train.jsonl").read_text().count("\n") == 400
    # the DataFrame and the lists give the same examples, hence the same model
    first, second = (load_file(tmp_path / "runs" / run / "final" / "model.safetensors")
                     for run in ("sentiment", "sentiment-lists"))
    assert all((first[k] == second[k]).all() for k in first)
    assert namespace["metrics"]["examples"] == 100
    assert namespace["metrics"]["accuracy"] == pytest.approx(namespace["sentiment"].best_metric)
    assert namespace["vectors"].shape == (2, 256)
    assert [r["label"] in ("positive", "negative") for r in namespace["records"]] == [True, True]
    assert (tmp_path / "runs" / "simcse" / "final" / "modules.json").is_file()
    printed = capsys.readouterr().out
    assert f"{namespace['metrics']['accuracy']} 100" in printed


def test_in_memory_data_trains_as_the_file_does(model_folders, tmp_path):
    rows = [("the film is wonderful .", "positive"), ("this movie was dull .", "negative")] * 16
    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows))
    flags = dict(epochs=1, batch_size=8, learning_rate=1e-3, report_to="none", seed=3)
    assert main(["finetune", "--model", str(model_folders["cls"]), "--train", str(tmp_path / "train.tsv"),
                 "--dev", str(tmp_path / "train.tsv"), "--out", str(tmp_path / "cli"), "--task", "classification",
                 "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--report-to", "none", "--seed", "3",
                 "-q"]) == 0
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    albertkit.finetune(model_folders["cls"], {"text": texts, "label": labels}, (texts, labels), tmp_path / "api",
                       task="classification", **flags)
    cli, api = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("cli", "api"))
    assert cli.keys() == api.keys() and all((cli[k] == api[k]).all() for k in cli)
    metrics = albertkit.evaluate(tmp_path / "api" / "final", [{"text": t, "label": y} for t, y in rows])
    assert metrics["examples"] == 32 and 0 <= metrics["accuracy"] <= 1


def test_mistakes_are_named(model_folders, tmp_path):
    with pytest.raises(TypeError, match="settings must be a FinetuneSettings, not PretrainSettings"):
        albertkit.finetune(model_folders["cls"], "a.tsv", "b.tsv", tmp_path, settings=albertkit.PretrainSettings())
    with pytest.raises(TypeError, match="either a settings object or config/keyword settings, not both"):
        albertkit.finetune(model_folders["cls"], "a.tsv", "b.tsv", tmp_path,
                           settings=albertkit.FinetuneSettings(), epochs=2)
    with pytest.raises(albertkit.UserError, match="columns of different lengths: text 2, label 1"):
        albertkit.evaluate(model_folders["cls"], (["a", "b"], ["positive"]))
    with pytest.raises(albertkit.UserError, match="cannot read int as data"):
        albertkit.evaluate(model_folders["cls"], 42)
