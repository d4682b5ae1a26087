"""The demo page in a real headless browser (Debian's chromium, driven by playwright-core under node).

Skips cleanly without chromium, node or playwright-core (installed on demand with `npm ci` in tests/browser).
Keeps a screenshot in test-artifacts/demo.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from builders import build_served_folders

from albertkit.serve import create_app

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = ROOT / "tests" / "browser"
SCREENSHOT = ROOT / "test-artifacts" / "demo.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SENTENCE = "the acting was brilliant from start to finish ."


def _require_browser() -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to drive chromium with playwright-core")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        try:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True,
                           capture_output=True, timeout=180)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            pytest.skip(f"could not install playwright-core with npm ci: {err}")


@contextmanager
def _served(app) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, for the duration of the block."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one, already bound so nobody can take it
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _require_browser()
    return build_served_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server_url(folders: dict[str, Path]) -> Iterator[str]:
    """The demo of a classifier with a search index."""
    with _served(create_app(folders["cls"], index_dir=folders["index"])) as url:
        yield url


def _run_page(url: str, *texts: str) -> dict:
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    run = subprocess.run(["node", "demo.mjs", f"{url}/", str(SCREENSHOT), *texts], cwd=BROWSER_DIR,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_demo_page_shows_probabilities_and_neighbours(server_url: str) -> None:
    import httpx

    page = _run_page(server_url, SENTENCE)
    assert page["state"] == "done" and page["error"] == "" and page["pageErrors"] == []
    assert page["model"].startswith("AlbertForSequenceClassification · tasks: classify, embed · index of 400 texts")
    # The page shows what the API answers for the same sentence, most probable label first.
    scores = httpx.post(f"{server_url}/v1/classify", json={"texts": [SENTENCE]}).json()["results"][0]["scores"]
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    assert page["labels"] == [label for label, _ in ranked]
    assert page["probabilities"] == [f"{100 * p:.1f}%" for _, p in ranked]
    hits = httpx.post(f"{server_url}/v1/search", json={"texts": [SENTENCE], "k": 5}).json()["results"][0]
    assert page["neighbours"] == [f"{h['score']:.3f} · {h['text']}" for h in hits]
    assert all(url.startswith(server_url) for url in page["requests"])  # no CDN, no network beyond the server
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 5000


def test_demo_page_answers_a_question_about_a_context(folders: dict[str, Path]) -> None:
    import httpx

    question, context = "who is the hero ?", "the film is wonderful . our hero remains moving at times ."
    with _served(create_app(folders["qa"])) as url:
        page = _run_page(url, question, context)
        expected = httpx.post(f"{url}/v1/qa", json={"questions": [{"question": question, "context": context}]})
    result = expected.json()["results"][0]
    assert page["state"] == "done" and page["error"] == "" and page["pageErrors"] == []
    assert page["model"].startswith("AlbertForQuestionAnswering · tasks: embed, qa")
    # The context shown whole, the API's answer marked in it.
    assert page["answer"] == [result["answer"]] and page["answerParagraph"] == [context]
