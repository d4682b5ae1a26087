"""`albertkit tune`: a hyperparameter search over a fine-tuning config with optuna (the `tune` extra).

A tune file names the task config, the model and data, the number of trials and a range for each tuned setting:

    config: configs/tasks/sst2.yaml     # the fine-tuning config every trial starts from
    model: runs/pretrain/final
    train: sst2/train.tsv
    dev: sst2/dev.tsv
    out: runs/tune-sst2
    trials: 12
    fixed: {time_budget_minutes: 2}     # any finetune setting, the same in every trial
    search:
      learning_rate: {low: 1e-5, high: 1e-3, log: true}
      batch_size: [16, 32, 64]          # a list: one of these
      warmup_ratio: {low: 0.0, high: 0.2}

Each trial fine-tunes into OUT/trials/trial-NNN; the n-th dev evaluation of a trial is compared with the n-th of
the earlier trials and a trial below their median is pruned. OUT gets trials.tsv (every trial), best.yaml (the best
trial's settings, usable as `finetune --config`), tune.json and tune.png.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.report.plots import plots_available, trial_chart
from albertkit.tasks.metrics import primary_metric
from albertkit.train.events import TrainCallback
from albertkit.train.finetune import FinetuneSettings, run_finetuning
from albertkit.train.settings import check_value, field_metadata, load_settings, read_yaml_config

TUNABLE = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay", "dropout", "seed")
INTEGER = ("batch_size", "seed")
TUNE_KEYS = ("config", "model", "train", "dev", "out", "trials", "timeout_minutes", "pruner", "sampler_seed",
             "fixed", "search")
PRUNERS = ("median", "none")


@dataclass
class Range:
    """Where a setting is sampled: `choices`, or a number in [low, high] (log-uniform when `log`)."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False


@dataclass
class TuneConfig:
    config: Path | None
    model: Path
    train: Path
    dev: Path
    out: Path
    trials: int = 12
    timeout_minutes: float | None = None
    pruner: str = "median"
    sampler_seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Range] = field(default_factory=dict)


def _suggestion(key: str, known: tuple[str, ...]) -> str:
    """"; did you mean 'x'?" for a near miss or a setting's flag name (lr: learning_rate), else the known names."""
    flags = {field_metadata(FinetuneSettings, name)["flag"]: name for name in known if name in TUNABLE}
    close = [flags[f"--{key.replace('_', '-')}"]] if f"--{key.replace('_', '-')}" in flags else \
        difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"


def parse_range(name: str, value: Any, path: Path, line: int | None) -> Range:
    """A search entry: a list of choices or {low, high[, log]}; each value checked as the setting checks it."""
    def checked(item: Any) -> Any:
        return check_value(FinetuneSettings, name, int(item) if name in INTEGER and isinstance(item, float) and
                           item.is_integer() else item, path, {name: line} if line else None)

    if isinstance(value, list):
        if not value:
            raise UserError(f"{name}: an empty list of choices", path, line)
        return Range(choices=[checked(v) for v in value])
    if not isinstance(value, dict) or set(value) - {"low", "high", "log"} or not {"low", "high"} <= set(value):
        raise UserError(f"{name} must be a list of choices or {{low: ..., high: ..., log: true|false}}", path, line)
    low, high = checked(value["low"]), checked(value["high"])
    if low is None or high is None or low > high:
        raise UserError(f"{name}: low {value['low']} is above high {value['high']}", path, line)
    log = bool(value.get("log", False))
    if log and low <= 0:
        raise UserError(f"{name}: a log range needs low > 0", path, line)
    return Range(low=low, high=high, log=log)


def read_tune_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """The tune file, with `overrides` (the command's flags) on top; an unknown key or tuned parameter, a bad range
    or a missing model/train/dev/out is a UserError naming the file and line."""
    path = Path(path)
    data, lines = read_yaml_config(path)
    for key in data:
        if key not in TUNE_KEYS:
            raise UserError(f"unknown tune config key {key!r}{_suggestion(key, TUNE_KEYS)}", path, lines.get(key))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    missing = [k for k in ("model", "train", "dev", "out") if not data.get(k)]
    if missing:
        raise UserError(f"no {missing[0]}: set `{missing[0]}:` in the tune config (or pass --{missing[0]})", path)
    search = data.get("search") or {}
    if not isinstance(search, dict) or not search:
        raise UserError("`search:` must map tuned settings to their ranges", path, lines.get("search"))
    ranges = {}
    for name, value in search.items():
        if name not in TUNABLE:
            raise UserError(f"unknown tune parameter {name!r}{_suggestion(name, TUNABLE)}", path,
                            lines.get(f"search.{name}"))
        ranges[name] = parse_range(name, value, path, lines.get(f"search.{name}"))
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise UserError("`fixed:` must map finetune settings to values", path, lines.get("fixed"))
    try:
        settings = load_settings(FinetuneSettings, data.get("config"), fixed)
    except TypeError as err:  # a fixed key that is no finetune setting
        raise UserError(f"fixed: {err}", path, lines.get("fixed")) from err
    if settings.task is None:
        raise UserError("no task: the fine-tuning `config:` (or `fixed:`) must set `task`", path)
    pruner = data.get("pruner", "median")
    if pruner not in PRUNERS:
        raise UserError(f"pruner must be one of {', '.join(PRUNERS)}, not {pruner!r}", path, lines.get("pruner"))
    trials = data.get("trials", 12)
    if not isinstance(trials, int) or trials < 1:
        raise UserError(f"trials must be a positive integer, not {trials!r}", path, lines.get("trials"))
    return TuneConfig(
        config=Path(data["config"]) if data.get("config") else None, model=Path(data["model"]),
        train=Path(data["train"]), dev=Path(data["dev"]), out=Path(data["out"]), trials=trials,
        timeout_minutes=data.get("timeout_minutes"), pruner=pruner, sampler_seed=int(data.get("sampler_seed", 0)),
        fixed=fixed, search=ranges,
    )


