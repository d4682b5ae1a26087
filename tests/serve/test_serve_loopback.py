"""The server binds loopback by default and warns when it listens elsewhere without an API key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from builders import build_model_folders

from albertkit.cli import build_parser, main
from albertkit.serve import app as serve_app


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_model_folders(tmp_path_factory.mktemp("models"))


def test_serve_listens_on_loopback_by_default(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import uvicorn

    assert build_parser().parse_args(["serve", "--model", "m"]).host == "127.0.0.1"
    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kwargs: started.append(host))
    monkeypatch.delenv("ALBERTKIT_API_KEY", raising=False)
    caplog.set_level(logging.WARNING, logger=serve_app.__name__)
    assert main(["serve", "--model", str(folders["cls"])]) == 0
    assert started == ["127.0.0.1"] and "without --api-key" not in caplog.text
    # Another address without a key is allowed, with a warning; with a key, silently.
    assert main(["serve", "--model", str(folders["cls"]), "--host", "0.0.0.0"]) == 0
    assert "serving on 0.0.0.0 without --api-key: anyone who can reach this address" in caplog.text
    caplog.clear()
    assert main(["serve", "--model", str(folders["cls"]), "--host", "0.0.0.0", "--api-key", "k"]) == 0
    assert started == ["127.0.0.1", "0.0.0.0", "0.0.0.0"] and caplog.text == ""


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert serve_app._is_loopback(host) is loopback
