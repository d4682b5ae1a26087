"""`albertkit finetune --seeds 0,1,2`: the same fine-tuning under several seeds, their mean ± standard deviation,
and the best seed's model kept as OUT/best (ALBERT's fine-tuning is known to vary with the seed)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from albertkit.errors import UserError
from albertkit.io.atomic import atomic_folder, write_text_atomic
from albertkit.runtime.console import say
from albertkit.tasks.metrics import primary_metric
from albertkit.train.finetune import finetune_settings, run_finetuning

SEEDS_SUMMARY = "seeds.json"


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" -> [0, 1, 2]; anything else (a repeat, a non-integer) is a UserError."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise UserError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from err
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds needs distinct seeds, e.g. 0,1,2; got {text!r}")
    return seeds


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_seeds(
    seeds: list[int],
    task: str | None,
    model_dir: str | Path,
    train_path: str | Path,
    dev_path: str | Path,
    out_dir: str | Path,
    *,
    test_path: str | Path | None = None,
    config_path: str | Path | None = None,
    resume: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Fine-tune once per seed into OUT/seed-N, then write OUT/seeds.json (each seed's best dev metric and test
    metric, their mean and standard deviation) and copy the best seed's best model to OUT/best."""
    if "seed" in settings:
        raise UserError("give either --seed or --seeds, not both")
    out_dir = Path(out_dir)
    options = finetune_settings(task, config_path, settings)
    metric = primary_metric(options.task)
    runs: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        say(f"seed {seed} ({len(runs) + 1} of {len(seeds)})")
        result = run_finetuning(task, model_dir, train_path, dev_path, out_dir / f"seed-{seed}", test_path=test_path,
                                config_path=config_path, resume=resume, seed=seed, **settings)
        runs[seed] = {"dev": result.best_metric, "best_step": result.best_step}
        test_file = out_dir / f"seed-{seed}" / "test_metrics.json"
        if test_path is not None and test_file.is_file():
            runs[seed]["test"] = json.loads(test_file.read_text(encoding="utf-8")).get(metric)
    pick = max if metric != "mse" else min
    best = pick(runs, key=lambda s: runs[s]["dev"])
    summary: dict[str, Any] = {"metric": metric, "seeds": runs, "best_seed": best}
    for split in ("dev", "test"):
        values = [run[split] for run in runs.values() if run.get(split) is not None]
        if values:
            summary[f"{split}_mean"], summary[f"{split}_std"] = mean_and_std(values)
    with atomic_folder(out_dir / "best", "config.json", "model") as tmp:
        shutil.copytree(out_dir / f"seed-{best}" / "best", tmp, dirs_exist_ok=True)
    write_text_atomic(out_dir / SEEDS_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def format_seeds(summary: dict[str, Any]) -> str:
    """One line per split: "dev accuracy 0.8123 ± 0.0045 over seeds 0, 1, 2 (sample std); best seed 1"."""
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [f"{split} {summary['metric']} {summary[f'{split}_mean']:.4f} ± {summary[f'{split}_std']:.4f} over "
             f"seeds {seeds} (sample std)" for split in ("dev", "test") if f"{split}_mean" in summary]
    return "\n".join(lines) + f"\nbest seed on dev: {summary['best_seed']} (its model copied to best/)"
