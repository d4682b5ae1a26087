"""Smaller and faster on SST-2: distillation, pruning and int8, each against the fine-tuned tiny teacher.

    flock /work/cpu.lock python benchmarks/compress.py --pretrained benchmarks/out/pretrained-tiny \
        --teacher-minutes 6 --student-minutes 4 --out benchmarks/out/compress

1. Teacher: the pretrained tiny model fine-tuned on SST-2 train (`configs/tasks/sst2.yaml`, lr 2e-4) for
   --teacher-minutes (or --teacher DIR, an earlier one).
2. Distillation: a student of 2 layers, hidden 128 (2 heads, FFN 512) distilled from the teacher, and the same
   student (same initialisation) trained on the labels alone (`--soft-weight 0`), each for --student-minutes.
3. Pruning: half the heads and half the FFN neurons of the teacher removed by importance on the dev subset,
   then a recovery fine-tune of a quarter of the teacher's fine-tuning time.
4. int8: the teacher with PyTorch dynamic quantization (`--quantize int8`), and its ONNX export, fp32 and int8, on
   onnxruntime (`--backend onnx`).

Accuracy is measured on `test.tsv` (872 sentences, GLUE dev; never seen in training or selection); models are
selected on the first --dev-rows rows of `dev.tsv`. Speed: tokens/s of albertkit's prediction path
(`run_features`, batches of 32, best of --repeats passes over test.tsv) in this process, as a ratio to the
teacher, with transformers' AlbertForSequenceClassification on the same batches for reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches
from albertkit.inference.export import export_model
from albertkit.inference.predict import evaluate_model, load_finetuned
from albertkit.inference.predictor import run_features
from albertkit.tasks.spec import featurize, read_examples
from albertkit.train.distill import run_distillation
from albertkit.train.finetune import run_finetuning
from albertkit.train.prune import prune_model_folder

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "en" / "sst2"
STUDENT = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512)


def dev_subset(rows: int, out: Path) -> Path:
    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()
    path = out / f"dev-{rows}.tsv"
    path.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return path


def tokens_per_second(model_dir: Path, quantize: str | None, repeats: int, backend: str = "torch") -> dict:
    """Best-of-`repeats` tokens/s of albertkit's prediction path over test.tsv."""
    model, tokenizer, spec = load_finetuned(model_dir, quantize, backend=backend)
    features = featurize(spec, tokenizer, read_examples(spec, SST2 / "test.tsv"))
    tokens = sum(len(f["input_ids"]) for f in features)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run_features(model, features, 32, tokenizer.pad_token_id)
        best = min(best, time.perf_counter() - started)
    return {"tokens": tokens, "tokens_per_s": tokens / best}


def transformers_tokens_per_second(model_dir: Path, repeats: int) -> float:
    import transformers

    model = transformers.AlbertForSequenceClassification.from_pretrained(model_dir).eval()
    _, tokenizer, spec = load_finetuned(model_dir)
    features = featurize(spec, tokenizer, read_examples(spec, SST2 / "test.tsv"))
    lengths = np.array([len(f["input_ids"]) for f in features])
    batches = [collate([features[i] for i in rows], tokenizer.pad_token_id)
               for rows in length_bucketed_batches(lengths, 32, shuffle=False)]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            for b in batches:
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
            best = min(best, time.perf_counter() - started)
    return int(lengths.sum()) / best


def measure(name: str, model_dir: Path, repeats: int, quantize: str | None = None, backend: str = "torch") -> dict:
    metrics = evaluate_model(model_dir, SST2 / "test.tsv", quantize=quantize, backend=backend)
    config = json.loads((model_dir / "config.json").read_text())
    row = {"model": name, "accuracy": metrics["accuracy"],
           **tokens_per_second(model_dir, quantize, repeats, backend),
           "layers": config["num_hidden_layers"], "hidden": config["hidden_size"],
           "heads": config["num_attention_heads"] - max(map(len, (config.get("pruned_heads") or {"": []}).values())),
           "ffn": config["intermediate_size"]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", type=Path, default=ROOT / "benchmarks/out/pretrained-tiny")
    parser.add_argument("--teacher", type=Path, help="an already fine-tuned teacher (skips step 1)")
    parser.add_argument("--teacher-minutes", type=float, default=6.0)
    parser.add_argument("--student-minutes", type=float, default=4.0)
    parser.add_argument("--dev-rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/compress")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    dev = dev_subset(args.dev_rows, args.out)
    common = dict(epochs=20.0, batch_size=32, seed=0, eval_every=300, log_every=100, save_every_minutes=0.0)
    started = time.perf_counter()
    teacher = args.teacher or args.out / "teacher" / "best"
    # Each step is skipped when its model is already there: a rerun only measures.
    if not (teacher / "config.json").is_file():
        run_finetuning(None, args.pretrained, SST2 / "train.tsv", dev, args.out / "teacher",
                       config_path=ROOT / "configs/tasks/sst2.yaml", time_budget_minutes=args.teacher_minutes,
                       learning_rate=2e-4, early_stopping_patience=None, **common)
    times = {"teacher_finetune_minutes": args.teacher_minutes}
    for name, soft in (("student-distilled", 0.5), ("student-labels-only", 0.0)):
        if (args.out / name / "best" / "config.json").is_file():
            continue
        run_distillation(teacher, SST2 / "train.tsv", dev, args.out / name, shape=STUDENT, soft_weight=soft,
                         temperature=2.0, learning_rate=1e-3, time_budget_minutes=args.student_minutes, **common)
    if not (args.out / "pruned" / "config.json").is_file():
        prune_model_folder(teacher, dev, args.out / "pruned", heads=0.5, ffn=0.5, recover_train=SST2 / "train.tsv",
                           time_budget_minutes=args.teacher_minutes / 4, learning_rate=1e-4,
                           **{k: v for k, v in common.items() if k != "batch_size"})
    pruning = json.loads((args.out / "pruned" / "albertkit.json").read_text())["pruning"]
    times["training_minutes"] = (time.perf_counter() - started) / 60
    if not (args.out / "teacher-onnx" / "model_quantized.onnx").is_file():
        export_model(teacher, args.out / "teacher-onnx", quantize="int8")
    rows = [measure("teacher (tiny, fine-tuned)", teacher, args.repeats),
            measure("teacher, int8 (PyTorch dynamic)", teacher, args.repeats, quantize="int8"),
            measure("teacher, ONNX fp32 (--backend onnx)", args.out / "teacher-onnx", args.repeats, backend="onnx"),
            measure("teacher, ONNX int8 (--backend onnx)", args.out / "teacher-onnx", args.repeats, quantize="int8",
                    backend="onnx"),
            measure("student 2L h128, distilled", args.out / "student-distilled" / "best", args.repeats),
            measure("student 2L h128, labels only", args.out / "student-labels-only" / "best", args.repeats),
            measure("teacher pruned (1/2 heads, 1/2 FFN) + recovery", args.out / "pruned", args.repeats),
            measure("pruned + int8", args.out / "pruned", args.repeats, quantize="int8")]
    reference = transformers_tokens_per_second(teacher, args.repeats)
    base = rows[0]
    for row in rows:
        row["speed_vs_teacher"] = row["tokens_per_s"] / base["tokens_per_s"]
        row["accuracy_change_points"] = 100 * (row["accuracy"] - base["accuracy"])
    result = {"rows": rows, "transformers_teacher_tokens_per_s": reference, "pruning": pruning, **times}
    (args.out / "compress.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ntransformers teacher: {reference:,.0f} tokens/s; albertkit teacher {base['tokens_per_s']:,.0f} "
          f"({base['tokens_per_s'] / reference:.2f}x)")
    print("\n| model | test accuracy | Δ points | tokens/s | × teacher |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['accuracy']:.4f} | {r['accuracy_change_points']:+.1f} | "
              f"{r['tokens_per_s']:,.0f} | {r['speed_vs_teacher']:.2f}× |")


if __name__ == "__main__":
    main()
