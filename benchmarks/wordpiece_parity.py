"""albertkit's WordPieceTokenizer against transformers.BertTokenizer on every training text of the shared data.

    python benchmarks/wordpiece_parity.py [--data ../shared/data] [--vocab-size 8000]

Trains a WordPiece vocabulary (bert-base-chinese's id layout: [PAD], [unused1..99], [UNK], [CLS], [SEP],
[MASK], then the learned pieces) on ChnSentiCorp, AFQMC and SST-2 training text, encodes all of it with both
tokenizers in one process, and prints how many texts get different ids and how long each took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import transformers

from albertkit.tokenization.loading import load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_bert_vocab  # noqa: E402 - the tests' vocabulary builder, found through sys.path

SOURCES = (("zh/chnsenticorp/train.tsv", (0,)), ("zh/afqmc/train.tsv", (0, 1)), ("en/sst2/train.tsv", (0,)))


def read_texts(data: Path) -> list[str]:
    texts = []
    for name, columns in SOURCES:
        rows = [line.split("\t") for line in (data / name).read_text(encoding="utf-8").splitlines()]
        texts += [row[column] for column in columns for row in rows if len(row) > column]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()
    texts = read_texts(args.data)
    with tempfile.TemporaryDirectory() as folder:
        write_bert_vocab(texts, Path(folder), args.vocab_size)
        ours, theirs = load_tokenizer(folder), transformers.BertTokenizer.from_pretrained(folder)
        started = time.perf_counter()
        our_ids = ours.encode_batch(texts)
        our_seconds = time.perf_counter() - started
        started = time.perf_counter()
        their_ids = theirs(texts, add_special_tokens=False)["input_ids"]
        their_seconds = time.perf_counter() - started
    result = {
        "texts": len(texts),
        "tokens": sum(map(len, our_ids)),
        "vocab_size": ours.vocab_size,
        "texts_with_different_ids": sum(a != b for a, b in zip(our_ids, their_ids, strict=True)),
        "albertkit_seconds": round(our_seconds, 2),
        "transformers_seconds": round(their_seconds, 2),
        "transformers_version": transformers.__version__,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
