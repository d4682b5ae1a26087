"""Sentence embeddings: `Encoder.encode(texts) -> ndarray`, and `embed_file` for files larger than RAM."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches, token_budget_batches
from albertkit.errors import UserError
from albertkit.inference.onnx_backend import BACKENDS, OnnxRuntimeModel
from albertkit.inference.quantize import quantize_model
from albertkit.io.atomic import write_atomic
from albertkit.io.tables import BadRows, iter_input_texts, reporting_skipped_rows
from albertkit.modeling.folder import check_tokenizer_matches, load_any_model
from albertkit.modeling.model import AlbertModel
from albertkit.runtime.console import progress_bar
from albertkit.runtime.device import CUDA_MAX_TOKENS, autocast, autocast_dtype, resolve_device
from albertkit.runtime.memory import keep_freed_memory
from albertkit.tokenization.loading import load_tokenizer

POOLINGS = ("mean", "cls", "pooler")
# Texts per chunk when streaming a file: bounds memory whatever the file's size.
STREAM_CHUNK = 8192
T = TypeVar("T")


def pad_batch(sequences: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of shape (B, longest), padded on the right."""
    batch = collate([{"input_ids": s, "attention_mask": np.ones(len(s), dtype=np.int64)} for s in sequences], pad_id)
    return batch["input_ids"], batch["attention_mask"]


def with_special_tokens(piece_ids: list[list[int]], cls_id: int, sep_id: int, max_length: int) -> list[np.ndarray]:
    """[CLS] pieces [SEP] for each text, the pieces cut to fit `max_length`."""
    keep = max_length - 2
    return [np.array([cls_id, *ids[:keep], sep_id], dtype=np.int64) for ids in piece_ids]


