"""Pretraining race: albertkit's `pretrain run` defaults against transformers trained the way `run_mlm` does.

    python benchmarks/pretrain_race.py                 # 10 minutes each on ../shared/data/en/wiki, 2-core CPU

Both sides get the same model shape (the `tiny` preset: E128 H256 L4 A4), the same tokenizer (SentencePiece,
8,000 pieces, trained on wiki.valid.tokens), the same training text (wiki.valid.tokens) and the same wall clock.

- transformers: `AlbertForMaskedLM` as `examples/pytorch/language-modeling/run_mlm.py` trains it: every line
  tokenized with [CLS]/[SEP], concatenated and cut into 128-token blocks, `DataCollatorForLanguageModeling`
  (15%, 80/10/10), AdamW lr 1e-3 (weight decay 0, Trainer's defaults otherwise), batch 32, gradient clipping 1.0,
  linear warmup (5%) and decay. The schedule ends with the budget: planned from the pace of the first 10 steps
  and re-planned every 50 steps from the pace so far, as albertkit's budget plan is (the Trainer itself would
  need the step count in advance).
- albertkit: `pretrain run --config configs/pretrain/tiny.yaml --time-budget MINUTES` (MLM + SOP), the time of
  its corpus warm start counted (from the call to the first step).

Snapshots of each model are saved at the same training times (`--marks`) and all are scored by the same
held-out evaluator, `albertkit pretrain evaluate`, on the first `--eval-documents` documents of wiki.test.tokens:
MLM loss and accuracy with every scored word shown as [MASK] (15%), beside the most-frequent-token baseline.
It prints loss and accuracy against time for both, and the time-to-quality ratio: the transformers run's
training time over the time albertkit's run takes to reach the held-out loss transformers ends with (the first
snapshot at or below it; a snapshot is mid-schedule, so this understates albertkit).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT.parent / "shared" / "data" / "en" / "wiki"


def hf_blocks(tokenizer_dir: Path, text_file: Path, block: int = 128):
    """run_mlm's data: each line tokenized with its special tokens, all concatenated, cut into `block` tokens."""
    import torch
    import transformers

    tokenizer = transformers.AlbertTokenizer.from_pretrained(str(tokenizer_dir))
    lines = [line for line in text_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = [i for encoded in tokenizer(lines)["input_ids"] for i in encoded]
    usable = len(ids) // block * block
    return tokenizer, torch.tensor(ids[:usable]).view(-1, block)


def train_transformers(args: argparse.Namespace, out: Path) -> dict[float, Path]:
    """AlbertForMaskedLM trained run_mlm's way for `args.minutes`, saved at each mark (minutes of training)."""
    import torch
    import transformers

    from albertkit.modeling.config import AlbertConfig

    torch.manual_seed(args.seed)
    tokenizer, blocks = hf_blocks(out / "tokenizer", WIKI / "wiki.valid.tokens")
    ours = AlbertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size).to_dict()
    config = transformers.AlbertConfig(**{k: v for k, v in ours.items() if k not in ("architectures", "model_type")})
    model = transformers.AlbertForMaskedLM(config)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=0.15)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, eps=1e-8)
    plan = {"total": 10**9, "warmup": 10, "anchor": 10, "anchor_factor": 1.0}

    def lr_factor(step: int) -> float:
        if step < plan["warmup"]:
            return (step + 1) / plan["warmup"]
        # linear decay from the last re-plan's (step, factor) to zero at the planned end
        left = (plan["total"] - step) / max(1, plan["total"] - plan["anchor"])
        return max(0.0, plan["anchor_factor"] * left)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    marks, saved, step, spent = sorted(args.marks), {}, 0, 0.0
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    while marks:
        for index in torch.randperm(len(blocks), generator=generator).split(32):
            if len(index) < 32 or not marks:
                continue
            started = time.perf_counter()
            batch = collator([{"input_ids": row} for row in blocks[index].tolist()])
            loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            spent += time.perf_counter() - started
            if step == 10 or (step > plan["warmup"] and step % 50 == 0):  # re-plan to the budget, as albertkit
                plan["anchor_factor"], plan["anchor"] = (lr_factor(step), step) if step > 10 else (1.0, plan["warmup"])
                plan["total"] = step + int((args.minutes * 60 - spent) / (spent / step))
                if step == 10:
                    plan["warmup"] = plan["anchor"] = max(10, int(0.05 * plan["total"]))
                print(f"transformers: {spent / step:.2f} s/step, schedule planned for {plan['total']} steps")
            while marks and spent >= marks[0] * 60:
                mark = marks.pop(0)
                saved[mark] = save_hf_snapshot(model, tokenizer, out / "transformers" / f"t{mark:g}")
                print(f"transformers: step {step}, {spent / 60:.2f} min, loss {loss.item():.3f}")
    return saved


