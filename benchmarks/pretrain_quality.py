"""Pretraining quality: a tiny ALBERT pretrained for a fixed time budget, scored on held-out documents.

    python benchmarks/pretrain_quality.py                      # English: ../shared/data/en/wiki, 10 minutes
    python benchmarks/pretrain_quality.py --lang zh --whole-word-mask   # Chinese: texts of the zh sets, unlabeled

Trains a tokenizer and prepares the training text only (English: wiki.valid.tokens; Chinese: the train files),
pretrains the `tiny` preset with `pretrain run`'s defaults (configs/pretrain/tiny.yaml) for `--minutes`, then
scores the model with `albertkit pretrain evaluate` on text it never saw (English: wiki.test.tokens; Chinese: the
dev files): MLM loss and accuracy with every scored token shown as [MASK], beside the accuracy of always predicting
the most frequent token and the unigram's loss at the same positions, and SOP accuracy. The model lands in
OUT/run/final for fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def chinese_corpus(out: Path, split: str) -> Path:
    """Unlabeled text of the Chinese sets (`split` "train" or "dev"): ChnSentiCorp reviews, AFQMC sentences,
    Resume NER sentences."""
    lines: list[str] = []
    for name in (f"{split}.tsv",):
        for row in (SHARED / "zh" / "chnsenticorp" / name).read_text(encoding="utf-8").splitlines():
            text = row.rsplit("\t", 1)[0].strip()
            if text and text != "text_a":
                lines += [text, ""]  # each review its own document
    questions = []
    for name in (f"{split}.tsv",):
        for row in (SHARED / "zh" / "afqmc" / name).read_text(encoding="utf-8-sig").splitlines():
            questions += row.split("\t")[:2]
    for start in range(0, len(questions), 8):  # short questions, grouped into documents of 8
        lines += ["。".join(q.strip("？?。") for q in questions[start : start + 8]) + "。", ""]
    for name in (f"{split}.char.bmes",):
        for row in (SHARED / "zh" / "ner_resume" / name).read_text(encoding="utf-8").splitlines():
            lines += [row.split("\t")[0].replace(" ", ""), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining time budget")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--eval-documents", type=int, default=None, help="held-out documents scored (default: all)")
    parser.add_argument("--whole-word-mask", action="store_true", help="zh: jieba whole-word masking")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default: benchmarks/out/pretrain-<lang>[-wwm]")
    args = parser.parse_args()

    from albertkit.data.prepare import prepare_pretraining_data
    from albertkit.inference.pretrain_eval import evaluate_pretraining, format_scores
    from albertkit.tokenization.training import train_tokenizer
    from albertkit.train.pretrain import run_pretraining

    name = f"pretrain-{args.lang}" + ("-wwm" if args.whole_word_mask else "")
    out = Path(args.out or ROOT / "benchmarks" / "out" / name)
    if args.lang == "en":
        inputs, held_out = [SHARED / "en" / "wiki" / "wiki.valid.tokens"], [SHARED / "en" / "wiki" / "wiki.test.tokens"]
    else:
        inputs, held_out = [chinese_corpus(out / "train_zh.txt", "train")], [chinese_corpus(out / "dev_zh.txt", "dev")]
    started = time.perf_counter()
    train_tokenizer(inputs, out / "tokenizer", vocab_size=args.vocab_size, lang=args.lang)
    prepare_pretraining_data(inputs, out / "tokenizer", out / "data", max_seq_length=128, lang=args.lang,
                             valid_fraction=0.02, whole_word_mask="zh" if args.whole_word_mask else None, seed=args.seed)
    result = run_pretraining(out / "data", out / "run", config_path=ROOT / "configs" / "pretrain" / "tiny.yaml",
                             time_budget_minutes=args.minutes, seed=args.seed)
    scores = evaluate_pretraining(out / "run" / "final", held_out, max_documents=args.eval_documents)
    summary = {
        "lang": args.lang, "whole_word_mask": args.whole_word_mask, "minutes": args.minutes,
        "steps": result.steps, "tokens_per_second": round(result.tokens_per_second), "held_out": scores,
        "mlm_accuracy_over_baseline": scores["mlm_accuracy"] / max(scores["mlm_baseline_accuracy"], 1e-9),
        "total_minutes": (time.perf_counter() - started) / 60, "model": str(out / "run" / "final"),
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    print(format_scores(scores))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