class Encoder:
    """Sentence embeddings from any ALBERT model folder (the encoder under whatever head it has).

    `Encoder("runs/sst2").encode(["a sentence", ...])` returns an (n, hidden_size) float32 array.

    device: auto (a CUDA GPU when there is one), cpu, cuda, cuda:N or mps. precision: auto (bf16 autocast on
    CUDA, fp32 elsewhere), fp32, bf16 or fp16. max_tokens: padded tokens per batch, texts batched by this budget
    instead of by count (default: CUDA_MAX_TOKENS on CUDA; on other devices, and with 0, batches of `batch_size`
    texts).
    """

    def __init__(self, model_dir: str | Path, device: str | torch.device = "auto", max_length: int = 512,
                 precision: str = "auto", max_tokens: int | None = None, quantize: str | None = None,
                 backend: str = "torch"):
        keep_freed_memory()
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        target = resolve_device(device, cpu_only=quantize is not None or backend == "onnx")
        # The ONNX backend runs the exported head alone: its outputs, no encoder layers to pool (embed needs torch).
        model = (OnnxRuntimeModel(model_dir, quantize) if backend == "onnx"
                 else quantize_model(load_any_model(model_dir).to(target).eval(), quantize))
        self._attach(model, load_tokenizer(model_dir),
                     max_length, Path(model_dir), precision, max_tokens)

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer: Any, max_length: int = 512, precision: str = "auto",
                   max_tokens: int | None = None) -> Encoder:
        """An Encoder over a model already in memory (during training, say); its train/eval mode is left alone."""
        encoder = cls.__new__(cls)
        encoder._attach(model, tokenizer, max_length, None, precision, max_tokens)
        return encoder

    def _attach(self, model: torch.nn.Module, tokenizer: Any, max_length: int, model_dir: Path | None,
                precision: str, max_tokens: int | None) -> None:
        check_tokenizer_matches(tokenizer, model.config, model_dir / tokenizer.vocab_file if model_dir else None)
        self.model_dir = model_dir
        self.tokenizer = tokenizer
        self.model = model
        self.albert: AlbertModel | None = model if isinstance(model, AlbertModel) else getattr(model, "albert", None)
        self.max_length = min(max_length, model.config.max_position_embeddings)
        self.device = model.device if hasattr(model, "device") else next(model.parameters()).device
        self.amp_dtype = autocast_dtype(precision, self.device, inference=True)
        if max_tokens is not None and max_tokens < 0:
            raise UserError(f"max tokens must be at least 0 (0: batches of batch_size texts), got {max_tokens}")
        self.max_tokens = max_tokens if max_tokens is not None else (
            CUDA_MAX_TOKENS if self.device.type == "cuda" else 0)

    @property
    def dimension(self) -> int:
        return self.model.config.hidden_size

    def check_pooling(self, pooling: str) -> None:
        """A UserError unless `pooling` is one of `POOLINGS` that this model has the layers for."""
        if pooling not in POOLINGS:
            raise UserError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.albert is None:
            raise UserError("the ONNX backend runs the exported head only: embeddings need --backend torch",
                            self.model_dir)
        if pooling == "pooler" and self.albert.pooler is None:
            raise UserError(f"{type(self.model).__name__} has no pooler layer; use pooling 'mean' or 'cls'",
                            self.model_dir)

    def tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Ids with [CLS]/[SEP], truncated to `max_length`; the pieces come from one batched C++ call."""
        tok = self.tokenizer
        return with_special_tokens(tok.encode_batch(texts), tok.cls_token_id, tok.sep_token_id, self.max_length)

    def encode(
        self,
        texts: list[str] | str,
        batch_size: int = 32,
        pooling: str = "mean",
        normalize: bool = True,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embeddings of `texts` as float32 (n, hidden_size), in the order given.

        pooling: "mean" over the real tokens, "cls" (the first token's hidden state) or "pooler" (tanh layer
        on [CLS], as trained by SOP or a classification head). normalize: unit L2 length, so a dot product
        is the cosine. Texts are batched by length so that padding stays short: `batch_size` texts per batch,
        or as many as `max_tokens` padded tokens hold when the Encoder has a token budget.
        """
        self.check_pooling(pooling)
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        sequences = self.tokenize(list(texts))
        # Longest first: little padding, and memory peaks at the start rather than after minutes.
        lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
        batches = (token_budget_batches(lengths, self.max_tokens) if self.max_tokens
                   else length_bucketed_batches(lengths, batch_size, shuffle=False))
        show = len(batches) > 4 if show_progress is None else show_progress
        with torch.inference_mode(), autocast(self.device, self.amp_dtype):
            for rows in progress_bar(batches, desc="embed", unit="batch", disable=not show):
                input_ids, attention_mask = pad_batch([sequences[i] for i in rows], self.tokenizer.pad_token_id)
                pooled = self.pool(input_ids.to(self.device), attention_mask.to(self.device), pooling).float()
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.float().cpu().numpy()
        return out

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
        """(B, H) pooled hidden states of one padded batch."""
        return pool_embeddings(self.albert, input_ids, attention_mask, pooling)


def pool_embeddings(albert: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    pooling: str) -> torch.Tensor:
    """(B, H) sentence vectors of a padded batch, computed on the unpadded path (real tokens only).

    pooling: "mean" over the real tokens, "cls" (the first token's hidden state) or "pooler" (tanh layer on it).
    """
    hidden, unpadding = albert.encode(input_ids, attention_mask)
    if pooling in ("cls", "pooler"):
        first = albert.first_tokens(hidden, unpadding)
        return first if pooling == "cls" else albert.pool(first)
    lengths = attention_mask.sum(dim=1)
    if unpadding is None:  # no padding in this batch: hidden is (B, L, H)
        hidden = hidden.reshape(-1, hidden.shape[-1])
    row_of_token = torch.repeat_interleave(torch.arange(len(lengths), device=hidden.device), lengths)
    # Summed in float32: a bf16 sum over hundreds of tokens would lose the vector's low bits.
    sums = hidden.new_zeros(len(lengths), hidden.shape[-1], dtype=torch.float32).index_add_(0, row_of_token,
                                                                                            hidden.float())
    return sums / lengths[:, None].float()


