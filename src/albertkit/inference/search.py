"""Semantic search: an index folder of unit-length embeddings, queried by exact cosine top-k.

An index folder holds `vectors.npy` (float32, one unit row per text), `texts.jsonl` ({"line", "text"} per row,
`line` being the text's line number in the input file, and "label" when built with a label column) and
`index.json` (the model's identity, pooling, sizes, the label column and the count of each label).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.errors import UserError
from albertkit.inference.ann import (
    ANN_FILE,
    INDEX_TYPES,
    ann_top_k,
    build_tuned,
    read_ann,
    require_faiss,
    write_ann,
)
from albertkit.inference.embed import STREAM_CHUNK, Encoder, in_chunks, write_npy_rows
from albertkit.io.atomic import atomic_folder, file_sha256
from albertkit.io.tables import BadRows, iter_input_rows, reporting_skipped_rows
from albertkit.modeling.config import CONFIG_NAME
from albertkit.modeling.weights import weights_path
from albertkit.runtime.console import progress_bar
from albertkit.runtime.device import resolve_device
from albertkit.tokenization.loading import tokenizer_file

INDEX_META = "index.json"
INDEX_VECTORS = "vectors.npy"
INDEX_TEXTS = "texts.jsonl"
FORMAT_VERSION = 1
# Index rows scored per matrix product: bounds the (queries x rows) score matrix in memory.
SCORE_CHUNK = 32_768


def model_identity(model_dir: str | Path) -> str:
    """sha256 over the model's weights, config and tokenizer: equal only for models giving equal embeddings."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for path in (weights_path(model_dir), model_dir / CONFIG_NAME, tokenizer_file(model_dir)):
        if not path.is_file():
            raise UserError(f"no {path.name} in the model folder", model_dir)
        digest.update(path.name.encode())
        file_sha256(path, digest)
    return digest.hexdigest()


@dataclass
class Hit:
    """One search result: cosine similarity, the text's line in the indexed file, and the text."""

    score: float
    line: int
    text: str


