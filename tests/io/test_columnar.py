"""Parquet, Arrow and datasets folders as inputs: the same rows in every format, one split of a DatasetDict,
errors naming the file (and row), and large parquet read batch by batch."""

import json

import pytest

from albertkit.errors import UserError
from albertkit.io.columnar import column_names, is_columnar, iter_column_texts, iter_rows, resolve_column

pa = pytest.importorskip("pyarrow")
import pyarrow.feather  # noqa: E402
import pyarrow.parquet  # noqa: E402, F401  (pa.parquet)

TEXTS = ["the film is wonderful .", "boring", "第二句 和 中文", "line one\nline two"]
LABELS = [1, 0, 1, 0]


def table():
    return pa.table({"text": TEXTS, "label": LABELS})


def write_all(root):
    """The same table as parquet, Arrow IPC file, feather, a Dataset folder and a DatasetDict folder."""
    datasets = pytest.importorskip("datasets")
    root.mkdir(parents=True, exist_ok=True)
    pa.parquet.write_table(table(), root / "t.parquet", row_group_size=2)
    with pa.ipc.new_file(root / "t.arrow", table().schema) as writer:
        writer.write_table(table(), max_chunksize=3)
    pa.feather.write_feather(table(), root / "t.feather")
    dataset = datasets.Dataset.from_dict({"text": TEXTS, "label": LABELS})
    dataset.save_to_disk(str(root / "ds"))
    datasets.DatasetDict({"train": dataset, "validation": dataset.select([3, 2])}).save_to_disk(str(root / "dd"))
    return root


def test_every_format_gives_the_same_rows(tmp_path):
    root = write_all(tmp_path)
    expected = [(i + 1, {"text": t, "label": label}) for i, (t, label) in enumerate(zip(TEXTS, LABELS, strict=True))]
    for name in ("t.parquet", "t.arrow", "t.feather", "ds", "dd"):
        assert is_columnar(root / name)
        assert [(n, row) for _, n, row in iter_rows(root / name, batch_rows=3)] == expected, name
        assert column_names(root / name) == ["text", "label"]
    assert [t for _, _, t in iter_column_texts(root / "dd", split="validation")] == [TEXTS[3], TEXTS[2]]
    assert resolve_column(root / "t.parquet", 1) == "label" and resolve_column(root / "ds", "0") == "text"
    assert not is_columnar(tmp_path / "x.tsv") and not is_columnar(tmp_path)


def test_errors_name_the_file_the_row_and_the_choices(tmp_path):
    root = write_all(tmp_path)
    with pytest.raises(UserError, match=r"t.parquet: no column 'sentence'; the columns are text, label"):
        list(iter_column_texts(root / "t.parquet", "sentence"))
    with pytest.raises(UserError, match=r"column 5 is out of range: the table has 2 columns \(text, label\)"):
        resolve_column(root / "t.arrow", 5)
    with pytest.raises(UserError, match=r"dd: no split 'test'; it has train, validation"):
        list(iter_rows(root / "dd", split="test"))
    with pytest.raises(UserError, match=r"t.parquet: --split test is for datasets folders"):
        list(iter_rows(root / "t.parquet", split="test"))
    only_dev = tmp_path / "dev_only"
    only_dev.mkdir()
    (only_dev / "dataset_dict.json").write_text(json.dumps({"splits": ["validation"]}))
    with pytest.raises(UserError, match=r"a DatasetDict: choose a split with --split or give a split's folder "
                       r"\(.*dev_only/validation\); it has validation"):
        list(iter_rows(only_dev))
    pa.parquet.write_table(pa.table({"text": ["a", None, "c"]}), tmp_path / "null.parquet")
    with pytest.raises(UserError, match=r"null.parquet:2: column 'text' holds null, not text"):
        list(iter_column_texts(tmp_path / "null.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match=r"bad.parquet: not a readable parquet file"):
        list(iter_rows(tmp_path / "bad.parquet"))


def test_large_parquet_is_read_in_batches(tmp_path):
    """40 MB of text in 64 row groups: the Arrow memory in use while reading stays under one row group's."""
    rows = 160_000
    text = pa.array([f"{i:08d} " + "x" * 240 for i in range(rows)])
    pa.parquet.write_table(pa.table({"text": text}), tmp_path / "big.parquet", row_group_size=rows // 64,
                           compression="zstd")
    del text
    baseline, peak, last = pa.total_allocated_bytes(), 0, (0, "")
    for _, number, value in iter_column_texts(tmp_path / "big.parquet"):
        last = (number, value)
        if number % 1000 == 0:
            peak = max(peak, pa.total_allocated_bytes() - baseline)
    assert last[0] == rows and last[1].startswith(f"{rows - 1:08d}")
    assert peak < 8_000_000, peak  # the whole column decoded would take over 40 MB
