"""`albertkit quickstart`: the whole chain on the bundled sample, shortened, and on user data."""

import json

import pytest

from albertkit.cli import main
from albertkit.samples import sample_path


@pytest.mark.slow
def test_quickstart_runs_the_whole_chain(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--pretrain-minutes", "0.1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pretrain"]["steps"] >= 1 and "mlm_accuracy" in summary["pretrain"]["metrics"]
    assert summary["evaluate"]["examples"] == 100 and 0 <= summary["evaluate"]["accuracy"] <= 1
    assert [len(f["candidates"]) for f in summary["fill_mask"]] == [3, 3, 3]
    assert all(len(n["hits"]) == 3 for n in summary["neighbours"])
    # Centred mean-pooled vectors spread: the nearest sentence is far closer than the farthest.
    for found in summary["neighbours"]:
        assert found["hits"][0]["score"] - found["lowest_score"] > 0.5
    for folder in ("tokenizer", "data", "pretrain/final", "finetune/best", "index"):
        assert (out / folder).is_dir(), folder
    assert (out / "pretrain" / "report.html").is_file() and (out / "finetune" / "report.html").is_file()
    assert "done in" in capsys.readouterr().out


def test_quickstart_data_folder_must_hold_train_and_dev(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text(sample_path("en", "corpus.txt").read_text())
    assert main(["quickstart", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.tsv" in err
