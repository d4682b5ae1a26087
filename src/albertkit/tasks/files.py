"""What the NER and QA readers share: decoding a whole file with errors that name the line; text repair."""

from __future__ import annotations

import html
import re
from pathlib import Path

from albertkit.errors import UserError

# AG News lost the "&" of numeric entities to a space ("it #39;s", "the  #36;10"); put it back before unescaping.
_BROKEN_ENTITY = re.compile(r"(?<!&) ?#(\d{2,6}|[xX][0-9a-fA-F]{2,5});")


def read_task_text(path: Path) -> str:
    """The whole file as text, without a UTF-8 byte order mark; invalid UTF-8 is a UserError at its line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError("no such file", path) from None
    except IsADirectoryError:
        raise UserError("expected a file, got a folder", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(
            f"invalid UTF-8 ({err.reason}, byte 0x{data[err.start]:02x}); save the file as UTF-8", path, line
        ) from None


def split_lines(text: str) -> list[str]:
    """Lines split at LF only, CR of CRLF removed: a stray CR or U+2028 inside a field stays in the field."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _restore_entity(match: re.Match[str]) -> str:
    code = match.group(1)
    value = int(code[1:], 16) if code[0] in "xX" else int(code)
    # Control characters are more likely "item #12;" than an entity: leave those alone.
    return f"&#{code};" if value >= 32 else match.group(0)


def repair_html(text: str) -> str:
    """Unescape HTML entities (&amp; &#39; ...), including the " #39;" form that lost its "&"."""
    if "#" in text:
        text = _BROKEN_ENTITY.sub(_restore_entity, text)
    return html.unescape(text) if "&" in text else text
