"""Load test for `albertkit serve`: N concurrent clients x M requests against 127.0.0.1, bounded in count and time.

Starts the server itself (`--model DIR`, on a free loopback port) or uses one already running (`--url`,
loopback only). Reports requests/s, p50/p99 latency, errors, the server's forward passes and, for a server it
started, its memory (RSS) before and after. `--abuse` adds a client sending malformed, oversized, wrongly typed
and unauthorised requests, which must all be refused with 4xx while the others keep being served.

    python benchmarks/serve_load.py --model runs/sst2 --clients 32 --requests 20 --abuse
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

SENTENCES = [
    "a gripping, beautifully acted film", "the plot is thin and the jokes fall flat",
    "one of the most moving stories of the year", "i wanted my two hours back",
    "a charming, funny and surprisingly sad little movie", "tedious from start to finish",
    "the cast is wonderful but the script lets them down", "an unforgettable ending",
]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def read_sentences(path: Path | None) -> list[str]:
    """Texts to send: the first column of a .tsv (header skipped) or the lines of a text file."""
    if path is None:
        return SENTENCES
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".tsv":
        lines = [line.split("\t")[0] for line in lines[1:]]
    return [line for line in lines if line.strip()] or SENTENCES


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process from /proc (Linux), None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, api_key: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "albertkit.cli", "serve", "--model", str(args.model), "--host", "127.0.0.1",
               "--port", str(port), "--max-batch", str(args.max_batch)]
    env = {**os.environ, "ALBERTKIT_API_KEY": api_key} if api_key else dict(os.environ)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("server did not start within 120 s")


async def client(http: httpx.AsyncClient, url: str, endpoint: str, texts: list[str], requests: int,
                 per_request: int, deadline: float, seed: int, tally: Tally) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(requests):
        if time.monotonic() > deadline:
            tally.error("time limit")
            return
        batch = [texts[i] for i in rng.integers(0, len(texts), per_request)]
        started = time.perf_counter()
        try:
            response = await http.post(f"{url}/v1/{endpoint}", json={"texts": batch})
        except httpx.HTTPError as err:
            tally.error(type(err).__name__)
            continue
        if response.status_code != 200:
            tally.error(f"HTTP {response.status_code}")
        elif len(response.json().get("results", response.json().get("embeddings", []))) != per_request:
            tally.error("wrong result count")
        else:
            tally.latencies.append(time.perf_counter() - started)


async def abuser(http: httpx.AsyncClient, url: str, endpoint: str, limits: dict, deadline: float,
                 stop: asyncio.Event, refused: dict[str, int], tally: Tally) -> None:
    """Bad requests in a loop until the others finish; each must get its 4xx and never break the server."""
    body_limit = limits["max_texts"] * limits["max_chars"] * 12 + 65536  # as albertkit.serve.app computes it
    cases = [
        ("malformed JSON", dict(content=b'{"texts": ["unclosed"', headers={"content-type": "application/json"}), 422),
        ("wrong types", dict(json={"texts": [1, None]}), 422),
        ("text too long", dict(json={"texts": ["x" * (limits["max_chars"] + 1)]}), 413),
        ("too many texts", dict(json={"texts": ["x"] * (limits["max_texts"] + 1)}), 413),
        ("body too large", dict(content=b"x" * (body_limit + 1)), 413),
    ]
    if "authorization" in http.headers:
        cases.append(("wrong API key", dict(json={"texts": ["hi"]}, headers={"authorization": "Bearer wrong"}), 401))
    round_number = 0
    while not stop.is_set() and time.monotonic() < deadline:
        for name, request, expected in cases:
            if name == "body too large" and round_number % 10:
                continue  # tens of MB each: sent every tenth round only
            try:
                response = await http.post(f"{url}/v1/{endpoint}", **request)
            except httpx.HTTPError as err:
                if name == "body too large":  # the server may answer 413 and close before the upload ends
                    refused[name] = refused.get(name, 0) + 1
                else:
                    tally.error(f"abuse {name}: {type(err).__name__}")
                continue
            if response.status_code == expected:
                refused[name] = refused.get(name, 0) + 1
            else:
                tally.error(f"abuse {name}: HTTP {response.status_code}")
        round_number += 1
        await asyncio.sleep(0.05)


async def load(args: argparse.Namespace, url: str, api_key: str | None, texts: list[str]) -> dict:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=args.clients + 2, max_keepalive_connections=args.clients + 2)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=args.request_timeout) as http:
        info_before = (await http.get(f"{url}/v1/model")).json()
        deadline = time.monotonic() + args.time_limit
        tally, refused, stop = Tally(), {}, asyncio.Event()
        abuse = (asyncio.create_task(abuser(http, url, args.endpoint, info_before["limits"], deadline, stop, refused,
                                            tally)) if args.abuse else None)
        started = time.perf_counter()
        await asyncio.gather(*(client(http, url, args.endpoint, texts, args.requests, args.texts_per_request,
                                      deadline, seed, tally) for seed in range(args.clients)))
        elapsed = time.perf_counter() - started
        stop.set()
        if abuse is not None:
            await abuse
        info_after = (await http.get(f"{url}/v1/model")).json()
        healthy = (await http.get(f"{url}/healthz")).status_code == 200
    latencies = np.array(tally.latencies) * 1000
    passes = info_after["batching"][args.endpoint]["forward_passes"] - info_before["batching"][args.endpoint]["forward_passes"]
    return {
        "clients": args.clients, "requests_per_client": args.requests, "texts_per_request": args.texts_per_request,
        "endpoint": args.endpoint, "model": info_after["architecture"],
        "hidden_size": info_after["hidden_size"], "layers": info_after["num_hidden_layers"],
        "ok": len(tally.latencies), "errors": sum(tally.errors.values()), "error_kinds": tally.errors,
        "seconds": round(elapsed, 2), "requests_per_s": round(len(tally.latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "forward_passes": passes, "texts_per_forward_pass": round(len(tally.latencies) * args.texts_per_request
                                                                 / max(passes, 1), 1),
        "abuse_refused": refused if args.abuse else None, "healthy_after": healthy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", type=Path, help="model folder: start `albertkit serve` on a free loopback port")
    target.add_argument("--url", help="a running server on 127.0.0.1 / localhost")
    parser.add_argument("--api-key", help="the running server's key (--url); with --model a random key is used")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--endpoint", default="classify", choices=["classify", "embed", "ner"])
    parser.add_argument("--data", type=Path, help="texts to send (.tsv first column, or lines); default: built in")
    parser.add_argument("--max-batch", type=int, default=64, help="the started server's --max-batch")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds before clients stop")
    parser.add_argument("--request-timeout", type=float, default=60)
    parser.add_argument("--abuse", action="store_true", help="add a client sending bad requests")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1024 or not 1 <= args.requests <= 100_000:
        parser.error("--clients must be 1..1024 and --requests 1..100000")
    texts = read_sentences(args.data)
    server, api_key = None, args.api_key
    if args.model is not None:
        api_key = secrets.token_urlsafe(16) if args.abuse else None  # the abuse client then checks 401 too
        server, url = start_server(args, api_key)
    else:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--url must point at 127.0.0.1 or localhost: this tool loads only the local machine")
    try:
        rss_before = rss_mib(server.pid) if server else None
        result = asyncio.run(load(args, url, api_key, texts))
        rss_after = rss_mib(server.pid) if server else None
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    result["server_rss_mib"] = {"before": rss_before and round(rss_before, 1), "after": rss_after and round(rss_after, 1)}
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))
    print(f"\n{result['clients']} clients x {result['requests_per_client']} requests: {result['requests_per_s']} req/s, "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['errors']} errors, "
          f"{result['texts_per_forward_pass']} texts per forward pass")


if __name__ == "__main__":
    main()