def save_hf_snapshot(model, tokenizer, directory: Path) -> Path:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def train_albertkit(args: argparse.Namespace, out: Path) -> tuple[dict[float, Path], float]:
    """`pretrain run` with the tiny config's defaults for `args.minutes`, saved at each mark (minutes since the
    call, so the warm start counts); returns the snapshots and the minutes before the first step."""
    from albertkit.modeling.folder import write_model_folder
    from albertkit.tokenization.loading import load_tokenizer
    from albertkit.train.events import TrainCallback
    from albertkit.train.pretrain import run_pretraining

    tokenizer = load_tokenizer(out / "tokenizer")
    started = time.perf_counter()
    saved: dict[float, Path] = {}
    marks = sorted(args.marks)
    setup: list[float] = []

    class Snapshots(TrainCallback):
        def on_model(self, model) -> None:
            self.model = model

        def on_log(self, step: int, record: dict) -> None:
            minutes = (time.perf_counter() - started) / 60
            setup or setup.append(minutes)
            while marks and minutes >= marks[0]:
                mark = marks.pop(0)
                saved[mark] = out / "albertkit" / f"t{mark:g}"
                write_model_folder(self.model, saved[mark], tokenizer, {"task": "pretraining"})
                print(f"albertkit: step {step}, {minutes:.2f} min, loss {record['loss']:.3f}")

    run_pretraining(out / "data", out / "albertkit-run", config_path=args.config,
                    time_budget_minutes=args.minutes, seed=args.seed, callbacks=[Snapshots()], log_every=5)
    if marks:  # the budget ended just before the last mark: the final model stands for it
        saved[marks[-1]] = out / "albertkit-run" / "final"
    return saved, setup[0] if setup else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of each side")
    parser.add_argument("--marks", type=float, nargs="+", default=None,
                        help="minutes at which both models are saved and scored (default: 1 2 3.33 5 7.5 and the end)")
    parser.add_argument("--eval-documents", type=int, default=15, help="held-out wiki.test.tokens documents scored")
    parser.add_argument("--sides", nargs="+", choices=["transformers", "albertkit"], default=["transformers", "albertkit"])
    parser.add_argument("--config", default=str(ROOT / "configs" / "pretrain" / "tiny.yaml"),
                        help="albertkit's settings (default: the tiny config, the defaults of pretrain run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "race"))
    args = parser.parse_args()
    args.marks = args.marks or [m for m in (1, 2, args.minutes / 3, 5, 7.5) if m < args.minutes] + [args.minutes]

    from albertkit.data.prepare import prepare_pretraining_data
    from albertkit.inference.pretrain_eval import evaluate_pretraining
    from albertkit.tokenization.training import train_tokenizer

    out = Path(args.out)
    if not (out / "data" / "index.json").is_file():
        train_tokenizer([WIKI / "wiki.valid.tokens"], out / "tokenizer", vocab_size=8000, lang="en")
        prepare_pretraining_data([WIKI / "wiki.valid.tokens"], out / "tokenizer", out / "data", max_seq_length=128,
                                 valid_fraction=0.02)
    results = json.loads((out / "race.json").read_text()) if (out / "race.json").is_file() else {}
    for side in args.sides:
        shutil.rmtree(out / side, ignore_errors=True)
        if side == "transformers":
            snapshots, setup = train_transformers(args, out), 0.0
        else:
            shutil.rmtree(out / "albertkit-run", ignore_errors=True)
            snapshots, setup = train_albertkit(args, out)
        scores = {f"{mark:g}": evaluate_pretraining(path, WIKI / "wiki.test.tokens", max_documents=args.eval_documents)
                  for mark, path in sorted(snapshots.items())}
        results[side] = {"setup_minutes": setup, "scores": scores}
        (out / "race.json").write_text(json.dumps(results, indent=2))
    report(results, args.minutes)


def report(results: dict, minutes: float) -> None:
    """Loss and accuracy against time for each side, and the time-to-quality ratio."""
    for side, result in results.items():
        print(f"\n{side} (setup {result['setup_minutes']:.2f} min, counted in albertkit's times)")
        print("minutes  held-out MLM loss  accuracy  baseline  SOP")
        for mark, s in result["scores"].items():
            print(f"{float(mark):7.2f}  {s['mlm_loss']:17.3f}  {s['mlm_accuracy']:8.4f}  {s['mlm_baseline_accuracy']:8.4f}"
                  f"  {s.get('sop_accuracy', float('nan')):.3f}")
    if {"transformers", "albertkit"} <= results.keys():
        hf = results["transformers"]["scores"]
        target = hf[max(hf, key=float)]["mlm_loss"]
        reached = [float(m) for m, s in results["albertkit"]["scores"].items() if s["mlm_loss"] <= target]
        if reached:
            print(f"\nalbertkit reaches transformers' {minutes:g}-minute held-out loss {target:.3f} by {min(reached):g} min:"
                  f" time-to-quality ratio {minutes / min(reached):.2f}x")
        else:
            print(f"\nalbertkit does not reach transformers' held-out loss {target:.3f} within {minutes:g} minutes")


if __name__ == "__main__":
    main()
