"""What a command shows on the console: log messages at the chosen level, status lines and progress bars.

The CLI calls `configure` once from `--log-level`, `--quiet` and `--progress`; library code reports through
`say` (status lines), `progress_bar` (tqdm) and the `albertkit` loggers. Used as a library without `configure`,
status lines print, warnings go where Python's logging sends them and bars show when stdout is a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm import tqdm

LOG_LEVELS = ("debug", "info", "warning", "error")
_state: dict[str, Any] = {"level": logging.INFO, "progress": None}


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is at the time (pytest and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message if record.levelno == logging.INFO else f"albertkit: {record.levelname.lower()}: {message}"


def configure(level: str | None = None, quiet: bool = False, progress: bool | None = None) -> None:
    """Set what the console shows: `level` one of LOG_LEVELS (default info; `quiet` makes it error), `progress`
    True/False forces the bars on/off (None: on when stdout is a terminal and not `quiet`)."""
    if level is not None and level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    numeric = getattr(logging, (level or ("error" if quiet else "info")).upper())
    _state.update(level=numeric, progress=progress if progress is not None else (False if quiet else None))
    logger = logging.getLogger("albertkit")
    logger.setLevel(numeric)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)


def reset() -> None:
    """Back to the library defaults (the CLI calls it when a command ends; tests run many in one process)."""
    _state.update(level=logging.INFO, progress=None)
    logger = logging.getLogger("albertkit")
    logger.setLevel(logging.NOTSET)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)


def progress_enabled() -> bool:
    """Whether progress bars show: as configured, else when stdout is a terminal."""
    forced = _state["progress"]
    if forced is not None:
        return forced
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def progress_bar(iterable: Any = None, *, disable: bool = False, **options: Any) -> tqdm:
    """A tqdm bar that shows only when progress bars are enabled (and the caller does not `disable` it)."""
    return tqdm(iterable, disable=disable or not progress_enabled(), **options)


def say(line: str) -> None:
    """A status line on stdout (above any progress bar) unless the level is above info (`--quiet`)."""
    if _state["level"] <= logging.INFO:
        tqdm.write(line)
