"""The one training loop: pretraining, fine-tuning and contrastive training all run through `train()`.

`train` reads as the run goes: take a step (train.engine), log, evaluate and keep the best model, plan the
schedule to the time budget, checkpoint, stop. Each of those is a small function below; what is specific to
a task lives in a `TrainingTask`. The caller writes the run's report.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from albertkit.errors import UserError
from albertkit.runtime.console import say
from albertkit.runtime.device import resolve_device
from albertkit.runtime.memory import keep_freed_memory
from albertkit.train import checkpoints as ckpt
from albertkit.train.budget import TimeBudget
from albertkit.train.engine import Distributed, StepEngine, StepOutcome, StepTask
from albertkit.train.events import RunEvents, TrainCallback, truncate_log
from albertkit.train.settings import TrainSettings
from albertkit.train.trackers import TrackerCallback, resolve_report_to

logger = logging.getLogger(__name__)


class TrainingTask(StepTask, Protocol):
    """What the loop needs from a task (pretraining, classification, NER, QA, sentence embeddings)."""

    metric_name: str | None  # the evaluation metric that picks the best model; None: no best model
    greater_is_better: bool

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def micro_batches(
        self, batch_size: int, epoch: int, step: int, rank: int, world_size: int, micro_batch_size: int
    ) -> list[dict[str, torch.Tensor]]:
        """This process's share of global step `step` of `epoch`, split into forward passes; deterministic."""
        ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]: ...

    def save_model(self, model: torch.nn.Module, directory: Path, summary: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    steps: int
    epochs_completed: float
    stopped_because: str
    final_metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float | None = None
    best_step: int | None = None
    skipped_steps: int = 0
    seconds: float = 0.0
    tokens_per_second: float = 0.0


@dataclass
class LoopState:
    """Where the run is; saved in every checkpoint and restored on resume."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_gain: int = 0
    skipped: int = 0
    consecutive_bad: int = 0
    elapsed_seconds: float = 0.0  # training time of the run's earlier processes, which the time budget counts
    budget_planned: bool = False  # whether they planned the schedule to the budget


@dataclass
class BatchShape:
    micro_batch_size: int
    steps_per_epoch: int
    total_steps: int  # the limit set by --max-steps or --epochs; a time budget may end the schedule sooner


def train(
    model: torch.nn.Module,
    task: TrainingTask,
    settings: TrainSettings,
    run_dir: str | Path,
    *,
    resume: bool = False,
    run_info: dict[str, Any] | None = None,
    callbacks: Sequence[TrainCallback] = (),
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train `model` on `task`, writing logs and checkpoints to `run_dir`, the final model to `run_dir/final`
    (and the best one on the task's metric to `run_dir/best`). `clock` times the budget and the log's rates."""
    run_dir = Path(run_dir)
    keep_freed_memory()
    world = Distributed.from_environment(resolve_device(settings.device))
    shape = batch_shape(settings, task, world)
    engine = StepEngine(model, settings, shape.total_steps, world)
    state = restore(engine, settings, shape, run_dir, world) if resume else start(settings, world)
    trackers = resolve_report_to(settings.report_to) if world.is_main else []
    callbacks = [TrackerCallback(trackers, run_dir, resume), *callbacks] if trackers else callbacks
    events = RunEvents(run_dir, world.is_main, state.step, engine.schedule.total_steps, callbacks)
    with events:  # a run that raises still ends its trackers and callbacks
        events.started(state.step, config=asdict(settings), world_size=world.world_size, device=str(world.device),
                       total_steps=shape.total_steps, steps_per_epoch=shape.steps_per_epoch, **(run_info or {}))
        budget = TimeBudget(settings.time_budget_minutes, state.elapsed_seconds, state.budget_planned, clock)
        meter = Meter(clock)
        events.began(model)
        started, last_save, metrics, stopped_because = clock(), clock(), {}, None
        model.train()
        while stopped_because is None and state.step < engine.schedule.total_steps:
            epoch, index = divmod(state.step, shape.steps_per_epoch)
            batches = task.micro_batches(settings.batch_size, epoch, index, world.rank, world.world_size,
                                         shape.micro_batch_size)
            outcome = engine.step(task, batches)
            state.step += 1
            count_bad_step(outcome, state, settings, run_dir, events)
            meter.add(outcome)
            budget.observe(state.step)
            events.stepped()
            end = engine.schedule.total_steps
            if state.step % settings.log_every == 0 or state.step == end:
                events.trained(state.step, meter.record(engine, world, state.step / shape.steps_per_epoch))
            out_of_time = budget.limited and world.any(budget.exhausted())
            evaluated = state.step % (settings.eval_every or shape.steps_per_epoch) == 0 or state.step == end or out_of_time
            if evaluated:
                metrics = evaluate_and_keep_best(engine, task, state, run_dir, events)
            if budget.plan_due(state.step, engine.schedule.warmup_steps, evaluated, engine.schedule.total_steps):
                plan_to_budget(engine, budget, settings, state.step, shape.total_steps, world, events)
            if checkpoint_due(settings, state.step, clock() - last_save):
                checkpoint(engine, state, budget, settings, run_dir, events, "periodic")
                last_save = clock()
            stopped_because = stop_reason(settings, state, out_of_time)
        if meter.pending:  # stopped between two log records: the last steps are logged too
            events.trained(state.step, meter.record(engine, world, state.step / shape.steps_per_epoch))
        events.progress.close()
        seconds = clock() - started
        result = TrainResult(
            steps=state.step, epochs_completed=state.step / shape.steps_per_epoch,
            stopped_because=stopped_because or ("time_budget" if state.step < shape.total_steps else "max_steps"),
            final_metrics=metrics, best_metric=state.best_metric, best_step=state.best_step, skipped_steps=state.skipped,
            seconds=seconds, tokens_per_second=meter.total_tokens / max(seconds, 1e-9),
        )
        finish(engine, task, state, budget, settings, result, run_dir, events)
    return result


def batch_shape(settings: TrainSettings, task: TrainingTask, world: Distributed) -> BatchShape:
    """The micro-batch size and the step counts, checked against the data and the number of processes."""
    if settings.batch_size % world.world_size:
        raise UserError(f"batch size {settings.batch_size} is not divisible by the {world.world_size} processes")
    per_process = settings.batch_size // world.world_size
    micro = settings.micro_batch_size or per_process
    if per_process % micro:
        raise UserError(f"micro batch size {micro} does not divide the per-process batch {per_process}")
    if settings.early_stopping_patience is not None and task.metric_name is None:
        raise UserError("early stopping needs a dev metric to watch, and this run has none")
    steps_per_epoch = task.steps_per_epoch(settings.batch_size)
    if steps_per_epoch < 1:
        raise UserError(f"the training data is smaller than one batch of {settings.batch_size}; lower --batch-size")
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    return BatchShape(micro, steps_per_epoch, total_steps)


def start(settings: TrainSettings, world: Distributed) -> LoopState:
    """A fresh run: each process its own dropout stream (the weights are rank 0's: DDP broadcasts them)."""
    torch.manual_seed(settings.seed + world.rank)
    return LoopState()


def restore(engine: StepEngine, settings: TrainSettings, shape: BatchShape, run_dir: Path,
            world: Distributed) -> LoopState:
    """The newest good checkpoint's weights, optimizer, schedule plan, RNG and loop state; a fresh start without one."""
    found = ckpt.latest_checkpoint(run_dir / "checkpoints")
    if found is None:
        if world.is_main:
            logger.warning("--resume: no usable checkpoint in %s; starting from scratch", run_dir / "checkpoints")
        return start(settings, world)
    weights, saved = ckpt.load_trainer_state(found)
    if weights is None:  # sharded (FSDP): read back on any number of processes, with either strategy
        engine.load_sharded(found.path / ckpt.SHARDED_FOLDER)
    elif engine.sharded:
        raise UserError("this checkpoint holds whole weights (written with --strategy ddp): resume it with "
                        "--strategy ddp", found.path)
    else:
        engine.model.load_state_dict(weights, strict=False)
        if hasattr(engine.model, "tie_weights"):
            engine.model.tie_weights()
    engine.load_state_dict(saved)
    torch.set_rng_state(saved["rng"]["torch"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    state = LoopState(**{f.name: saved[f.name] for f in dataclasses.fields(LoopState) if f.name in saved})
    if world.rank > 0:  # only rank 0's RNG is saved; the others get fresh streams of their own
        torch.manual_seed(settings.seed * 1_000_003 + world.rank * 7919 + state.step)
    if settings.time_budget_minutes is None and engine.schedule.total_steps != shape.total_steps:
        engine.schedule.replan(state.step, shape.total_steps)  # --max-steps changed: the decay follows it
    if world.is_main:
        truncate_log(run_dir, state.step)
        say(f"resuming from {found.path} (step {state.step})")
    return state


class Meter:
    """Loss and tokens between two training log records (`pending` steps), and tokens over the whole run."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.total_tokens = 0
        self._reset()

    def _reset(self) -> None:
        self.started, self.tokens, self.loss, self.steps, self.pending = self.clock(), 0, 0.0, 0, 0

    def add(self, outcome: StepOutcome) -> None:
        self.tokens += outcome.tokens
        self.pending += 1
        self.last = outcome
        if outcome.finite:
            self.loss, self.steps = self.loss + outcome.loss, self.steps + 1

    def record(self, engine: StepEngine, world: Distributed, epoch: float) -> dict[str, Any]:
        """The window's training record (reading the device loss: a host sync once per log), then a new window."""
        rate = self.tokens * world.world_size / max(self.clock() - self.started, 1e-9)
        self.total_tokens += self.tokens * world.world_size
        # Each process holds its share of the loss: the mean over processes is the global loss.
        loss = float(world.mean(self.loss)) / self.steps if self.steps else math.nan
        record = {"loss": loss, "lr": engine.learning_rate, "tokens_per_second": rate,
                  "grad_norm": float(self.last.grad_norm), "epoch": epoch}
        self._reset()
        return record


def count_bad_step(outcome: StepOutcome, state: LoopState, settings: TrainSettings, run_dir: Path,
                   events: RunEvents) -> None:
    """Count a skipped (non-finite) step; `max_bad_steps` in a row stop the run, naming the last good checkpoint."""
    if not outcome.skipped:
        state.consecutive_bad = 0
        return
    state.skipped += 1
    state.consecutive_bad += 1
    logger.warning("step %d: non-finite loss or gradient; step skipped (%d so far)", state.step, state.skipped)
    events.write("skipped", state.step, reason="non-finite loss or gradient", consecutive=state.consecutive_bad)
    if state.consecutive_bad >= settings.max_bad_steps:
        events.close()
        last = ckpt.latest_checkpoint(run_dir / "checkpoints", verify=False)
        kept = f"; the last good checkpoint is {last.path}" if last else ""
        raise UserError(f"{state.consecutive_bad} consecutive steps with non-finite loss or gradients; stopping"
                        f" (lower the learning rate or check the data){kept}")


def evaluate_and_keep_best(engine: StepEngine, task: TrainingTask, state: LoopState, run_dir: Path,
                           events: RunEvents) -> dict[str, Any]:
    """Evaluate; when the task's metric improved, save the model to RUN_DIR/best, else count toward patience."""
    with engine.evaluating() as model:
        metrics = task.evaluate(model)
    events.evaluated(state.step, metrics)
    if task.metric_name is None or task.metric_name not in metrics:
        return metrics
    value, best = metrics[task.metric_name], state.best_metric
    if best is None or (value > best if task.greater_is_better else value < best):
        state.best_metric, state.best_step, state.evals_without_gain = value, state.step, 0
        with engine.whole_model() as whole:  # under FSDP every process takes part in gathering the weights
            if whole is not None:
                task.save_model(whole, run_dir / "best", {"step": state.step, **metrics})
                events.saved(state.step, run_dir / "best", "best")
    else:
        state.evals_without_gain += 1
    return metrics


def plan_to_budget(engine: StepEngine, budget: TimeBudget, settings: TrainSettings, step: int, step_limit: int,
                   world: Distributed, events: RunEvents) -> None:
    """End the schedule (and the run) where the time budget runs out at the measured pace, never past the step
    limit, with a warmup given as a share of the steps a share of these; every process follows rank 0's clock."""
    first = not budget.planned
    planned_end, seconds_per_step = budget.plan(step)
    end = world.from_main(min(planned_end, step_limit))
    changed = end != engine.schedule.total_steps
    if changed:
        engine.schedule.replan(step, end, settings.resolve_warmup(end) if settings.warmup_steps is None else None)
    if first or changed:
        events.planned(step, end, seconds_per_step, budget.seconds / 60, first, end == step_limit)


def checkpoint_due(settings: TrainSettings, step: int, seconds_since_save: float) -> bool:
    by_steps = settings.save_every is not None and step % settings.save_every == 0
    by_time = bool(settings.save_every_minutes) and seconds_since_save >= settings.save_every_minutes * 60
    return by_steps or by_time


def checkpoint(engine: StepEngine, state: LoopState, budget: TimeBudget, settings: TrainSettings, run_dir: Path,
               events: RunEvents, reason: str) -> None:
    """Save weights, optimizer, schedule, RNG and loop state atomically (main process only; under FSDP every
    process writes its shards)."""
    if not events.is_main and not engine.sharded:
        return
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    trainer_state = {**asdict(state), "elapsed_seconds": budget.spent(), "budget_planned": budget.planned,
                     **engine.state_dict(), "rng": rng}
    checkpoints = run_dir / "checkpoints"
    if engine.sharded:
        path = ckpt.save_sharded_checkpoint(checkpoints, state.step, engine.model, trainer_state, settings.keep_last,
                                            engine.save_sharded, events.is_main, torch.distributed.barrier)
    else:
        path = ckpt.save_checkpoint(checkpoints, state.step, engine.model, trainer_state, settings.keep_last)
    if events.is_main:
        events.saved(state.step, path, "checkpoint", reason)


def stop_reason(settings: TrainSettings, state: LoopState, out_of_time: bool) -> str | None:
    """Why the run stops after this step (None: it goes on); the end of the schedule is the loop's own test."""
    if out_of_time:
        return "time_budget"
    patience = settings.early_stopping_patience
    if patience is not None and state.evals_without_gain >= patience:
        return "early_stopping"
    return None


def finish(engine: StepEngine, task: TrainingTask, state: LoopState, budget: TimeBudget, settings: TrainSettings,
           result: TrainResult, run_dir: Path, events: RunEvents) -> None:
    """The last checkpoint (unless one is at this step already), RUN_DIR/final and the log's end record."""
    saved = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not saved or saved[-1].step != state.step:
        checkpoint(engine, state, budget, settings, run_dir, events, "final")
    with engine.whole_model() as whole:  # under FSDP gathered from every process onto rank 0
        if whole is not None:
            task.save_model(whole, run_dir / "final", asdict(result))
            events.saved(state.step, run_dir / "final", "final")
    if events.is_main:
        events.ended(state.step, **{k: v for k, v in asdict(result).items() if k != "final_metrics"},
                     **result.final_metrics)
    events.close()
    if engine.world.world_size > 1:
        torch.distributed.barrier()