def embed_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str | int | None = None,
    batch_size: int = 32,
    pooling: str = "mean",
    normalize: bool = True,
    chunk_size: int = STREAM_CHUNK,
    device: str = "auto",
    precision: str = "auto",
    max_tokens: int | None = None,
    quantize: str | None = None,
    bad_rows: BadRows | None = None,
) -> int:
    """Embed every row of `input_path` into `output_path` (.npy, or .parquet with pyarrow); returns the row count.

    Streams in chunks so inputs larger than RAM work; the output appears only when complete (temp + rename).
    `device`, `precision`, `max_tokens` and `quantize` are the Encoder's. Bad rows of a table follow `bad_rows`
    (default: the first one is an error); skipped ones are reported.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    resolve_device(device)  # an absent GPU is refused before the input is read
    output_path = Path(output_path)
    suffix = output_path.suffix.lower()
    if suffix not in (".npy", ".parquet"):
        raise UserError("output must end in .npy or .parquet", output_path)
    if suffix == ".parquet":
        _require_pyarrow()
    # First pass: validates the file and sizes the output.
    skipped: Counter = Counter()
    count = blank = 0
    with reporting_skipped_rows():
        for _, text in iter_input_texts(input_path, text_column, skipped, bad_rows):
            count += 1
            blank += not text.strip()
        bad_rows.report(input_path)
    if count == blank:
        raise UserError("no texts in the file" + (": every text is blank" if count else ""), input_path)
    if skipped["blank line"]:
        print(f"{input_path}: skipped {skipped['blank line']:,} blank line(s) of the table")
    encoder = Encoder(model_dir, device, precision=precision, max_tokens=max_tokens, quantize=quantize)
    # The second pass meets the bad rows the first one counted: skip them again without counting.
    texts = (text for _, text in iter_input_texts(input_path, text_column, bad_rows=BadRows(bad_rows.skip)))
    with progress_bar(total=count, desc=f"embed {Path(input_path).name}", unit="text") as progress:
        vectors = (encoder.encode(chunk, batch_size, pooling, normalize, show_progress=False)
                   for chunk in in_chunks(texts, chunk_size, progress))
        write = write_npy_rows if suffix == ".npy" else _write_parquet_rows
        write_atomic(output_path, lambda tmp: write(tmp, vectors, count, encoder.dimension))
    return count


def in_chunks(items: Iterable[T], size: int, progress: Any = None) -> Iterator[list[T]]:
    """Lists of `size` consecutive items (the last one shorter); `progress` is updated as each list is done."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            if progress is not None:
                progress.update(len(chunk))
            chunk = []
    if chunk:
        yield chunk
        if progress is not None:
            progress.update(len(chunk))


def write_npy_rows(path: Path, vector_chunks: Iterable[np.ndarray], count: int, dimension: int) -> None:
    """A (count, dimension) float32 .npy at `path`, filled chunk by chunk through a memory map."""
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dimension))
    row = 0
    for vectors in vector_chunks:
        matrix[row:row + len(vectors)] = vectors
        row += len(vectors)
    matrix.flush()
    del matrix


def _write_parquet_rows(path: Path, vector_chunks: Iterable[np.ndarray], count: int, dimension: int) -> None:
    """The same rows as a parquet file of (row, embedding) records (`count` is implied by the chunks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row", pa.int64()), ("embedding", pa.list_(pa.float32(), dimension))])
    row = 0
    with pq.ParquetWriter(path, schema) as writer:
        for vectors in vector_chunks:
            values = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dimension)
            rows = pa.array(np.arange(row, row + len(vectors), dtype=np.int64))
            writer.write_table(pa.Table.from_arrays([rows, values], schema=schema))
            row += len(vectors)


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise UserError("writing .parquet needs pyarrow: pip install pyarrow (or write .npy)") from err


def text_similarity(model_dir: str | Path, text_a: str, text_b: str, pooling: str = "mean", device: str = "auto",
                    precision: str = "auto") -> float:
    """`albertkit similarity`: the cosine of two texts' embeddings (pooled as `embed` pools them)."""
    for number, text in enumerate((text_a, text_b), 1):
        if not text.strip():
            raise UserError(f"text {number} is blank")
    vectors = Encoder(model_dir, device, precision=precision).encode([text_a, text_b], pooling=pooling, normalize=True)
    return float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))
