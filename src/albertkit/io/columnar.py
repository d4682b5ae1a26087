"""Rows of columnar data: parquet files, Arrow files (IPC file or stream format) and folders written by
`datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk`, read with pyarrow (the `data` extra) in record
batches, so memory stays flat whatever the size. A DatasetDict folder gives one split (`split`, default train).

Rows are numbered from 1 (as lines are), so an error names `FILE:ROW`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from albertkit.errors import UserError

COLUMNAR_SUFFIXES = (".parquet", ".arrow", ".feather")
BATCH_ROWS = 4096


def is_dataset_folder(path: str | Path) -> bool:
    """A folder `datasets` saved: a Dataset (state.json, dataset_info.json) or a DatasetDict (dataset_dict.json)."""
    path = Path(path)
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def is_columnar(path: str | Path) -> bool:
    """Whether `path` is read by this module rather than as text or a delimited table."""
    return Path(path).suffix.lower() in COLUMNAR_SUFFIXES or is_dataset_folder(path)


def _pyarrow() -> Any:
    try:
        import pyarrow  # the data extra: parquet and Arrow inputs only
        import pyarrow.ipc
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UserError("reading parquet, Arrow or datasets folders needs pyarrow: pip install 'albertkit[data]'") from None
    return pyarrow


def split_folder(path: str | Path, split: str | None = None, default: tuple[str, ...] = ("train",)) -> Path:
    """The Dataset folder of `path`: itself, or for a DatasetDict its split `split` (else the first of `default`
    it has). A missing split is a UserError listing the ones there are."""
    path = Path(path)
    index = path / "dataset_dict.json"
    if not index.is_file():
        if split is not None and not (path / "state.json").is_file():
            raise UserError(f"--split {split} is for datasets folders (a DatasetDict); this is a single table", path)
        return path
    splits = json.loads(index.read_text(encoding="utf-8")).get("splits", [])
    wanted = [split] if split is not None else [name for name in default if name in splits]
    if not wanted or wanted[0] not in splits:
        asked = (f"no split {split!r}" if split is not None else
                 f"a DatasetDict: choose a split with --split or give a split's folder ({path / splits[0]})"
                 if splits else "a DatasetDict without splits")
        raise UserError(f"{asked}; it has {', '.join(splits)}", path)
    return path / wanted[0]


def _arrow_files(folder: Path) -> list[Path]:
    state_path = folder / "state.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        files = [folder / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"not a readable datasets folder ({err})", state_path) from None
    if state.get("_indices_data_files"):
        raise UserError("a datasets folder with an indices mapping; save it with Dataset.flatten_indices() first",
                        folder)
    return files


def _batches_of_file(path: Path, columns: list[str] | None, batch_rows: int) -> Iterator[Any]:
    pa = _pyarrow()
    if path.suffix.lower() == ".parquet":
        yield from pa.parquet.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns)
        return
    with pa.memory_map(str(path)) as source:  # record batches are views of the mapped file
        try:
            reader = pa.ipc.open_file(source)
            batches: Any = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:  # datasets writes the stream format
            source.seek(0)
            batches = pa.ipc.open_stream(source)
        for batch in batches:
            batch = batch.select(columns) if columns is not None else batch
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)


def table_files(path: str | Path, split: str | None = None) -> list[Path]:
    """The files holding the rows of `path` (a parquet or Arrow file, or a datasets folder and split)."""
    path = Path(path)
    if is_dataset_folder(path):
        return _arrow_files(split_folder(path, split))
    if not path.is_file():
        raise UserError("no such file or folder", path)
    if split is not None:
        raise UserError(f"--split {split} is for datasets folders (a DatasetDict); this is a single table", path)
    return [path]


def column_names(path: str | Path, split: str | None = None) -> list[str]:
    """The columns of the table at `path`."""
    pa, first = _pyarrow(), table_files(path, split)[0]
    try:
        if first.suffix.lower() == ".parquet":
            return list(pa.parquet.ParquetFile(first).schema_arrow.names)
        with pa.memory_map(str(first)) as source:
            try:
                return list(pa.ipc.open_file(source).schema.names)
            except pa.ArrowInvalid:
                source.seek(0)
                return list(pa.ipc.open_stream(source).schema.names)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"not a readable {first.suffix.lstrip('.') or 'Arrow'} file ({err})", first) from None


def resolve_column(path: str | Path, column: str | int | None, split: str | None = None,
                   default: str = "text") -> str:
    """The name of `column` (a name, a 0-based index, or None for `default`) in the table at `path`; a column that
    is not there is a UserError listing the columns."""
    names = column_names(path, split)
    if isinstance(column, int) or (isinstance(column, str) and column.isdigit()):
        index = int(column)
        if index < len(names):
            return names[index]
        raise UserError(f"column {index} is out of range: the table has {len(names)} columns ({', '.join(names)})",
                        path)
    name = default if column is None else column
    if name not in names:
        raise UserError(f"no column {name!r}; the columns are {', '.join(names)}", path)
    return name


def iter_rows(path: str | Path, columns: list[str] | None = None, split: str | None = None,
              batch_rows: int = BATCH_ROWS) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, 1-based row number, {column: value}) for every row of the table at `path`, `batch_rows` rows in
    memory at a time (numbering runs on across the files of a datasets folder and names the folder)."""
    pa, path, number = _pyarrow(), Path(path), 0
    for file in table_files(path, split):
        try:
            for batch in _batches_of_file(file, columns, batch_rows):
                for row in batch.to_pylist():
                    number += 1
                    yield path, number, row
        except (pa.ArrowInvalid, OSError) as err:
            raise UserError(f"not a readable {file.suffix.lstrip('.')} file ({err})", file) from None


def iter_column_texts(path: str | Path, column: str | int | None = None, split: str | None = None,
                      default: str = "text") -> Iterator[tuple[Path, int, str]]:
    """(file, row, text) of one string column (`column`, or `default`); a null or non-string value is a UserError
    naming the row."""
    name = resolve_column(path, column, split, default)
    for where, row_number, row in iter_rows(path, [name], split):
        value = row[name]
        if not isinstance(value, str):
            raise UserError(f"column {name!r} holds {type(value).__name__ if value is not None else 'null'}, "
                            "not text", where, row_number)
        yield where, row_number, value
