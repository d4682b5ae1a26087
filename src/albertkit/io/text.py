"""Lines of text from files, folders and globs: .txt (and other plain text), .jsonl with a "text" field, .gz, and
the "text" column (or the only string column) of parquet, Arrow and `datasets` folders (io/columnar.py)."""

from __future__ import annotations

import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from albertkit.errors import UserError
from albertkit.io.columnar import column_names, is_columnar, is_dataset_folder, iter_column_texts

# Suffixes picked up inside folders (optionally followed by .gz); files named explicitly are read whatever their suffix.
TEXT_SUFFIXES = (".txt", ".text", ".tokens", ".raw", ".jsonl", ".parquet")
_GLOB_CHARS = frozenset("*?[")


def resolve_text_files(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files, folders (recursively, text suffixes only) and globs into a list of files, in a stable order."""
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() or is_dataset_folder(path):  # a datasets folder is one input, as a file is
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and _is_text_file(p) and not _is_hidden(p, path)
            )
            if not found:
                raise UserError(
                    f"folder has no text files (looked for {', '.join(TEXT_SUFFIXES)}, optionally .gz)", path
                )
            files.extend(found)
        elif _GLOB_CHARS & set(str(item)):
            matched = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matched:
                raise UserError("no files match this pattern", item)
            files.extend(matched)
        else:
            raise UserError("no such file or folder", item)
    return files


def iter_text_lines(inputs: str | Path | Iterable[str | Path],
                    split: str | None = None) -> Iterator[tuple[Path, int, str]]:
    """Yield (file, 1-based line number, text) for every line of every input, blank lines included.

    Plain text files yield each line without its line break (LF, CRLF or CR) and without a UTF-8 byte order
    mark; .jsonl files yield the "text" field of each non-blank record; parquet, Arrow and datasets folders (split
    `split` of a DatasetDict) the text column of each row, streamed in batches (the row number as line number).
    Invalid UTF-8 raises a UserError naming the file and line.
    """
    for path in resolve_text_files(inputs):
        if is_columnar(path):
            yield from iter_column_texts(path, text_column(path, split), split)
        elif _strip_gz(path).suffix == ".jsonl":
            yield from _iter_jsonl(path)
        else:
            yield from _iter_plain(path)


def input_bytes(path: Path) -> int:
    """The size of an input: a file's, or the sum of a folder's files (a datasets folder)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def is_record_file(path: Path) -> bool:
    """Whether each line `iter_text_lines` yields for `path` is a whole record (a document), as in .jsonl."""
    return _strip_gz(path).suffix == ".jsonl" or is_columnar(path)


def text_column(path: Path, split: str | None = None) -> str | None:
    """The text column of a corpus table: "text", else its only column, else a UserError naming the columns."""
    names = column_names(path, split)
    if "text" in names or len(names) != 1:
        return None  # "text", or the error listing the columns
    return names[0]


def _iter_plain(path: Path) -> Iterator[tuple[Path, int, str]]:
    line_number = 0
    with _open_text(path) as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                yield path, line_number, line.rstrip("\n")
        except UnicodeDecodeError as err:
            raise UserError(
                f"invalid UTF-8 ({err.reason}); save the file as UTF-8", path, _bad_utf8_line(path)
            ) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:  # raised only by .gz files
            raise UserError(f"corrupt or truncated gzip file ({err})", path, line_number + 1) from None


def _iter_jsonl(path: Path) -> Iterator[tuple[Path, int, str]]:
    for _, line_number, line in _iter_plain(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"invalid JSON ({err.msg} at column {err.colno})", path, line_number) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserError('each JSONL line must be an object with a string "text" field', path, line_number)
        yield path, line_number, record["text"]


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig drops a leading byte order mark; newline=None turns CRLF and CR into "\n".
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline=None)
    return open(path, encoding="utf-8-sig", newline=None)


def _bad_utf8_line(path: Path) -> int | None:
    """The first line that is not valid UTF-8 (a second, slower pass that runs only after a decode error)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line_number
    return None


def _strip_gz(path: Path) -> Path:
    return path.with_suffix("") if path.suffix == ".gz" else path


def _is_text_file(path: Path) -> bool:
    return _strip_gz(path).suffix in TEXT_SUFFIXES


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
