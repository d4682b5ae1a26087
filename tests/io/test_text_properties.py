"""Property test (hypothesis): the text reader yields exactly the lines of any file."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from albertkit.io.text import iter_text_lines

SETTINGS = settings(max_examples=80, deadline=None)


# Any text of a line: no line break, no surrogate (not encodable), no U+FEFF (a leading one is a byte order mark).
LINE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\ufeff"), max_size=40)
# Characters that vertical-tab, form-feed, NEL and Unicode line separators: str.splitlines breaks there, files not.
ODD_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@SETTINGS
@given(
    lines=st.lists(st.one_of(LINE, st.sampled_from(["", " ", "\t", ODD_BREAKS])), min_size=1, max_size=12),
    endings=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=12, max_size=12),
    lone_cr=st.booleans(),
    bom=st.booleans(),
    last_terminated=st.booleans(),
    gz=st.booleans(),
)
def test_reader_yields_exactly_the_lines(lines, endings, lone_cr, bom, last_terminated, gz) -> None:
    if lone_cr:  # old Mac files: every line ends in CR alone (mixing it with LF would make CR LF one break)
        endings = ["\r"] * len(endings)
    if not last_terminated:
        lines = [*lines[:-1], lines[-1] or "x"]  # an unterminated empty last line is no line at all
    text = "".join(line + ending for line, ending in zip(lines, endings, strict=False))
    if not last_terminated:
        text = text[: -len(endings[len(lines) - 1])]
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("lines.txt.gz" if gz else "lines.txt")
        path.write_bytes(gzip.compress(data) if gz else data)
        assert list(iter_text_lines(path)) == [(path, i, line) for i, line in enumerate(lines, start=1)]
