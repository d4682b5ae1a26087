"""`albertkit quickstart`: the whole chain on the bundled sample (or your data) in a few minutes.

tokenizer → prepare → pretrain (MLM + SOP) → fine-tune (sentiment) → evaluate → fill-mask → nearest neighbours,
each step writing into one run folder that a person can open.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.data.prepare import prepare_pretraining_data
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.inference.predict import evaluate_model
from albertkit.inference.search import build_index
from albertkit.io.tables import read_text_rows
from albertkit.samples import sample_path
from albertkit.serve.model_functions import TaskModel
from albertkit.tokenization.training import train_tokenizer
from albertkit.train.finetune import run_finetuning
from albertkit.train.pretrain import run_pretraining

# Sentences whose answers the bundled sample teaches (its phrases: "more than a hundred years", "the kitchen
# floor", "on the grass in the park").
FILL_MASK_EXAMPLES = {
    "en": ["The church is more than a [MASK] years old.", "The cat slept on the kitchen [MASK].",
           "We sat on the [MASK] in the park."],
    "zh": ["今天的[MASK]气很好。", "我们坐火[MASK]去北京。", "他在厨房里做[MASK]。"],
}
NEIGHBOUR_QUERIES = {
    "en": ["The food was wonderful.", "The service was slow and rude."],
    "zh": ["这家店的菜很好吃。", "服务太慢了，很失望。"],
}


@dataclass
class QuickstartData:
    corpus: list[Path]
    train: Path
    dev: Path
    lang: str


def locate_data(data_dir: str | Path | None, lang: str) -> QuickstartData:
    """The bundled sample, or DIR with corpus text (*.txt, *.jsonl, *.gz, or a corpus/ folder) and train/dev TSVs."""
    if data_dir is None:
        return QuickstartData([sample_path(lang, "corpus.txt")], sample_path(lang, "sentiment_train.tsv"),
                              sample_path(lang, "sentiment_dev.tsv"), lang)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError("not a folder", data_dir)
    train, dev = data_dir / "train.tsv", data_dir / "dev.tsv"
    for path in (train, dev):
        if not path.is_file():
            raise UserError(f"--data needs {path.name} (TSV: text<TAB>label) beside the corpus", data_dir)
    corpus = [p for p in sorted(data_dir.iterdir()) if p.name not in ("train.tsv", "dev.tsv")
              and (p.is_dir() or p.suffix in (".txt", ".jsonl", ".gz", ".tokens"))]
    if not corpus:
        raise UserError("--data needs corpus text (*.txt, *.jsonl, *.gz or a folder of them) beside train.tsv", data_dir)
    return QuickstartData(corpus, train, dev, lang)


def _say(step: int, text: str) -> None:
    print(f"\n[{step}/7] {text}", flush=True)


def run_quickstart(
    out_dir: str | Path = "quickstart-run", data_dir: str | Path | None = None, lang: str = "en",
    pretrain_minutes: float = 2.0, vocab_size: int | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Run the chain and return (and write to OUT/summary.json) what each step produced."""
    started = time.perf_counter()
    out = Path(out_dir)
    data = locate_data(data_dir, lang)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"data": {"corpus": [str(p) for p in data.corpus], "train": str(data.train),
                                        "dev": str(data.dev)}, "lang": lang}
    _say(1, "training a SentencePiece tokenizer")
    summary["tokenizer"] = train_sample_tokenizer(data, out, vocab_size or (1200 if data_dir is None else 8000))
    _say(2, "preparing pretraining data (sentences, SOP pairs, token shards)")
    prepared = prepare_pretraining_data(data.corpus, out / "tokenizer", out / "data", max_seq_length=128, lang=lang,
                                        valid_fraction=0.05, seed=seed)
    summary["prepared"] = {k: prepared[k] for k in ("documents", "sentences", "tokens")}
    _say(3, f"pretraining a tiny ALBERT with MLM + SOP ({pretrain_minutes:g} minutes)")
    summary["pretrain"] = pretrain_sample(out, pretrain_minutes, seed)
    _say(4, "fine-tuning it for sentiment classification")
    summary["finetune"] = finetune_sample(data, out, seed)
    _say(5, "evaluating the best model on the dev set")
    summary["evaluate"] = evaluate_model(out / "finetune" / "best", data.dev, output=out / "dev_metrics.json")
    print(json.dumps(summary["evaluate"], indent=2))
    _say(6, "fill-mask with the pretrained model")
    examples = FILL_MASK_EXAMPLES.get(lang, FILL_MASK_EXAMPLES["en"]) if data_dir is None else []
    summary["fill_mask"] = fill_masks(out / "pretrain" / "final", examples)
    _say(7, "nearest neighbours among the dev sentences (the fine-tuned model's mean-pooled vectors, centred)")
    summary["neighbours"] = nearest_neighbours(out, data.dev, "sentence" if data_dir is None else 0,
                                               NEIGHBOUR_QUERIES.get(lang, NEIGHBOUR_QUERIES["en"]))
    summary["minutes"] = round((time.perf_counter() - started) / 60, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"\ndone in {summary['minutes']} minutes. Open {out / 'pretrain' / 'report.html'} and "
          f"{out / 'finetune' / 'report.html'}; everything is in {out}/")
    return summary


