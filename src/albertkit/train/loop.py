"""The one training loop: pretraining and fine-tuning both run through `train()`.

It owns what every run needs: devices and precision, DDP under torchrun, gradient accumulation,
clipping, skipping non-finite steps, periodic evaluation, atomic checkpoints and exact resume,
JSONL/TensorBoard logs and a progress bar. What is task-specific lives in a `TrainingTask`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.report.render import write_report
from albertkit.report.runlog import LOG_NAME, RunLog, read_log
from albertkit.runtime.memory import keep_freed_memory
from albertkit.train import checkpoints as ckpt
from albertkit.train.optim import build_optimizer, build_schedule

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train; every field can be set from a YAML config or a CLI flag."""

    max_steps: int | None = None  # None: `epochs` full passes over the data
    epochs: float = 1.0
    time_budget_minutes: float | None = None  # stop (and save) once this much time has passed
    batch_size: int = 32  # global: summed over processes and accumulation steps
    micro_batch_size: int | None = None  # per process and forward pass; None: batch_size / world size
    optimizer: str = "adamw"
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-6
    warmup_steps: int | None = None
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    seed: int = 0
    eval_every: int | None = None  # steps; None: at the end of each epoch
    save_every: int | None = None  # steps
    save_every_minutes: float | None = 30.0
    keep_last: int = 2
    log_every: int = 10
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops

    def resolve_warmup(self, total_steps: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_ratio * total_steps)


