"""`pretrain prepare` and `tokenizer train` read parquet, Arrow and datasets folders (one document per row of the
text column) exactly as they read the same documents from JSONL."""

import json

import pytest

from albertkit.cli import main
from albertkit.data.prepare import prepare_pretraining_data
from albertkit.errors import UserError

pa = pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")
import pyarrow.parquet  # noqa: E402, F401  (pa.parquet)

SHARDS = ("tokens.bin", "word_starts.bin", "sentence_offsets.bin", "document_offsets.bin")


@pytest.fixture(scope="module")
def corpora(prepared_corpus, tmp_path_factory):
    """The synthetic corpus's documents as JSONL, parquet (several row groups) and a DatasetDict's train split."""
    root = tmp_path_factory.mktemp("columnar-corpus")
    text = (prepared_corpus / "corpus.txt").read_text(encoding="utf-8")
    documents = [doc.strip() for doc in text.split("\n\n") if doc.strip()]
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in documents), encoding="utf-8")
    pa.parquet.write_table(pa.table({"id": list(range(len(documents))), "text": documents}), root / "docs.parquet",
                           row_group_size=7)
    train = datasets.Dataset.from_dict({"text": documents})
    datasets.DatasetDict({"train": train, "test": train.select(range(3))}).save_to_disk(str(root / "dd"))
    return {"root": root, "tok": prepared_corpus / "tok", "documents": len(documents)}


def test_prepare_gives_the_same_shards_from_jsonl_parquet_and_datasets(corpora):
    root, tok = corpora["root"], corpora["tok"]
    summaries = {}
    for name in ("docs.jsonl", "docs.parquet", "dd"):
        summaries[name] = prepare_pretraining_data(root / name, tok, root / f"out-{name}", max_seq_length=64,
                                                   valid_fraction=0.1, workers=1)
        assert summaries[name]["documents"] == corpora["documents"]
    for name in ("docs.parquet", "dd"):
        for split in ("train", "valid"):
            for shard in SHARDS:
                assert (root / f"out-{name}" / split / shard).read_bytes() == (
                    root / "out-docs.jsonl" / split / shard).read_bytes(), (name, split, shard)
    assert main(["pretrain", "prepare", "--input", str(root / "dd"), "--split", "test", "--tokenizer", str(tok),
                 "--out", str(root / "out-test"), "--max-seq-length", "64", "--workers", "1", "-q"]) == 0
    index = json.loads((root / "out-test" / "index.json").read_text())
    assert sum(index["documents_by_language"].values()) == 3


def test_tokenizer_trains_the_same_from_parquet(corpora, tmp_path):
    root = corpora["root"]
    for name in ("docs.jsonl", "docs.parquet"):
        assert main(["tokenizer", "train", "--input", str(root / name), "--vocab-size", "70", "--lang", "en",
                     "--out", str(tmp_path / name), "-q"]) == 0
    assert (tmp_path / "docs.parquet" / "spiece.model").read_bytes() == (
        tmp_path / "docs.jsonl" / "spiece.model").read_bytes()


def test_a_table_without_a_text_column_is_named(corpora, tmp_path):
    pa.parquet.write_table(pa.table({"a": ["x"], "b": ["y"]}), tmp_path / "two.parquet")
    with pytest.raises(UserError, match=r"two.parquet: no column 'text'; the columns are a, b"):
        prepare_pretraining_data(tmp_path / "two.parquet", corpora["tok"], tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
