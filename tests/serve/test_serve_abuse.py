"""A real `albertkit serve` on 127.0.0.1 under 32 concurrent clients while another sends bad requests.

The clients and the abuse client are those of benchmarks/serve_load.py, run here at a small, bounded size.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import secrets
import sys
from pathlib import Path
from types import ModuleType

import pytest
from builders import build_model_folders

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
CLIENTS, REQUESTS = 32, 8
ABUSE_CASES = {"malformed JSON", "wrong types", "text too long", "too many texts", "body too large", "wrong API key"}
# Resident memory a second, equal round of load and abuse may add once the first has warmed the server up.
RSS_GROWTH_MIB = 40


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_load", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_32_clients_are_served_while_bad_requests_are_refused(tmp_path: Path) -> None:
    bench = load_benchmark()
    folders = build_model_folders(tmp_path / "models")
    args = argparse.Namespace(
        model=folders["cls"], max_batch=64, clients=CLIENTS, requests=REQUESTS, texts_per_request=1,
        endpoint="classify", request_timeout=30, time_limit=30, abuse=True,
    )
    api_key = secrets.token_urlsafe(16)
    server, url = bench.start_server(args, api_key)
    try:
        rounds, rss = [], []
        for _ in range(3):
            rounds.append(asyncio.run(bench.load(args, url, api_key, bench.SENTENCES)))
            rss.append(bench.rss_mib(server.pid))
        assert server.poll() is None, "the server died"
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"server RSS after each round (MiB): {[round(r, 1) for r in rss]}; last round: {rounds[-1]}")
    for result in rounds:
        assert result["errors"] == 0, result["error_kinds"]
        assert result["ok"] == CLIENTS * REQUESTS and result["healthy_after"]
        assert set(result["abuse_refused"]) == ABUSE_CASES
        assert result["forward_passes"] < result["ok"]  # concurrent requests shared forward passes
    assert rss[2] - rss[1] < RSS_GROWTH_MIB, rss
