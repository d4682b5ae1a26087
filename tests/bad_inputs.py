"""What the bad-input tests share: running the CLI, reading its one error line, and bytes that break readers.

Each bad input either is processed, with the skipped lines counted and printed, or stops with exit status 2 and
one stderr line naming the file (and line); never a traceback, and never an output that looks complete: after a
failure the output is absent, or the previous one is intact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import build_model_folders

from albertkit.cli import main
from albertkit.modeling.config import AlbertConfig

TEXT = ("The film is good. It was fun to watch.\nThe cast is great.\n\n"
        "A second document. It has two sentences.\n")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + np.random.default_rng(0).bytes(4096)
LATIN1 = "The film was fine.\nCaf\u00e9 cr\u00e8me was better.\n".encode("latin-1")
TEN_MB = 10_000_000
INVALID_START = "invalid UTF-8 (invalid start byte); save the file as UTF-8"
INVALID_CONTINUATION = "invalid UTF-8 (invalid continuation byte); save the file as UTF-8"
NOT_GZIP = "corrupt or truncated gzip file (Not a gzipped file (b'Th'))"


def build_bad_input_folders(root: Path) -> dict[str, Path]:
    """A 60-piece tokenizer, a classifier using it, and a model folder whose positions end at 64."""
    folders = build_model_folders(root)
    short = folders["corpus"].parent / "short-positions"
    AlbertConfig.from_preset("tiny", max_position_embeddings=64).save_pretrained(short)
    return {**folders, "tokenizer": folders["corpus"].parent / "tokenizer", "short": short}


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(code: int, err: str) -> str:
    """The one error line of a failed command (progress bars may precede it on stderr; a traceback never)."""
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("albertkit:")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    return lines[0].removeprefix("albertkit: error: ")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
