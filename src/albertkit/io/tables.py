"""Tables (TSV, CSV, JSONL; optionally gzipped) read row by row, and the one bad-row policy.

    bad_rows = BadRows(skip=False)                # --skip-bad-rows gives skip=True
    table = read_table("train.tsv", bad_rows)     # table.header (JSONL: the first record's keys), table.rows
    for line, cells in table.rows: ...            # streamed: (line number, cells), blank lines left out
    bad_rows.report()                             # skip=True: one SkippedRowsWarning per file, reasons and lines

A format is one function `(path, bad_rows) -> Table`, registered by suffix in `TABLE_FORMATS`. Lines split at
LF only (the CR of CRLF removed), so a stray CR or U+2028 inside a field stays in the field; a UTF-8 byte order
mark is dropped. TSV fields are split at tabs with no quote handling (stray quotes stay text); CSV follows
Python's csv quoting; JSONL holds one object per line.

The policy: a bad row (invalid UTF-8, invalid JSON, another number of columns, an unusable label) is by default a
UserError naming the file and line; with `skip=True` it is left out, counted by reason, and reported. Problems of
the whole file (missing, no rows, malformed CSV quoting, a column that does not exist) are always errors.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import sys
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albertkit.errors import UserError
from albertkit.io.columnar import COLUMNAR_SUFFIXES, column_names, is_dataset_folder, iter_rows, split_folder
from albertkit.io.text import iter_text_lines

Row = tuple[int, list[str]]  # (1-based line number, cells)
_BOM = b"\xef\xbb\xbf"
_MAX_LINES_LISTED = 5


class SkippedRowsWarning(UserWarning):
    """Some rows of an input file were skipped; the message says how many, why, and where."""


class BadRows:
    """The bad-row policy of one command: stop at the first bad row (default) or skip and count bad rows."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self._skipped: dict[str, dict[str, list[int]]] = {}

    def reject(self, path: str | Path, line: int | None, message: str, kind: str | None = None) -> None:
        """A bad row: a UserError `path:line: message`, or (skipping) counted under `kind` (default: message)."""
        if not self.skip:
            raise UserError(message, path, line)
        self._skipped.setdefault(str(path), {}).setdefault(kind or message, []).append(line or 0)

    @property
    def count(self) -> int:
        """Rows skipped so far, over every file."""
        return sum(len(lines) for reasons in self._skipped.values() for lines in reasons.values())

    def count_in(self, path: str | Path) -> int:
        """Rows of `path` skipped so far."""
        return sum(len(lines) for lines in self._skipped.get(str(path), {}).values())

    def report(self, path: str | Path, what: str = "rows") -> None:
        """One SkippedRowsWarning for `path` summarising its skipped rows by reason, with their first lines."""
        skipped = self._skipped.get(str(path))
        if not skipped:
            return
        parts = []
        for reason, lines in skipped.items():
            listed = ", ".join(str(line) for line in lines[:_MAX_LINES_LISTED])
            more = ", ..." if len(lines) > _MAX_LINES_LISTED else ""
            parts.append(f"{len(lines)} with {reason} (lines {listed}{more})")
        total = sum(len(lines) for lines in skipped.values())
        warnings.warn(SkippedRowsWarning(f"{path}: skipped {total} {what}: {'; '.join(parts)}"), stacklevel=2)

    def summary(self) -> str:
        """The end of a command's summary line: " (skipped N bad rows)", or "" when none were skipped."""
        return f" (skipped {self.count:,} bad row{'s' * (self.count != 1)})" if self.count else ""


