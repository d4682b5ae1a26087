"""The Python API: the training and evaluation commands as functions that take file paths or data in memory
(lists of texts and labels, dicts of columns, pandas DataFrames, `datasets.Dataset`), the same settings classes
as the CLI (PretrainSettings, FinetuneSettings, ContrastiveSettings) and training callbacks.

In-memory data is written to JSONL under the run folder (OUT/inputs/) and read by the same readers as files, so
a run from Python and the same run from the CLI train on identical examples.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from albertkit.data.prepare import prepare_pretraining_data
from albertkit.errors import UserError
from albertkit.inference.predict import evaluate_model
from albertkit.io.atomic import write_text_atomic
from albertkit.tokenization.training import train_tokenizer
from albertkit.train.contrastive import ContrastiveSettings, train_sentence_embeddings
from albertkit.train.events import TrainCallback
from albertkit.train.finetune import FinetuneSettings, run_finetuning
from albertkit.train.loop import TrainResult
from albertkit.train.pretrain import PretrainSettings, run_pretraining
from albertkit.train.settings import TrainSettings

Data = Any  # a path, a list of texts, (texts, labels), a dict of columns, a list of dicts, a DataFrame, a Dataset


def pretrain(
    data: Data,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    continue_from: str | Path | None = None,
    settings: PretrainSettings | None = None,
    config: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    vocab_size: int = 8000,
    lang: str = "auto",
    **overrides: Any,
) -> TrainResult:
    """Pretrain an ALBERT (MLM + SOP) into `out` (the model in OUT/final), as `albertkit pretrain run`.

    `data` is a folder from `pretrain prepare`, or a corpus: text/JSONL/parquet files or folders, a list of
    documents, a DataFrame or Dataset with a "text" column. A corpus is prepared into OUT/data with `tokenizer`
    (a tokenizer folder; None: one of `vocab_size` pieces is trained into OUT/tokenizer first). `continue_from`
    continues pretraining from a model folder (the CLI's --model). Settings: a `PretrainSettings` object, or
    `config` (YAML) and keyword `overrides` (any PretrainSettings field, e.g. `max_steps=200, preset="tiny"`)."""
    out = Path(out)
    flags = _flags(PretrainSettings, settings, config, overrides)
    data_dir = _prepared(data, out, tokenizer, vocab_size, lang, flags.get("max_seq_length"))
    return run_pretraining(data_dir, out, model_dir=continue_from, tokenizer_dir=tokenizer, config_path=config,
                           resume=resume, callbacks=callbacks, **flags)


def finetune(
    model: str | Path,
    train: Data,
    dev: Data,
    out: str | Path,
    *,
    task: str | None = None,
    test: Data | None = None,
    settings: FinetuneSettings | None = None,
    config: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    **overrides: Any,
) -> TrainResult:
    """Fine-tune a task head on `model` (the best model on dev in OUT/best), as `albertkit finetune`.

    `train`, `dev` and `test` are files (TSV/CSV/JSONL, CoNLL, SQuAD JSON), or, for classification, pair and
    regression, data in memory: (texts, labels), (texts, pairs, labels), a dict of columns, a list of dicts, a
    DataFrame or a Dataset (columns: text[, text pair], label; or name them with `text_column=...`). Settings: a
    `FinetuneSettings` object, or `config` and keyword `overrides` (any FinetuneSettings field)."""
    out = Path(out)
    flags = _flags(FinetuneSettings, settings, config, overrides)
    paths = {role: _table_file(data, out / "inputs" / f"{role}.jsonl")
             for role, data in (("train", train), ("dev", dev), ("test", test)) if data is not None}
    task = task or flags.pop("task", None)
    flags.pop("task", None)
    return run_finetuning(task, model, paths["train"], paths["dev"], out,
                          test_path=paths.get("test"), config_path=config, resume=resume, callbacks=callbacks,
                          **flags)


def evaluate(model: str | Path, data: Data, *, batch_size: int = 64, output: str | Path | None = None
             ) -> dict[str, Any]:
    """The metrics of a fine-tuned model folder on labeled `data` (a file or data in memory, as for
    `finetune`), as `albertkit evaluate`; `output` also writes them as JSON."""
    with tempfile.TemporaryDirectory(prefix="albertkit-evaluate-") as scratch:
        return evaluate_model(model, _table_file(data, Path(scratch) / "data.jsonl"), output, batch_size)


def train_embeddings(
    model: str | Path,
    out: str | Path,
    *,
    sentences: Data | None = None,
    pairs: str | Path | None = None,
    eval_pairs: str | Path | None = None,
    settings: ContrastiveSettings | None = None,
    config: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainCallback] = (),
    **overrides: Any,
) -> TrainResult:
    """Contrastive sentence-embedding training (SimCSE), as `albertkit embed-train`: `sentences` (a file or a list
    of texts) unsupervised, or labeled `pairs`; the model (also a sentence-transformers model) in OUT/final."""
    out = Path(out)
    flags = _flags(ContrastiveSettings, settings, config, overrides)
    if sentences is not None and not isinstance(sentences, str | Path):
        sentences = _write_jsonl(_records(sentences, ("text",)), out / "inputs" / "sentences.jsonl")
    result, _ = train_sentence_embeddings(model, out, sentences=sentences, pairs=pairs, eval_pairs=eval_pairs,
                                          config_path=config, resume=resume, callbacks=callbacks, **flags)
    return result


def _flags(cls: type[TrainSettings], settings: TrainSettings | None, config: str | Path | None,
           overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings as the flags a command takes: every field of a settings object, or the keyword overrides."""
    if settings is None:
        return dict(overrides)
    if not isinstance(settings, cls):
        raise TypeError(f"settings must be a {cls.__name__}, not {type(settings).__name__}")
    if config is not None or overrides:
        raise TypeError("give either a settings object or config/keyword settings, not both")
    return dataclasses.asdict(settings)


def _prepared(data: Data, out: Path, tokenizer: str | Path | None, vocab_size: int, lang: str,
              max_seq_length: int | None) -> Path:
    """A prepared data folder: `data` itself, else the corpus `data` prepared into OUT/data (kept for a rerun)."""
    if isinstance(data, str | Path) and (Path(data) / "index.json").is_file():
        return Path(data)
    if (out / "data" / "index.json").is_file():
        return out / "data"  # a resumed run keeps the data it started with
    corpus = _corpus(data, out / "inputs" / "corpus.jsonl")
    if tokenizer is None:
        tokenizer = out / "tokenizer"
        train_tokenizer(corpus, tokenizer, vocab_size=vocab_size, lang=lang)
    prepare_pretraining_data(corpus, tokenizer, out / "data", max_seq_length=max_seq_length or 128, lang=lang)
    return out / "data"


def _corpus(data: Data, path: Path) -> list[str | Path]:
    """Files (as given) or in-memory documents written to `path` as JSONL (one document per record)."""
    if isinstance(data, str | Path):
        return [data]
    if isinstance(data, list | tuple) and data and all(isinstance(d, Path) for d in data):
        return list(data)
    return [_write_jsonl(_records(data, ("text",)), path)]


def _table_file(data: Data, path: Path) -> Path:
    """`data` as a file the task readers take: a path as it is, data in memory written to `path` (JSONL)."""
    if isinstance(data, str | Path):
        return Path(data)
    return _write_jsonl(_records(data, ("text", "label")), path)


def _records(data: Data, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of in-memory data as dicts: a DataFrame, a Dataset, a dict of columns, a list of dicts, a list of
    texts, or a tuple of columns (texts, labels) / (texts, pairs, labels)."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return data.to_dict("records")
    if hasattr(data, "column_names") and hasattr(data, "to_list"):  # datasets.Dataset
        return data.to_list()
    if isinstance(data, Mapping):
        return _zip_columns(list(data), list(data.values()))
    if isinstance(data, tuple):
        columns = list(names) if len(data) == len(names) else ["text", "text_pair", "label"][:len(data)]
        return _zip_columns(columns, list(data))
    rows = list(data) if isinstance(data, Iterable) else None
    if rows and all(isinstance(row, Mapping) for row in rows):
        return [dict(row) for row in rows]
    if rows and all(isinstance(row, str) for row in rows):
        return [{names[0]: row} for row in rows]
    raise UserError(f"cannot read {type(data).__name__} as data: give a path, a list of texts, (texts, labels), "
                    "a dict of columns, a list of dicts, a pandas DataFrame or a datasets.Dataset")


def _zip_columns(names: list[str], columns: list[Sequence[Any]]) -> list[dict[str, Any]]:
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise UserError(f"columns of different lengths: {', '.join(f'{n} {len(c)}' for n, c in zip(names, columns, strict=True))}")
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _write_jsonl(records: list[dict[str, Any]], path: Path) -> Path:
    if not records:
        raise UserError("no rows in the data given")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False, default=_plain) + "\n" for row in records))
    return path


def _plain(value: Any) -> Any:
    """numpy scalars (pandas cells) as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
