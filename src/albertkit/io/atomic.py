"""Atomic writes: a file or folder appears complete under its name or not at all; file digests."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from albertkit.errors import UserError


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)`, fsync, then rename onto `path`: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes files private; models and reports are meant to be shared
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise UserError("disk full while writing; the previous version of the file is untouched", path) from err
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))



def fsync_folder(path: Path) -> None:
    """fsync a folder, so that a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_folder(out_dir: Path) -> Path:
    """Where `atomic_folder` builds `out_dir` before renaming it into place (other processes may write there too)."""
    return out_dir.with_name(f".{out_dir.name}.partial")


@contextmanager
def atomic_folder(out_dir: str | Path, marker: str, what: str) -> Iterator[Path]:
    """Yield an empty folder beside `out_dir` to fill; when the block ends, its files are fsynced and it takes
    `out_dir`'s place (an older `out_dir` moves aside first and is removed after), so that `out_dir` is at every
    moment complete or absent. An exception removes the new folder and leaves `out_dir` as it was.

    `out_dir` may already exist only as an empty folder or one that albertkit wrote (it holds `marker`); anything
    else is refused before any work is done, saying the folder holds no `what`.
    """
    out_dir = Path(out_dir)
    if out_dir.is_file():
        raise UserError("is a file, not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / marker).is_file():
        raise UserError(f"folder is not empty and holds no {what}: choose a new or empty folder", out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_folder(out_dir)
    shutil.rmtree(partial, ignore_errors=True)  # left behind by a run that was killed
    partial.mkdir()
    try:
        yield partial
        for path in partial.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = out_dir.with_name(f".{out_dir.name}.old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    os.replace(partial, out_dir)
    fsync_folder(out_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: Path, digest: Any = None) -> Any:
    """`digest` (a new sha256 by default) updated with the bytes of the file, read in 1 MiB blocks."""
    digest = digest if digest is not None else hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest
