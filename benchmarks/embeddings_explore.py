"""Embeddings understood, and search over settings (issue 18): clustering AG News, tuning and seeds on SST-2.

    python benchmarks/pretrain_quality.py --minutes 5 --eval-documents 3          # -> benchmarks/out/pretrain-en
    python benchmarks/embeddings_explore.py --part cluster --finetune-minutes 3
    python benchmarks/embeddings_explore.py --part seeds --minutes-per-run 1.0
    python benchmarks/embeddings_explore.py --part tune --minutes-per-run 1.0 --trials 12

cluster: fine-tunes the pretrained tiny model on AG News train (9,000 rows; 1,000 held out as its dev file, so the
test set picks nothing), then `albertkit cluster --k 4` of the 7,600 test texts with its embeddings (mean and pooler
pooling), beside the pretrained-only model's and TF-IDF (word 1-2-grams) + k-means; NMI / ARI / purity against the
topics; and `knn-classify` of the test texts by their 10 nearest training texts, with each model. seeds: configs/tasks/sst2.yaml's settings under seeds 0, 1, 2 (`finetune --seeds`), each with the same time
budget as a tuning trial. tune: `albertkit tune` over configs/tune/sst2.yaml's ranges with that budget per trial.
Both score dev.tsv (6,735 rows carved from GLUE train) and the best model on test.tsv (the GLUE dev set, 872).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "embeddings_explore"
SST2 = SHARED / "en" / "sst2"


def split_agnews(out: Path, held_out: int = 1000) -> tuple[Path, Path]:
    """AG News train split into train and a held-out dev file (seeded), so that the test set selects nothing."""
    rows = [r for r in (SHARED / "en" / "agnews" / "train.tsv").read_text(encoding="utf-8").splitlines() if r.strip()]
    random.Random(0).shuffle(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.tsv").write_text("\n".join(rows[held_out:]) + "\n", encoding="utf-8")
    (out / "dev.tsv").write_text("\n".join(rows[:held_out]) + "\n", encoding="utf-8")
    return out / "train.tsv", out / "dev.tsv"


def tfidf_kmeans(test: Path, k: int = 4) -> dict:
    """The floor: TF-IDF of word 1-2-grams (English stop words out), unit rows, k-means with k clusters."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    from albertkit.inference.cluster import label_agreement
    from albertkit.inference.embed import read_text_rows

    rows = read_text_rows(test, 0, 1)
    features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english").fit_transform(
        [text for _, text, _ in rows])
    assignment = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(features)
    return {"texts": len(rows), **label_agreement(assignment, [label for _, _, label in rows])}


def cluster_part(pretrained: Path, minutes: float, lr: float) -> dict:
    from albertkit.inference.cluster import cluster_file
    from albertkit.inference.predict import evaluate_model
    from albertkit.train.finetune import run_finetuning

    test = SHARED / "en" / "agnews" / "test.tsv"
    train, dev = split_agnews(OUT / "agnews-data")
    started = time.perf_counter()
    result = run_finetuning(None, pretrained, train, dev, OUT / "agnews-run", config_path=ROOT / "configs" / "tasks" /
                            "agnews.yaml", time_budget_minutes=minutes, learning_rate=lr, eval_every=200,
                            save_every_minutes=0)
    finetuned = OUT / "agnews-run" / "best"
    rows = {"tfidf + k-means": tfidf_kmeans(test)}
    for name, model, pooling in (("fine-tuned, mean", finetuned, "mean"), ("fine-tuned, pooler", finetuned, "pooler"),
                                 ("pretrained only, mean", pretrained, "mean")):
        metrics = cluster_file(model, test, OUT / f"clusters-{name.replace(' ', '').replace(',', '-')}", k=4,
                               text_column=0, label_column=1, pooling=pooling)
        rows[name] = {key: metrics[key] for key in ("texts", "nmi", "ari", "purity", "silhouette")}
    test_accuracy = evaluate_model(finetuned, test)["accuracy"]
    knn = {name: neighbour_accuracy(model, train, test, OUT / f"index-{key}")
           for name, model, key in (("fine-tuned, mean", finetuned, "finetuned"),
                                    ("pretrained only, mean", pretrained, "pretrained"))}
    return {"finetune_steps": result.steps, "finetune_best_dev_accuracy": result.best_metric,
            "finetune_test_accuracy": test_accuracy, "rows": rows, "knn": knn,
            "minutes": (time.perf_counter() - started) / 60}


def neighbour_accuracy(model: Path, train: Path, test: Path, index: Path, k: int = 10) -> dict:
    """`search build --label-column` of the training texts, then `knn-classify` of the test file (majority of 10)."""
    from albertkit.inference.neighbours import classify_by_neighbours
    from albertkit.inference.search import build_index

    build_index(model, train, index, text_column=0, label_column=1)
    result = classify_by_neighbours(index, test, k=k, text_column=0, label_column=1)
    return {key: result[key] for key in ("examples", "k", "accuracy", "macro_f1", "majority_class_accuracy")}


def seeds_part(pretrained: Path, minutes: float) -> dict:
    from albertkit.train.seeds import run_seeds

    started = time.perf_counter()
    summary = run_seeds([0, 1, 2], None, pretrained, SST2 / "train.tsv", SST2 / "dev.tsv", OUT / "sst2-seeds",
                        test_path=SST2 / "test.tsv", config_path=ROOT / "configs" / "tasks" / "sst2.yaml",
                        time_budget_minutes=minutes, eval_every=300, save_every_minutes=0)
    return {**summary, "minutes_per_run": minutes, "minutes": (time.perf_counter() - started) / 60}


def tune_part(pretrained: Path, minutes: float, trials: int) -> dict:
    from albertkit.inference.predict import evaluate_model
    from albertkit.train.tune import run_tuning

    config = yaml.safe_load((ROOT / "configs" / "tune" / "sst2.yaml").read_text(encoding="utf-8"))
    config.update(config=str(ROOT / "configs" / "tasks" / "sst2.yaml"), model=str(pretrained),
                  train=str(SST2 / "train.tsv"), dev=str(SST2 / "dev.tsv"), out=str(OUT / "sst2-tune"), trials=trials)
    config["fixed"].update(time_budget_minutes=minutes, eval_every=300)
    path = OUT / "tune-sst2.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    summary = run_tuning(path)
    best = OUT / "sst2-tune" / "trials" / f"trial-{summary['best_trial']:03d}" / "best"
    return {**summary, "best_test_accuracy": evaluate_model(best, SST2 / "test.tsv")["accuracy"],
            "minutes_per_trial": minutes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["cluster", "seeds", "tune"], required=True)
    parser.add_argument("--pretrained", type=Path, default=ROOT / "benchmarks/out/pretrain-en/run/final")
    parser.add_argument("--finetune-minutes", type=float, default=3.0, help="cluster: AG News fine-tuning budget")
    parser.add_argument("--lr", type=float, default=2e-4, help="cluster: AG News fine-tuning learning rate")
    parser.add_argument("--minutes-per-run", type=float, default=2.0, help="seeds and tune: budget of each run")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "cluster":
        result = cluster_part(args.pretrained, args.finetune_minutes, args.lr)
    elif args.part == "seeds":
        result = seeds_part(args.pretrained, args.minutes_per_run)
    else:
        result = tune_part(args.pretrained, args.minutes_per_run, args.trials)
    (OUT / f"{args.part}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
