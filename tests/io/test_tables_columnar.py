"""The example- and text-reading commands take parquet, Arrow and datasets folders (a DatasetDict's split by
--split or by its folder) and give what the same rows give as TSV."""

import json

import numpy as np
import pytest
from builders import movie_sentences

from albertkit.cli import main

pa = pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")
import pyarrow.feather  # noqa: E402, F401  (pa.feather)
import pyarrow.parquet  # noqa: E402, F401  (pa.parquet)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Labelled review sentences as TSV, parquet, feather and a DatasetDict (train, validation)."""
    root = tmp_path_factory.mktemp("tables")
    texts = movie_sentences(96, seed=5)
    labels = ["positive" if any(w in t for w in ("wonderful", "gripping", "beautiful", "moving", "brilliant"))
              else "negative" for t in texts]
    (root / "all.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels, strict=True)))
    (root / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts[64:], labels[64:], strict=True)))
    table = pa.table({"sentence": texts, "label": labels})
    pa.parquet.write_table(table, root / "all.parquet", row_group_size=10)
    pa.feather.write_feather(table.slice(64), root / "dev.feather")
    whole = datasets.Dataset.from_dict({"sentence": texts, "label": labels})
    datasets.DatasetDict({"train": whole.select(range(64)), "validation": whole.select(range(64, 96))}).save_to_disk(
        str(root / "dd"))
    return root


def test_finetune_and_evaluate_read_parquet_and_datasets_splits(model_folders, tables, tmp_path):
    common = ["--model", str(model_folders["cls"]), "--task", "classification", "--epochs", "1", "--batch-size", "16",
              "--lr", "1e-3", "--report-to", "none", "-q"]
    assert main(["finetune", *common, "--train", str(tables / "dd" / "train"), "--dev", str(tables / "dev.feather"),
                 "--out", str(tmp_path / "run")]) == 0
    info = json.loads((tmp_path / "run" / "best" / "albertkit.json").read_text())
    assert info["train_examples"] == 64 if "train_examples" in info else True
    by_tsv, by_split, by_feather = (tmp_path / f"{name}.json" for name in ("tsv", "split", "feather"))
    assert main(["evaluate", "--model", str(tmp_path / "run" / "best"), "--data", str(tables / "dev.tsv"),
                 "--output", str(by_tsv), "-q"]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "run" / "best"), "--data", str(tables / "dd"),
                 "--split", "validation", "--output", str(by_split), "-q"]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "run" / "best"), "--data", str(tables / "dev.feather"),
                 "--output", str(by_feather), "-q"]) == 0
    metrics = [{k: v for k, v in json.loads(p.read_text()).items() if k != "data"} for p in (by_tsv, by_split, by_feather)]
    assert metrics[0]["examples"] == 32 and metrics[0] == metrics[1] == metrics[2]


def test_predict_embed_and_search_read_columnar_files(model_folders, tables, tmp_path):
    model = str(model_folders["cls"])
    for name in ("all.tsv", "all.parquet"):
        assert main(["predict", "--model", model, "--input", str(tables / name), "--output",
                     str(tmp_path / f"{name}.jsonl"), "-q"]) == 0
        assert main(["embed", "--model", model, "--input", str(tables / name), "--text-column", "sentence",
                     "--output", str(tmp_path / f"{name}.npy"), "-q"]) == 0
    def predictions(name):  # a row's number, not the file's line (the TSV has a header line)
        return [{k: v for k, v in json.loads(line).items() if k != "line"}
                for line in (tmp_path / name).read_text().splitlines()]

    assert len(predictions("all.parquet.jsonl")) == 96
    assert predictions("all.parquet.jsonl") == predictions("all.tsv.jsonl")
    assert np.array_equal(np.load(tmp_path / "all.parquet.npy"), np.load(tmp_path / "all.tsv.npy"))
    assert main(["search", "build", "--model", model, "--input", str(tables / "dd"), "--split", "train",
                 "--text-column", "sentence", "--index", str(tmp_path / "index"), "-q"]) == 0
    assert json.loads((tmp_path / "index" / "index.json").read_text())["count"] == 64


def test_columnar_mistakes_are_one_line(model_folders, tables, tmp_path, capsys):
    model = str(model_folders["cls"])
    assert main(["evaluate", "--model", model, "--data", str(tables / "dd")]) == 2
    assert "a DatasetDict: choose a split with --split or give a split's folder" in capsys.readouterr().err
    assert main(["embed", "--model", model, "--input", str(tables / "all.parquet"), "--split", "train",
                 "--output", str(tmp_path / "x.npy")]) == 2
    assert "--split train is for datasets folders" in capsys.readouterr().err
    assert main(["embed", "--model", model, "--input", str(tables / "all.parquet"), "--text-column", "review",
                 "--output", str(tmp_path / "x.npy")]) == 2
    assert "no column 'review'" in capsys.readouterr().err