def train_sample_tokenizer(data: QuickstartData, out: Path, vocab_size: int) -> dict[str, Any]:
    tokenizer = train_tokenizer(data.corpus, out / "tokenizer", vocab_size=vocab_size, lang=data.lang)
    return {"folder": str(out / "tokenizer"), "vocab_size": tokenizer.vocab_size}


def pretrain_sample(out: Path, minutes: float, seed: int) -> dict[str, Any]:
    """A tiny ALBERT pretrained for `minutes` with `pretrain run`'s defaults (the recipe of configs/pretrain/tiny.yaml);
    the learning-rate schedule is planned to end with the budget."""
    result = run_pretraining(out / "data", out / "pretrain", preset="tiny", max_steps=100_000,
                             time_budget_minutes=minutes, eval_every=100, log_every=10, save_every_minutes=None,
                             seed=seed)
    return {"steps": result.steps, "metrics": result.final_metrics, "folder": str(out / "pretrain" / "final"),
            "report": str(out / "pretrain" / "report.html")}


def finetune_sample(data: QuickstartData, out: Path, seed: int) -> dict[str, Any]:
    result = run_finetuning("classification", out / "pretrain" / "final", data.train, data.dev, out / "finetune",
                            epochs=6, batch_size=16, learning_rate=2e-4, seed=seed)
    return {"best_metric": result.best_metric, "best_step": result.best_step,
            "folder": str(out / "finetune" / "best"), "report": str(out / "finetune" / "report.html")}


def fill_masks(model_dir: Path, examples: list[str]) -> list[dict[str, Any]]:
    """The three likeliest fillers of each example's [MASK], printed and returned."""
    fills = TaskModel(model_dir).fill_mask([(text, 3) for text in examples]) if examples else []
    found = []
    for text, result in zip(examples, fills, strict=True):
        candidates = [c["token"] for c in result[0]]
        found.append({"text": text, "candidates": candidates})
        print(f"  {text}  →  {', '.join(candidates)}")
    return found


def nearest_neighbours(out: Path, dev: Path, text_column: str | int, queries: list[str],
                       k: int = 3) -> list[dict[str, Any]]:
    """The dev sentences nearest to each query under the fine-tuned model, printed and returned.

    Mean-pooled vectors centred on the dev sentences' mean: a small model's raw vectors all point one way
    (cosines of 0.99 between unrelated sentences), and what sets sentences apart is what is left after the
    common direction is taken away. An index of the same sentences is built too (`albertkit search query`)."""
    model_dir = out / "finetune" / "best"
    build_index(model_dir, dev, out / "index", text_column=text_column, pooling="mean")
    texts = [text for _, text, _ in read_text_rows(dev, text_column)]
    encoder = Encoder(model_dir)
    vectors = encoder.encode(texts, pooling="mean", normalize=False)
    centre = vectors.mean(axis=0)

    def unit(rows: np.ndarray) -> np.ndarray:
        rows = rows - centre
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    scores = unit(encoder.encode(queries, pooling="mean", normalize=False)) @ unit(vectors).T
    found = []
    for query, row in zip(queries, scores, strict=True):
        top = np.argsort(-row)[:k]
        found.append({"query": query, "hits": [{"text": texts[i], "score": float(row[i])} for i in top],
                      "lowest_score": float(row.min())})
        print(f"  {query}")
        for i in top:
            print(f"      {row[i]:.3f}  {texts[i]}")
    return found