class TrainingTask(Protocol):
    """What the loop needs from a task (pretraining, classification, NER, QA...)."""

    metric_name: str | None  # the evaluation metric that picks the best model; None: no best model
    greater_is_better: bool

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def micro_batches(
        self, batch_size: int, epoch: int, step: int, rank: int, world_size: int, micro_batch_size: int
    ) -> list[dict[str, torch.Tensor]]:
        """This process's share of global step `step` of `epoch`, split into forward passes; deterministic."""
        ...

    def count_items(self, batch: dict[str, torch.Tensor]) -> int | None:
        """Loss items (masked tokens, say) in a micro-batch, to normalise summed losses over a step; None: mean."""
        ...

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], num_items: float | None) -> Any:
        """The model's output for `batch` (with `.loss`); with `num_items`, losses summed and divided by it."""
        ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]: ...

    def save_model(self, model: torch.nn.Module, directory: Path, summary: dict[str, Any]) -> None: ...


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a single process otherwise."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32 (the CPU default: bf16 matmul is slow on most CPUs)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    choices = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in choices:
        raise UserError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision == "fp16" and device.type != "cuda":
        raise UserError("fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    return choices[precision]


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


def _move(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_log(run_dir: Path, step: int) -> None:
    """After a resume, drop log records written past the checkpoint: the curves continue without overlap."""

    kept = [r for r in read_log(run_dir) if r.get("step", 0) <= step or r.get("kind") == "start"]
    write_text_atomic(run_dir / LOG_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))


def train(
    model: torch.nn.Module,
    task: TrainingTask,
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    run_info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `model` on `task`, writing logs and checkpoints to `run_dir`, the final model to `run_dir/final`."""
    run_dir = Path(run_dir)
    keep_freed_memory()
    device = pick_device()
    dist_info = Distributed.from_environment(device)
    world = dist_info.world_size
    if config.batch_size % world:
        raise UserError(f"batch size {config.batch_size} is not divisible by the {world} processes")
    micro = config.micro_batch_size or config.batch_size // world
    if (config.batch_size // world) % micro:
        raise UserError(f"micro batch size {micro} does not divide the per-process batch {config.batch_size // world}")
    amp_dtype = autocast_dtype(config.precision, device)

    model.to(device)
    steps_per_epoch = task.steps_per_epoch(config.batch_size)
    if steps_per_epoch < 1:
        raise UserError(f"the training data is smaller than one batch of {config.batch_size}; lower --batch-size")
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    optimizer = build_optimizer(
        config.optimizer, model, lr=config.learning_rate, weight_decay=config.weight_decay, eps=config.adam_epsilon
    )
    scheduler = build_schedule(
        optimizer, warmup_steps=config.resolve_warmup(total_steps), total_steps=total_steps, kind=config.schedule
    )
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step, best_metric, best_step, evals_without_gain, skipped = 0, None, None, 0, 0
    checkpoints_dir = run_dir / "checkpoints"
    if resume:
        found = ckpt.latest_checkpoint(checkpoints_dir)
        if found is None:
            if dist_info.is_main:
                logger.warning("--resume: no usable checkpoint in %s; starting from scratch", checkpoints_dir)
        else:
            weights, state = ckpt.load_trainer_state(found)
            model.load_state_dict(weights, strict=False)
            if hasattr(model, "tie_weights"):
                model.tie_weights()
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"])
            if dist_info.rank > 0:  # only rank 0's RNG is saved; the others get fresh streams of their own
                torch.manual_seed(config.seed * 1_000_003 + dist_info.rank * 7919 + state["step"])
            step, best_metric, best_step = state["step"], state.get("best_metric"), state.get("best_step")
            evals_without_gain, skipped = state.get("evals_without_gain", 0), state.get("skipped", 0)
            if dist_info.is_main:
                _truncate_log(run_dir, step)
                tqdm.write(f"resuming from {found.path} (step {step})")
    else:
        # Each process its own dropout stream (the weights are rank 0's: DDP broadcasts them).
        torch.manual_seed(config.seed + dist_info.rank)

    train_model = model
    if config.compile:
        train_model = torch.compile(model)
    if world > 1:
        train_model = DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )

    log = RunLog(run_dir, enabled=dist_info.is_main)
    if dist_info.is_main:
        log.write("start", step, config=asdict(config), world_size=world, device=str(device),
                  total_steps=total_steps, steps_per_epoch=steps_per_epoch, **(run_info or {}))

    def save(kind: str) -> None:
        if not dist_info.is_main:
            return
        state = {
            "step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": _rng_state(), "best_metric": best_metric, "best_step": best_step,
            "evals_without_gain": evals_without_gain, "skipped": skipped,
        }
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        path = ckpt.save_checkpoint(checkpoints_dir, step, model, state, config.keep_last)
        log.write("checkpoint", step, path=str(path), reason=kind)

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad(), _autocast(device, amp_dtype):
            metrics = task.evaluate(model)
        model.train()
        if dist_info.is_main:
            log.write("eval", step, **metrics)
            shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}  # not confusion matrices
            tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        return metrics

    start_time, last_save_time = time.monotonic(), time.monotonic()
    window_tokens, window_start, window_loss, window_steps = 0, time.monotonic(), 0.0, 0
    total_tokens, consecutive_bad, stopped_because, metrics = 0, 0, "max_steps", {}
    eval_every = config.eval_every or steps_per_epoch
    model.train()
    progress = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not dist_info.is_main,
                    dynamic_ncols=True)
    while step < total_steps:
        epoch, step_in_epoch = divmod(step, steps_per_epoch)
        batches = task.micro_batches(config.batch_size, epoch, step_in_epoch, dist_info.rank, world, micro)
        counts = [task.count_items(b) for b in batches]
        num_items = None
        if counts[0] is not None:
            total = torch.tensor(float(sum(counts)), device=device)
            if world > 1:
                torch.distributed.all_reduce(total)
            # DDP averages gradients over processes: scale so the step's loss is the global sum / items.
            num_items = total / world
        step_loss = torch.zeros((), device=device)
        for i, batch in enumerate(batches):
            window_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
            batch = _move(batch, device)
            sync = i == len(batches) - 1 or world == 1
            with (train_model.no_sync() if not sync and world > 1 else contextlib.nullcontext()):
                with _autocast(device, amp_dtype):
                    output = task.loss(train_model, batch, num_items)
                loss = output.loss if num_items is not None else output.loss / len(batches)
                (scaler.scale(loss) if scaler is not None else loss).backward()
            step_loss += loss.detach()
        if scaler is not None:
            scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        finite = bool(torch.isfinite(grad_norm + step_loss))  # the step's one host sync
        if scaler is not None:
            scaler.step(optimizer)  # skips the step itself on overflow and lowers the scale
            scaler.update()
        elif finite:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not finite and scaler is None:
            skipped += 1
            consecutive_bad += 1
            logger.warning("step %d: non-finite loss or gradient; step skipped (%d so far)", step + 1, skipped)
            if dist_info.is_main:
                log.write("skipped", step + 1, reason="non-finite loss or gradient", consecutive=consecutive_bad)
            if consecutive_bad >= config.max_bad_steps:
                progress.close()
                log.close()
                last = ckpt.latest_checkpoint(checkpoints_dir, verify=False)
                kept = f"; the last good checkpoint is {last.path}" if last else ""
                raise UserError(
                    f"{consecutive_bad} consecutive steps with non-finite loss or gradients; stopping"
                    f" (lower the learning rate or check the data){kept}"
                )
        else:
            consecutive_bad = 0
        scheduler.step()
        step += 1
        window_loss = window_loss + step_loss if finite else window_loss
        window_steps += 1 if finite else 0
        progress.update(1)

        if step % config.log_every == 0 or step == total_steps:
            elapsed = time.monotonic() - window_start
            rate = window_tokens * world / max(elapsed, 1e-9)
            total_tokens += window_tokens * world
            if world > 1:  # each process holds its share of the loss: the mean over processes is the global loss
                window_loss = torch.as_tensor(window_loss, device=device, dtype=torch.float32)
                torch.distributed.all_reduce(window_loss)
                window_loss /= world
            mean_loss = float(window_loss) / window_steps if window_steps else math.nan
            if dist_info.is_main:
                log.write("train", step, loss=mean_loss, lr=scheduler.get_last_lr()[0], tokens_per_second=rate,
                          grad_norm=float(grad_norm), epoch=step / steps_per_epoch)
            progress.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{rate:,.0f}")
            window_tokens, window_start, window_loss, window_steps = 0, time.monotonic(), 0.0, 0

        out_of_time = (
            config.time_budget_minutes is not None
            and time.monotonic() - start_time >= config.time_budget_minutes * 60
        )
        if config.time_budget_minutes is not None and world > 1:
            # Every process must agree to stop at the same step.
            flag = torch.tensor(float(out_of_time), device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            out_of_time = bool(flag > 0)
        if step % eval_every == 0 or step == total_steps or out_of_time:
            metrics = evaluate()
            if task.metric_name is not None and task.metric_name in metrics:
                value = metrics[task.metric_name]
                improved = best_metric is None or (value > best_metric if task.greater_is_better else value < best_metric)
                if improved:
                    best_metric, best_step, evals_without_gain = value, step, 0
                    if dist_info.is_main:
                        task.save_model(model, run_dir / "best", {"step": step, **metrics})
                else:
                    evals_without_gain += 1
        due_by_steps = config.save_every is not None and step % config.save_every == 0
        due_by_time = (
            config.save_every_minutes is not None and time.monotonic() - last_save_time >= config.save_every_minutes * 60
        )
        if due_by_steps or due_by_time:
            save("periodic")
            last_save_time = time.monotonic()
        if out_of_time:
            stopped_because = "time_budget"
            break
        if config.early_stopping_patience is not None and evals_without_gain >= config.early_stopping_patience:
            stopped_because = "early_stopping"
            break
    progress.close()

    seconds = time.monotonic() - start_time
    result = TrainResult(
        steps=step, epochs_completed=step / steps_per_epoch, stopped_because=stopped_because,
        final_metrics=metrics, best_metric=best_metric, best_step=best_step, skipped_steps=skipped,
        seconds=seconds, tokens_per_second=total_tokens / max(seconds, 1e-9),
    )
    if dist_info.is_main:
        if not ckpt.list_checkpoints(checkpoints_dir) or ckpt.list_checkpoints(checkpoints_dir)[-1].step != step:
            save("final")
        task.save_model(model, run_dir / "final", asdict(result))
        log.write("end", step, **{k: v for k, v in asdict(result).items() if k != "final_metrics"}, **metrics)
    log.close()
    if dist_info.is_main:
        tqdm.write(f"report: {write_report(run_dir)}")
    if world > 1:
        torch.distributed.barrier()
    return result


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
