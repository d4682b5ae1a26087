"""Pretraining quality: a tiny ALBERT pretrained for a fixed time budget, measured on held-out text.

    python benchmarks/pretrain_quality.py                      # English: ../shared/data/en/wiki, 10 minutes
    python benchmarks/pretrain_quality.py --lang zh --whole-word-mask   # Chinese: texts of the zh sets, unlabeled

Trains a tokenizer, prepares the corpus, pretrains the `tiny` preset with MLM + SOP for `--minutes`,
then prints held-out MLM accuracy, SOP accuracy and the baseline of always predicting the most
frequent training token at the masked positions. The model lands in OUT/run/final for fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def chinese_corpus(out: Path) -> Path:
    """Unlabeled text of the Chinese sets: ChnSentiCorp reviews, AFQMC sentences, Resume NER sentences."""
    lines: list[str] = []
    for name in ("train.tsv", "dev.tsv"):
        for row in (SHARED / "zh" / "chnsenticorp" / name).read_text(encoding="utf-8").splitlines():
            text = row.rsplit("\t", 1)[0].strip()
            if text and text != "text_a":
                lines += [text, ""]  # each review its own document
    questions = []
    for name in ("train.tsv", "dev.tsv"):
        for row in (SHARED / "zh" / "afqmc" / name).read_text(encoding="utf-8-sig").splitlines():
            questions += row.split("\t")[:2]
    for start in range(0, len(questions), 8):  # short questions, grouped into documents of 8
        lines += ["。".join(q.strip("？?。") for q in questions[start : start + 8]) + "。", ""]
    for name in ("train.char.bmes", "dev.char.bmes"):
        for row in (SHARED / "zh" / "ner_resume" / name).read_text(encoding="utf-8").splitlines():
            lines += [row.split("\t")[0].replace(" ", ""), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def most_frequent_token_accuracy(data_dir: Path, seed: int) -> tuple[float, int]:
    """Accuracy at the held-out masked positions of always predicting the most frequent training token."""
    from albertkit.data.pretraining import PretrainingData
    from albertkit.data.shards import TokenShards

    train = TokenShards(data_dir, "train")
    counts = np.bincount(np.asarray(train.token_ids), minlength=train.vocab_size)
    most_frequent = int(counts.argmax())
    valid = PretrainingData(data_dir, "valid", seed=seed)
    batch_size = min(32, valid.num_examples(0))
    correct = total = 0
    for index in range(min(20, valid.num_batches(batch_size, 0))):  # the same batches the run evaluates on
        labels = valid.batch(batch_size, 0, index)["labels"]
        masked = labels[labels != -100]
        correct += int((masked == most_frequent).sum())
        total += masked.numel()
    return correct / max(total, 1), most_frequent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining time budget")
    parser.add_argument("--max-steps", type=int, default=1000, help="schedule length (about what 10 minutes allow here)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32, help="32 learns faster in 10 minutes than 64 (more steps)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--whole-word-mask", action="store_true", help="zh: jieba whole-word masking")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default: benchmarks/out/pretrain-<lang>[-wwm]")
    args = parser.parse_args()

    from albertkit.data.prepare import prepare_pretraining_data
    from albertkit.tokenization.training import train_tokenizer
    from albertkit.train.pretrain import run_pretraining

    name = f"pretrain-{args.lang}" + ("-wwm" if args.whole_word_mask else "")
    out = Path(args.out or ROOT / "benchmarks" / "out" / name)
    if args.lang == "en":
        inputs = [SHARED / "en" / "wiki" / "wiki.valid.tokens", SHARED / "en" / "wiki" / "wiki.test.tokens"]
    else:
        inputs = [chinese_corpus(out / "corpus_zh.txt")]
    started = time.perf_counter()
    train_tokenizer(inputs, out / "tokenizer", vocab_size=args.vocab_size, lang=args.lang)
    prepare_pretraining_data(inputs, out / "tokenizer", out / "data", max_seq_length=128, lang=args.lang,
                             valid_fraction=0.02, whole_word_mask="zh" if args.whole_word_mask else None, seed=args.seed)
    baseline, token = most_frequent_token_accuracy(out / "data", args.seed)
    result = run_pretraining(
        out / "data", out / "run", preset="tiny", max_steps=args.max_steps, time_budget_minutes=args.minutes,
        batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=max(1, args.max_steps // 25),
        eval_every=200, save_every_minutes=5.0, seed=args.seed,
    )
    metrics = result.final_metrics
    summary = {
        "lang": args.lang, "whole_word_mask": args.whole_word_mask, "minutes": args.minutes,
        "steps": result.steps, "tokens_per_second": round(result.tokens_per_second),
        "mlm_accuracy": metrics.get("mlm_accuracy"), "sop_accuracy": metrics.get("sop_accuracy"),
        "mlm_loss": metrics.get("mlm_loss"), "most_frequent_token_accuracy": baseline,
        "mlm_accuracy_over_baseline": (metrics.get("mlm_accuracy") or 0) / max(baseline, 1e-9),
        "total_minutes": (time.perf_counter() - started) / 60, "model": str(out / "run" / "final"),
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
