"""`albertkit pretrain prepare` on generated text: MB/s and peak memory at 100 MB and 1 GB (issue 16).

    python benchmarks/prepare_speed.py                 # 100 MB and 1 GB, 2 workers; about 3 minutes on 2 cores
    python benchmarks/prepare_speed.py --sizes-mb 20   # a quick look

The corpus is generated (documents of paragraphs of sentences over a 20,000-word made-up vocabulary, blank lines
between documents) into a temporary folder; a SentencePiece tokenizer of 8,000 pieces is trained on its first
10 MB. Each prepare runs as `albertkit pretrain prepare` in its own process; a sampler reads the RSS of that process
and of its tokenizing workers every 0.1 s: the table gives the main process's peak, the largest worker's and the
peak of their sum. Prints a JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from albertkit.tokenization.training import train_tokenizer


def generate_corpus(path: Path, megabytes: int, seed: int = 0) -> int:
    """Write about `megabytes` MB of documents; returns the bytes written."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghiklmnoprstuvwy"))
    words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(20_000)]
    sentences = []
    for _ in range(50_000):  # a pool of sentences; documents draw from it (tokenizing costs the same)
        chosen = [words[i] for i in rng.zipf(1.3, rng.integers(6, 25)) % len(words)]
        sentences.append(" ".join(chosen).capitalize() + ".")
    target, written = megabytes * 10**6, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            picks = rng.integers(0, len(sentences), size=(200, 4, 5))  # 200 documents, 4 paragraphs of 5 sentences
            block = "\n\n".join("\n".join(" ".join(sentences[i] for i in paragraph) for paragraph in document)
                                for document in picks) + "\n\n"
            written += out.write(block)
    return path.stat().st_size


class RssSampler:
    """Peak RSS of a process, of its largest child and of the whole tree, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.process, self.interval = psutil.Process(pid), interval
        self.main = self.worker = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                main = self.process.memory_info().rss
                children = [c.memory_info().rss for c in self.process.children(recursive=True)]
            except psutil.Error:
                break
            self.main, self.worker = max(self.main, main), max([self.worker, *children])
            self.total = max(self.total, main + sum(children))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_prepare(corpus: Path, tokenizer: Path, out: Path, workers: int) -> dict:
    command = [sys.executable, "-m", "albertkit.cli", "pretrain", "prepare", "--input", str(corpus),
               "--tokenizer", str(tokenizer), "--out", str(out), "--workers", str(workers), "--lang", "en"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sampler = RssSampler(process.pid)
    stdout, _ = process.communicate()
    seconds = time.perf_counter() - started
    sampler.stop()
    if process.returncode != 0:
        raise SystemExit(f"prepare failed ({process.returncode}): {stdout[-2000:]}")
    index = json.loads((out / "index.json").read_text())
    tokens = sum(split["tokens"] for split in index["splits"].values())
    return {"seconds": round(seconds, 1), "tokens": tokens,
            "peak_rss_main_mib": round(sampler.main / 2**20), "peak_rss_largest_worker_mib": round(sampler.worker / 2**20),
            "peak_rss_all_processes_mib": round(sampler.total / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="where to generate (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="prepare-speed-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        sample = root / "sample.txt"
        generate_corpus(sample, 10, seed=1)
        train_tokenizer([sample], root / "tokenizer", vocab_size=8000, lang="en", max_sentences=200_000)
        for size in args.sizes_mb:
            corpus = root / f"corpus-{size}mb.txt"
            nbytes = generate_corpus(corpus, size)
            row = run_prepare(corpus, root / "tokenizer", root / f"prepared-{size}", args.workers)
            row = {"size_mb": round(nbytes / 10**6, 1), "workers": args.workers,
                   "mb_per_s": round(nbytes / 10**6 / row["seconds"], 2), **row}
            print(json.dumps(row), flush=True)
            corpus.unlink()
            shutil.rmtree(root / f"prepared-{size}")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