def sample(trial: Any, name: str, where: Range) -> Any:
    """One value of setting `name` for an optuna trial."""
    if where.choices is not None:
        return trial.suggest_categorical(name, where.choices)
    if name in INTEGER:
        return trial.suggest_int(name, int(where.low), int(where.high), log=where.log)
    return trial.suggest_float(name, float(where.low), float(where.high), log=where.log)


class PruneOnEvaluation(TrainCallback):
    """Reports each dev evaluation to the optuna trial (as its 1st, 2nd, ... evaluation) and stops a trial that the
    pruner finds hopeless by raising optuna.TrialPruned out of the training loop."""

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric, self.evaluations = trial, metric, 0

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        import optuna

        if self.metric not in metrics:
            return
        self.evaluations += 1
        self.trial.report(float(metrics[self.metric]), self.evaluations)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric} {metrics[self.metric]:.4f} at evaluation {self.evaluations} "
                                     f"(step {step}) is below the median of earlier trials")


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise UserError("tune needs optuna: pip install 'albertkit[tune]'") from err
    return optuna


def _objective(tune: TuneConfig, metric: str, errors: list[str]) -> Any:
    """The function optuna calls per trial: sample the settings, fine-tune, return the best dev metric. A UserError
    in a trial (a learning rate that diverges, say) fails that trial only: optuna records NaN as a failure."""

    def objective(trial: Any) -> float:
        params = {name: sample(trial, name, where) for name, where in tune.search.items()}
        started = time.monotonic()
        try:
            result = run_finetuning(None, tune.model, tune.train, tune.dev,
                                    tune.out / "trials" / f"trial-{trial.number:03d}", config_path=tune.config,
                                    callbacks=[PruneOnEvaluation(trial, metric)], **{**tune.fixed, **params})
        except UserError as err:
            errors.append(f"trial {trial.number}: {err}")
            trial.set_user_attr("error", str(err))
            return math.nan
        finally:
            trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
        trial.set_user_attr("best_step", result.best_step)
        return float(result.best_metric) if result.best_metric is not None else math.nan

    return objective


def run_tuning(config_path: str | Path, **overrides: Any) -> dict[str, Any]:
    """`albertkit tune`: run the trials of the tune file `config_path` (`overrides`: model, train, dev, out,
    trials, timeout_minutes) and write the results into its `out` folder; returns the summary (tune.json)."""
    optuna = _require_optuna()
    tune = read_tune_config(config_path, overrides)
    metric = primary_metric(load_settings(FinetuneSettings, tune.config, tune.fixed).task)
    tune.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=3) if tune.pruner == "median"
              else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="minimize" if metric == "mse" else "maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed))
    errors: list[str] = []
    started = time.monotonic()
    study.optimize(_objective(tune, metric, errors), n_trials=tune.trials,
                   timeout=tune.timeout_minutes * 60 if tune.timeout_minutes else None)
    states = optuna.trial.TrialState
    if not any(t.state == states.COMPLETE for t in study.trials):
        raise UserError("no trial finished: " + (errors[0] if errors else "every trial was pruned"), config_path)
    summary = {
        "metric": metric, "direction": study.direction.name.lower(), "best_trial": study.best_trial.number,
        "best_value": study.best_value, "best_params": study.best_params,
        "trials": {s.name.lower(): sum(t.state == s for t in study.trials)
                   for s in (states.COMPLETE, states.PRUNED, states.FAIL)},
        "minutes": round((time.monotonic() - started) / 60, 2),
    }
    write_tune_results(tune, study, summary, metric)
    return summary


def write_tune_results(tune: TuneConfig, study: Any, summary: dict[str, Any], metric: str) -> None:
    """trials.tsv, best.yaml (usable as `finetune --config`), tune.json and (with matplotlib) tune.png."""
    names = list(tune.search)
    rows = ["\t".join(["trial", "state", metric, "last_evaluation", "seconds", "best_step", *names, "error"])]
    for t in study.trials:
        cells = [t.number, t.state.name.lower(), t.value, _last_evaluation(t), t.user_attrs.get("seconds"),
                 t.user_attrs.get("best_step"), *(t.params.get(n) for n in names), t.user_attrs.get("error")]
        rows.append("\t".join("" if c is None or c != c else f"{c:.6g}" if isinstance(c, float) else str(c)
                              for c in cells))
    write_text_atomic(tune.out / "trials.tsv", "\n".join(rows) + "\n")
    best = load_settings(FinetuneSettings, tune.config, {**tune.fixed, **study.best_params})
    header = (f"# albertkit tune: trial {study.best_trial.number} of {len(study.trials)}, dev {metric} "
              f"{study.best_value:.4f}\n# albertkit finetune --config THIS_FILE --model ... --train ... --dev ...\n")
    write_text_atomic(tune.out / "best.yaml", header + yaml.safe_dump(dataclasses.asdict(best), sort_keys=False))
    write_text_atomic(tune.out / "tune.json", json.dumps(summary, indent=2) + "\n")
    if plots_available():
        shown = [(t.number, t.value if t.value is not None else _last_evaluation(t), t.state.name.lower())
                 for t in study.trials]
        shown = [point for point in shown if point[1] is not None and not math.isnan(point[1])]
        trial_chart(tune.out / "tune.png", *map(list, zip(*shown, strict=True)), metric,
                    summary["direction"] == "maximize")


def _last_evaluation(trial: Any) -> float | None:
    """The trial's last reported dev metric (where a pruned trial stopped)."""
    return trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None
