"""Atomic folders: complete or absent at every moment, never replacing a folder albertkit did not write."""

import json
import os

import pytest

from albertkit.errors import UserError
from albertkit.io.atomic import atomic_folder

MARKER = "index.json"


def test_atomic_folder(tmp_path):
    out = tmp_path / "data"
    with pytest.raises(RuntimeError), atomic_folder(out, MARKER, "prepared data") as tmp:
        (tmp / "partial.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []

    with atomic_folder(out, MARKER, "prepared data") as tmp:
        (tmp / MARKER).write_text(json.dumps({"run": 1}))
    assert json.loads((out / MARKER).read_text()) == {"run": 1}
    # A failed second run leaves the first one whole; a successful one replaces it.
    with pytest.raises(RuntimeError), atomic_folder(out, MARKER, "prepared data") as tmp:
        raise RuntimeError("killed")
    assert json.loads((out / MARKER).read_text())["run"] == 1
    with atomic_folder(out, MARKER, "prepared data") as tmp:
        (tmp / MARKER).write_text(json.dumps({"run": 2}))
    assert json.loads((out / MARKER).read_text())["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and holds no prepared data"), atomic_folder(other, MARKER, "prepared data"):
        pass


def test_atomic_folder_cleans_what_a_killed_run_left(tmp_path, monkeypatch):
    out = tmp_path / "data"
    rename = os.replace

    def killed(source, target):
        raise KeyboardInterrupt  # the process dies after writing everything, before the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt), atomic_folder(out, MARKER, "prepared data") as tmp:
        (tmp / MARKER).write_text("{}")
    monkeypatch.setattr(os, "replace", rename)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.partial"]
    with atomic_folder(out, MARKER, "prepared data") as tmp:
        (tmp / MARKER).write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