@contextmanager
def reporting_skipped_rows() -> Iterator[None]:
    """Print every warning raised inside (skipped rows above all) as one `warning: ...` line on stderr, whatever
    the warning filters say: a skip is never silent, stdout stays machine-readable, no Python source line shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRowsWarning)
        yield
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)


@dataclass
class Table:
    """A table being read: `header` is known up front only where the format has one (JSONL's keys); TSV and CSV
    leave a header row among the rows for the caller to recognise. `blank_lines` counts the blank lines passed."""

    path: Path
    header: list[str] | None
    rows: Iterator[Row]
    blank_lines: list[int] = field(default_factory=lambda: [0])


def iter_lines(path: Path, bad_rows: BadRows) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a file (.gz: decompressed), streamed; see the module notes."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    try:
        handle = opener(path, "rb")
    except FileNotFoundError:
        raise UserError("no such file", path) from None
    except IsADirectoryError:
        raise UserError("expected a file, got a folder", path) from None
    number = 0
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad_rows.reject(path, number, f"invalid UTF-8 ({err.reason}, byte 0x{raw[err.start]:02x}); save "
                                    "the file as UTF-8", "invalid UTF-8")
                    continue
                yield number, text[:-2] if text.endswith("\r\n") else text.rstrip("\n")
        except IsADirectoryError:
            raise UserError("expected a file, got a folder", path) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:  # raised only by .gz files
            raise UserError(f"corrupt or truncated gzip file ({err})", path, number + 1) from None


def read_tsv(path: Path, bad_rows: BadRows) -> Table:
    """Cells split at every tab; no quoting."""
    table = Table(path, None, iter(()))

    def rows() -> Iterator[Row]:
        for number, line in iter_lines(path, bad_rows):
            if line.strip():
                yield number, line.split("\t")
            else:
                table.blank_lines[0] += 1

    table.rows = rows()
    return table


class _RecordLines:
    """Lines for csv.reader that remember where the record being read began."""

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self.lines = lines
        self.start: int | None = None

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        number, text = next(self.lines)
        if self.start is None:
            self.start = number
        return text + "\n"


def read_csv(path: Path, bad_rows: BadRows) -> Table:
    """Cells by Python's csv rules: quoted fields may hold commas, quotes and line breaks."""
    # A quoted field can be as long as the file; csv's default limit (128 KiB) would reject long real lines.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    table = Table(path, None, iter(()))

    def rows() -> Iterator[Row]:
        source = _RecordLines(iter_lines(path, bad_rows))
        reader = csv.reader(source)
        while True:
            source.start = None
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise UserError(f"malformed CSV ({err})", path, source.start) from None
            if any(cell.strip() for cell in cells):
                yield source.start or 0, cells
            else:
                table.blank_lines[0] += 1

    table.rows = rows()
    return table


def _json_cell(value: Any) -> str:
    if value is None:
        return ""  # a null label counts as empty
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def read_jsonl(path: Path, bad_rows: BadRows) -> Table:
    """One JSON object per line; the first object's keys are the header, and every object needs them all."""
    table = Table(path, None, iter(()))

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in iter_lines(path, bad_rows):
            if not line.strip():
                table.blank_lines[0] += 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                bad_rows.reject(path, number, f"invalid JSON ({err.msg} at column {err.colno})", "invalid JSON")
                continue
            if not isinstance(record, dict):
                bad_rows.reject(path, number, "each JSONL line must be a JSON object", "no JSON object")
                continue
            yield number, record

    found = records()
    first = next(found, None)
    if first is None:
        return table
    header = list(first[1])
    table.header = header

    def rows() -> Iterator[Row]:
        yield first[0], [_json_cell(first[1][key]) for key in header]
        for number, record in found:
            missing = [key for key in header if key not in record]
            if missing:
                bad_rows.reject(path, number, f"no {missing[0]!r} field (the first line's fields are {header})",
                                "a missing field")
                continue
            yield number, [_json_cell(record[key]) for key in header]

    table.rows = rows()
    return table


def read_columnar(path: Path, bad_rows: BadRows) -> Table:
    """Parquet, Arrow (.arrow, .feather) and `datasets` folders (io/columnar.py), a record batch at a time: the
    column names are the header and each row's values its cells, as JSONL's (null: empty; numbers, lists: JSON).
    A DatasetDict folder needs a split: its split's folder (DIR/validation), or the command's --split."""
    path = split_folder(path, None, default=())
    header = column_names(path)
    rows = ((number, [_json_cell(row[name]) for name in header]) for _, number, row in iter_rows(path))
    return Table(path, header, rows)


DATASETS_FOLDER = "(datasets folder)"  # the TABLE_FORMATS key of a folder saved by `datasets`
TABLE_FORMATS: dict[str, Callable[[Path, BadRows], Table]] = {
    ".tsv": read_tsv, ".csv": read_csv, ".jsonl": read_jsonl, ".json": read_jsonl,
    **dict.fromkeys(COLUMNAR_SUFFIXES, read_columnar), DATASETS_FOLDER: read_columnar,
}


def table_suffix(path: str | Path) -> str:
    """The suffix that names a file's format, below a .gz: "data.tsv.gz" -> ".tsv"."""
    path = Path(path)
    if is_dataset_folder(path):
        return DATASETS_FOLDER
    return (path.with_suffix("") if path.suffix.lower() == ".gz" else path).suffix.lower()


def is_table(path: str | Path) -> bool:
    """Whether the suffix names a table format (else a caller may read the file as plain text)."""
    return table_suffix(path) in TABLE_FORMATS


def read_table(path: str | Path, bad_rows: BadRows | None = None, default: str = ".tsv") -> Table:
    """The table in `path`, read by its suffix's format (`default` for other suffixes), rows streamed."""
    path = Path(path)
    reader = TABLE_FORMATS.get(table_suffix(path), TABLE_FORMATS[default])
    return reader(path, bad_rows if bad_rows is not None else BadRows())


def keep_width(path: Path, rows: Iterator[Row] | list[Row], width: int, bad_rows: BadRows,
               hint: str = "") -> Iterator[Row]:
    """The rows that have `width` cells; another count is a bad row (a stray separator shifts every column, so
    no cell of it can be trusted)."""
    for number, cells in rows:
        if len(cells) != width:
            bad_rows.reject(path, number, f"{len(cells)} columns instead of {width}{hint}",
                            f"{len(cells)} columns instead of {width}")
            continue
        yield number, cells


def separator_hint(path: Path) -> str:
    """What usually adds a column to a row of this format."""
    return {".tsv": " (a tab inside a text?)", ".csv": " (quote texts that hold commas)"}.get(table_suffix(path), "")


# --- texts of a file: one text per line of plain text, or a column of a table ---------------------------------------

# Header names taken as the text column of a table when no column is named.
TEXT_COLUMN_NAMES = ("text", "sentence", "text_a", "sentence1", "content")


@dataclass
class TextColumn:
    """Which field of each row holds the text: None (whole line / a usual name), a header name, or a 0-based index
    (negative: from the end)."""

    name: str | None = None
    index: int | None = None

    @classmethod
    def parse(cls, spec: str | int | None) -> TextColumn:
        if spec is None:
            return cls()
        if isinstance(spec, int) or str(spec).removeprefix("-").isdigit():
            return cls(index=int(spec))
        return cls(name=str(spec))


def iter_input_texts(
    path: str | Path, text_column: str | int | None = None, skipped: Counter | None = None,
    bad_rows: BadRows | None = None,
) -> Iterator[tuple[int, str]]:
    """(line number, text) of each data row of a text, .jsonl, .tsv or .csv file (optionally .gz), streamed.

    Plain text: every line is a text. A table: a column given by header name or 0-based index; without one, a
    header holding a usual name (text, sentence, text_a, ...) picks the column, else column 0 of every line
    (JSONL: the "text" field). Blank lines of a table are no rows: they are counted in `skipped`. A row with
    another number of columns than the first is a bad row (`bad_rows`' policy: by default an error).
    """
    for number, text, _ in iter_input_rows(path, text_column, None, skipped, bad_rows):
        yield number, text


def iter_input_rows(
    path: str | Path, text_column: str | int | None = None, label_column: str | int | None = None,
    skipped: Counter | None = None, bad_rows: BadRows | None = None,
) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, label) of each data row, as `iter_input_texts` reads them; the label (None without a
    `label_column`) is a column of a table given by header name or index (negative: from the end)."""
    path = Path(path)
    if not path.is_file() and not is_dataset_folder(path):
        raise UserError("no such file", path)
    column = TextColumn.parse(text_column)
    if not is_table(path):
        if column.name not in (None, "text") or column.index not in (None, 0):
            raise UserError("only tables (.tsv, .csv, .jsonl, parquet, Arrow, datasets) have text columns", path)
        if label_column is not None:
            raise UserError("only tables (.tsv, .csv, .jsonl, parquet, Arrow, datasets) have a label column", path)
        for _, number, text in iter_text_lines(path):
            yield number, text, None
        return
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    table = read_table(path, bad_rows)
    columns = [column] + ([TextColumn.parse(label_column)] if label_column is not None else [])
    for number, cells in _table_columns(table, columns, bad_rows):
        yield number, cells[0], cells[1] if len(cells) > 1 else None
    if skipped is not None:
        skipped["blank line"] += table.blank_lines[0]


def read_text_rows(path: str | Path, text_column: str | int | None = None, label_column: str | int | None = None,
                   bad_rows: BadRows | None = None) -> list[tuple[int, str, str | None]]:
    """(line, text, label) of every row whose text is not blank, in memory; with a `label_column` a blank label
    is a bad row. No text at all is a UserError."""
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    rows = []
    for line, text, label in iter_input_rows(path, text_column, label_column, bad_rows=bad_rows):
        if not text.strip():
            continue
        if label is not None and not label.strip():
            bad_rows.reject(path, line, "blank label", "a blank label")
            continue
        rows.append((line, text, label.strip() if label is not None else None))
    bad_rows.report(path)
    if not rows:
        raise UserError("no texts in the file", path)
    return rows


def _column_positions(columns: list[TextColumn], header: list[str], known_header: bool, path: Path,
                      line: int | None) -> tuple[list[int], bool]:
    """The position of each column in a row, and whether the first row is a header: it is when the format has
    one (JSONL), a column is named, or the text column is not given and the row holds a usual text column name."""
    usual = next((header.index(n) for n in TEXT_COLUMN_NAMES if n in header), None)
    text = columns[0]
    has_header = known_header or any(c.name is not None for c in columns) or (text.index is None and usual is not None)
    if known_header and text.name is None and text.index is None and usual is None:
        text = TextColumn("text")  # a JSONL record holds its text in a field with a name
    positions = []
    for kind, column in zip(("text", "label"), [text, *columns[1:]], strict=False):
        if column.name is not None:
            if column.name not in header:
                raise UserError(f"no column {column.name!r} in the header ({', '.join(header)})", path, line)
            positions.append(header.index(column.name))
            continue
        index = column.index if column.index is not None else usual if usual is not None else 0
        if not -len(header) <= index < len(header):
            raise UserError(f"no {kind} column {index}: the first row has {len(header)} columns", path, line)
        positions.append(index)
    return positions, has_header


def _table_columns(table: Table, columns: list[TextColumn], bad_rows: BadRows) -> Iterator[Row]:
    """(line number, the cells of `columns`) of each data row of a table."""
    path, rows, header, header_line = table.path, table.rows, table.header, None
    if header is None:
        first = next(rows, None)
        if first is None:
            return
        header_line, header = first
    positions, has_header = _column_positions(columns, header, table.header is not None, path, header_line)
    if table.header is None and not has_header:  # the first row is data
        rows = itertools.chain([first], rows)
    for number, cells in keep_width(path, rows, len(header), bad_rows, separator_hint(path)):
        yield number, [cells[i] for i in positions]
