"""Fine-tuning quality on real tasks: TF-IDF floor, tiny ALBERT from scratch, pretrained, pretrained + LoRA.

    python benchmarks/finetune_quality.py --pretrained-en benchmarks/out/pretrain-en/run/final \\
        --pretrained-zh benchmarks/out/pretrain-zh-wwm/run/final --minutes-per-run 2

Tasks (../shared/data): sst2 (train → test.tsv, the official GLUE dev), agnews (train → test),
chnsenticorp (train → dev), afqmc (sentence pairs, train → dev), resume_ner (train → test). Methods: (a) TF-IDF + logistic regression (word
1-2 grams for English, character 1-3 grams for Chinese; for NER the most frequent tag of each character),
(b) tiny ALBERT with random weights, (c) tiny ALBERT fine-tuned from the pretrained folder, (d) the same
with LoRA (r=8). `--extra NAME=DIR` adds a row fine-tuned from another pretrained folder (e.g. Chinese
pretrained without whole-word masking). Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TASKS = {
    "sst2": ("classification", "en", "en/sst2/train.tsv", "en/sst2/dev.tsv", "en/sst2/test.tsv"),
    "agnews": ("classification", "en", "en/agnews/train.tsv", "en/agnews/test.tsv", "en/agnews/test.tsv"),
    "chnsenticorp": ("classification", "zh", "zh/chnsenticorp/train.tsv", "zh/chnsenticorp/dev.tsv",
                     "zh/chnsenticorp/dev.tsv"),
    "afqmc": ("pair", "zh", "zh/afqmc/train.tsv", "zh/afqmc/dev.tsv", "zh/afqmc/dev.tsv"),
    "resume_ner": ("ner", "zh", "zh/ner_resume/train.char.bmes", "zh/ner_resume/dev.char.bmes",
                   "zh/ner_resume/test.char.bmes"),
}


def tfidf_baseline(name: str, task: str, lang: str, train: Path, test: Path) -> dict:
    """The floor: TF-IDF + logistic regression, or for NER the most frequent tag of each character."""
    from albertkit.tasks.metrics import compute_metrics
    from albertkit.tasks.spec import TaskSpec, read_examples, read_train_examples

    spec, train_examples = read_train_examples(TaskSpec(task), train)
    test_examples = read_examples(spec, test)
    if task == "ner":
        by_char: dict[str, Counter] = {}
        for ex in train_examples:
            for word, tag in zip(ex.words, ex.tags, strict=True):
                by_char.setdefault(word, Counter())[tag] += 1
        predicted = [[by_char[w].most_common(1)[0][0] if w in by_char else "O" for w in ex.words] for ex in test_examples]
        return compute_metrics("ner", predicted, [ex.tags for ex in test_examples])
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = (TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True) if lang == "zh"
                  else TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True))
    vectorizer.fit([ex.text for ex in train_examples] + [ex.text_pair or "" for ex in train_examples])

    def features(examples: list) -> object:
        first = vectorizer.transform([ex.text for ex in examples])
        if task != "pair":
            return first
        # Both sentences, and what they share (the elementwise product of their L2-normalised vectors).
        second = vectorizer.transform([ex.text_pair for ex in examples])
        return scipy.sparse.hstack([first, second, first.multiply(second)]).tocsr()

    classifier = LogisticRegression(C=4.0, max_iter=2000).fit(features(train_examples),
                                                               [ex.label for ex in train_examples])
    predicted = classifier.predict(features(test_examples))
    label_ids = spec.label2id
    return compute_metrics(task, np.array([label_ids[p] for p in predicted]),
                           np.array([label_ids[ex.label] for ex in test_examples]))


def albert_run(task: str, model_dir: Path, train: Path, dev: Path, test: Path, out: Path, minutes: float,
               lora: bool, lr: float) -> dict:
    from albertkit.train.finetune import run_finetuning

    flags = dict(time_budget_minutes=minutes, epochs=20.0, batch_size=32, learning_rate=lr, seed=0,
                 save_every_minutes=None, log_every=50, eval_every=200)
    if lora:
        flags.update(lora_r=8, lora_alpha=16)
    run_finetuning(task, model_dir, train, dev, out, test_path=test, **flags)
    return json.loads((out / "test_metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--pretrained-en", type=Path, default=ROOT / "benchmarks/out/pretrain-en/run/final")
    parser.add_argument("--pretrained-zh", type=Path, default=ROOT / "benchmarks/out/pretrain-zh-wwm/run/final")
    parser.add_argument("--extra", nargs="*", default=[], help="NAME=DIR: another pretrained folder to compare")
    parser.add_argument("--methods", nargs="+", default=["tfidf", "scratch", "pretrained", "lora"])
    parser.add_argument("--minutes-per-run", type=float, default=2.0, help="time budget of each ALBERT run")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/finetune_quality")
    args = parser.parse_args()

    from albertkit.modeling.folder import init_model_folder

    results = []
    for name in args.tasks:
        task, lang, train, dev, test = TASKS[name]
        train, dev, test = SHARED / train, SHARED / dev, SHARED / test
        pretrained = args.pretrained_en if lang == "en" else args.pretrained_zh
        scratch = args.out / f"scratch-{lang}"
        if "scratch" in args.methods and not (scratch / "config.json").is_file():
            # Random weights with the pretrained model's tokenizer: only pretraining differs.
            init_model_folder("tiny", pretrained, scratch, seed=0)
        runs = {"tfidf": None, "scratch": (scratch, False), "pretrained": (pretrained, False),
                "lora": (pretrained, True)}
        runs.update({extra.split("=", 1)[0]: (Path(extra.split("=", 1)[1]), False) for extra in args.extra
                     if lang in extra.split("=", 1)[0]})
        for method, run in runs.items():
            if method not in args.methods and method not in {e.split("=", 1)[0] for e in args.extra}:
                continue
            started = time.perf_counter()
            if run is None:
                metrics = tfidf_baseline(name, task, lang, train, test)
            else:
                lr = args.lr * (10 if run[1] else 1)  # adapters want a larger step
                metrics = albert_run(task, run[0], train, dev, test, args.out / f"{name}-{method}",
                                     args.minutes_per_run, run[1], lr)
            metric = "f1" if task == "ner" else "accuracy"
            results.append({"task": name, "method": method, "metric": metric, "value": metrics[metric],
                            "minutes": (time.perf_counter() - started) / 60})
            print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n| task | method | metric | value | minutes |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['task']} | {r['method']} | {r['metric']} | {r['value']:.4f} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