def build_index(
    model_dir: str | Path,
    input_path: str | Path,
    index_dir: str | Path,
    text_column: str | int | None = None,
    batch_size: int = 32,
    pooling: str = "mean",
    chunk_size: int = STREAM_CHUNK,
    label_column: str | int | None = None,
    device: str = "auto",
    precision: str = "auto",
    max_tokens: int | None = None,
    index_type: str = "exact",
    target_recall: float = 0.95,
    bad_rows: BadRows | None = None,
) -> int:
    """Embed the non-blank texts of `input_path` into a new index folder; returns the number of texts.

    With `label_column`, each text's label is stored too (for `classify_by_neighbours`); a blank label is a bad
    row. Bad rows follow `bad_rows` (default: the first one is an error naming its line; skipped ones are
    reported). The folder is written under a temporary name and renamed at the end: an interrupted build leaves
    no index. `device`, `precision` and `max_tokens` are the Encoder's. `index_type` "hnsw" or "ivf" adds an
    approximate index (faiss) whose search effort is raised until recall@10 against exact search on a sample
    reaches `target_recall`.
    """
    resolve_device(device)  # an absent GPU is refused before the input is read
    if index_type not in INDEX_TYPES:
        raise UserError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    if index_type != "exact":
        require_faiss()
    if not 0 < target_recall <= 1:
        raise UserError(f"target recall must be in (0, 1], not {target_recall}")
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    with reporting_skipped_rows():
        count, label_counts = _count_rows(input_path, text_column, label_column, bad_rows)
        bad_rows.report(input_path)
    if count == 0:
        raise UserError("no texts in the file", input_path)
    encoder = Encoder(model_dir, device, precision=precision, max_tokens=max_tokens)
    with atomic_folder(index_dir, INDEX_META, "search index") as tmp:
        # The second pass meets the bad rows the first one counted: skip them again without counting.
        rows = (row for row in iter_input_rows(input_path, text_column, label_column, bad_rows=BadRows(bad_rows.skip))
                if row[1].strip() and (row[2] is None or row[2].strip()))
        with open(tmp / INDEX_TEXTS, "w", encoding="utf-8") as texts_file, \
                progress_bar(total=count, desc="index", unit="text") as progress:
            vectors = (_embed_and_record(encoder, chunk, texts_file, batch_size, pooling)
                       for chunk in in_chunks(rows, chunk_size, progress))
            write_npy_rows(tmp / INDEX_VECTORS, vectors, count, encoder.dimension)
        ann = add_approximate_index(tmp, index_type, target_recall) if index_type != "exact" else None
        meta = {
            "format": FORMAT_VERSION, "model_sha256": model_identity(model_dir),
            "model_dir": str(Path(model_dir).resolve()), "pooling": pooling, "count": count,
            "dimension": encoder.dimension, "source": str(Path(input_path).resolve()),
            "label_column": None if label_column is None else str(label_column),
            "labels": dict(sorted(label_counts.items())) if label_column is not None else None,
            "index_type": index_type, **({"ann": ann} if ann else {}),
        }
        (tmp / INDEX_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return count


def add_approximate_index(folder: Path, index_type: str, target_recall: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Build `folder`'s ANN_FILE over its vectors, tuned to `target_recall`; returns what index.json records."""
    vectors = np.load(folder / INDEX_VECTORS, mmap_mode="r")
    index, tuned = build_tuned(vectors, index_type, lambda q, k: exact_top_k(vectors, q, k), target_recall, seed)
    write_ann(index, folder / ANN_FILE)
    return tuned


def _count_rows(input_path: str | Path, text_column: str | int | None, label_column: str | int | None,
                bad_rows: BadRows) -> tuple[int, Counter]:
    """The number of non-blank texts and of each of their labels; a blank label is a bad row."""
    count, labels = 0, Counter()
    for line, text, label in iter_input_rows(input_path, text_column, label_column, bad_rows=bad_rows):
        if not text.strip():
            continue
        if label is not None:
            if not label.strip():
                bad_rows.reject(input_path, line, "blank label", "a blank label")
                continue
            labels[label.strip()] += 1
        count += 1
    return count, labels


def _embed_and_record(encoder: Encoder, chunk: list[tuple[int, str, str | None]], texts_file: Any, batch_size: int,
                      pooling: str) -> np.ndarray:
    """The chunk's vectors; its lines, texts and labels are appended to the index's texts file."""
    texts_file.writelines(json.dumps({"line": line, "text": text, **({"label": label.strip()} if label is not None else {})},
                                     ensure_ascii=False) + "\n" for line, text, label in chunk)
    return encoder.encode([t for _, t, _ in chunk], batch_size, pooling, show_progress=False)


class SearchIndex:
    """An index folder opened for queries; vectors are memory-mapped, so opening is instant."""

    def __init__(self, index_dir: str | Path):
        self.directory = Path(index_dir)
        meta_path = self.directory / INDEX_META
        if not meta_path.is_file():
            raise UserError(f"no {INDEX_META}: not an index folder (build one with `albertkit search build`)",
                            self.directory)
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"corrupt index metadata ({err.msg})", meta_path, err.lineno) from err
        self.vectors = np.load(self.directory / INDEX_VECTORS, mmap_mode="r")
        if self.vectors.shape != (self.meta["count"], self.meta["dimension"]):
            raise UserError(f"vectors have shape {self.vectors.shape}, index.json says "
                            f"({self.meta['count']}, {self.meta['dimension']})", self.directory / INDEX_VECTORS)
        self._texts: list[tuple[int, str]] | None = None
        self._ann: Any = None
        self._labels: list[str] | None = None

    def __len__(self) -> int:
        return int(self.meta["count"])

    @property
    def texts(self) -> list[tuple[int, str]]:
        """(line, text) of every row, read on first use."""
        if self._texts is None:
            with open(self.directory / INDEX_TEXTS, encoding="utf-8") as handle:
                self._texts = [(r["line"], r["text"]) for r in map(json.loads, handle)]
        return self._texts

    @property
    def labels(self) -> list[str]:
        """The label of every row (an index built with a label column), read on first use."""
        if not self.meta.get("label_column"):
            raise UserError("the index has no labels: build it with `albertkit search build --label-column NAME`",
                            self.directory)
        if self._labels is None:
            with open(self.directory / INDEX_TEXTS, encoding="utf-8") as handle:
                self._labels = [r["label"] for r in map(json.loads, handle)]
        return self._labels

    def check_model(self, model_dir: str | Path) -> None:
        """UserError unless `model_dir` is the model the index was built with."""
        if model_identity(model_dir) != self.meta["model_sha256"]:
            raise UserError(
                f"the index was built with a different model ({self.meta['model_dir']}); "
                "query it with that model or rebuild the index", model_dir,
            )

    @property
    def index_type(self) -> str:
        return self.meta.get("index_type", "exact")

    def top_k(self, queries: np.ndarray, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, min(k, len)), best first: from the approximate index when the folder
        has one (unless `exact`), else exact cosine top-k over chunks of rows."""
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        if self.index_type == "exact" or exact:
            return exact_top_k(self.vectors, queries, k)
        if self._ann is None:
            self._ann = read_ann(self.directory / ANN_FILE, self.index_type, self.meta["ann"]["effort"])
        return ann_top_k(self._ann, queries, min(k, len(self)))

    def search(self, encoder: Encoder, texts: list[str], k: int = 5) -> list[list[Hit]]:
        """The `k` indexed texts nearest to each query text, embedded by `encoder` (checked to be the index's model)."""
        queries = encoder.encode(texts, pooling=self.meta["pooling"], normalize=True, show_progress=False)
        return self.hits(queries, k)

    def hits(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """`top_k` with the texts attached."""
        scores, rows = self.top_k(queries, k)
        texts = self.texts
        return [[Hit(float(s), *texts[r]) for s, r in zip(srow, rrow, strict=True)] for srow, rrow in zip(scores, rows, strict=True)]


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (n_queries, min(k, rows)): exact cosine top-k, best first, over chunks of rows (a
    memory-mapped matrix is read a chunk at a time)."""
    k = min(k, len(vectors))
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    best_scores = torch.full((len(q), 0), -float("inf"))
    best_rows = torch.zeros((len(q), 0), dtype=torch.int64)
    for start in range(0, len(vectors), SCORE_CHUNK):
        block = torch.from_numpy(np.array(vectors[start:start + SCORE_CHUNK]))  # copy: the memmap is read-only
        scores, rows = torch.topk(q @ block.T, min(k, len(block)), dim=1)
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_rows = torch.cat([best_rows, rows + start], dim=1)
        best_scores, picked = torch.topk(merged_scores, min(k, merged_scores.shape[1]), dim=1)
        best_rows = torch.gather(merged_rows, 1, picked)
    return best_scores.numpy(), best_rows.numpy()


def query_index(index_dir: str | Path, texts: list[str], k: int = 5, model_dir: str | Path | None = None,
                device: str = "auto", precision: str = "auto") -> list[list[Hit]]:
    """Search an index folder; the model defaults to the one recorded in the index and must match it.
    The queries are embedded on `device` in `precision` (the Encoder's)."""
    resolve_device(device)
    index = SearchIndex(index_dir)
    return index.search(index_encoder(index, model_dir, device, precision), texts, k)


def index_encoder(index: SearchIndex, model_dir: str | Path | None = None, device: str = "auto",
                  precision: str = "auto") -> Encoder:
    """An Encoder of the model the index was built with (`model_dir`, by default the one the index records),
    on `device` in `precision`."""
    model_dir = Path(model_dir or index.meta["model_dir"])
    if not model_dir.is_dir():
        raise UserError(f"the index's model folder {model_dir} is gone; pass the model with --model", index.directory)
    index.check_model(model_dir)
    return Encoder(model_dir, device, precision=precision)


def format_hits(texts: list[str], results: list[list[Hit]], as_json: bool = False) -> str:
    """Results as text (rank, score, line, text per hit) or as JSON lines, one per query."""
    if as_json:
        return "\n".join(json.dumps({"query": t, "hits": [asdict(h) for h in hits]}, ensure_ascii=False)
                         for t, hits in zip(texts, results, strict=True))
    blocks = []
    for text, hits in zip(texts, results, strict=True):
        lines = [f"query: {text}"] + [f"  {rank:>2}. {h.score:.4f}  line {h.line}: {h.text}" for rank, h in enumerate(hits, 1)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
