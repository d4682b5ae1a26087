"""What ships with the package: the version everywhere the same, the Apache-2.0 LICENSE, py.typed, a changelog."""

from __future__ import annotations

import hashlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import albertkit
from albertkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    installed = importlib.metadata.version("albertkit")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out == f"albertkit {installed}\n"
    assert installed == declared == albertkit.__version__


def test_license_is_the_apache_text_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:6] == ["Apache", "License", "Version", "2.0,", "January", "2004"]
    # The standard text, byte for byte (www.apache.org/licenses/LICENSE-2.0.txt).
    assert hashlib.sha256(text.encode()).hexdigest() == APACHE_2_SHA256


def test_py_typed_ships() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["albertkit"]
    assert (Path(albertkit.__file__).parent / "py.typed").is_file()


def test_changelog_has_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and "keepachangelog.com" in text
