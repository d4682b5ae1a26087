"""The step engine: one optimizer step over a step's micro-batches, and where it runs.

It owns the device and precision, DDP under torchrun, gradient accumulation (with DDP's no_sync on all but
the last micro-batch), autocast, fp16 loss scaling, gradient clipping and skipping non-finite steps, the
optimizer and the learning-rate schedule. The loop around it (train.loop) decides what to do between steps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from albertkit.errors import UserError
from albertkit.modeling.model import set_gradient_checkpointing
from albertkit.runtime.device import autocast, autocast_dtype
from albertkit.train.optim import WarmupSchedule, build_optimizer, build_schedule
from albertkit.train.settings import TrainSettings
from albertkit.train.sharding import (
    full_norm,
    gather_full_model,
    load_sharded,
    plain_twin,
    save_sharded,
    shard_model,
)


class StepTask(Protocol):
    """What the engine needs from a task to take a step (see train.loop.TrainingTask for the rest)."""

    def count_items(self, batch: dict[str, torch.Tensor]) -> int | None:
        """Loss items (masked tokens, say) in a micro-batch, to normalise summed losses over a step; None: mean."""
        ...

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], num_items: Any) -> Any:
        """The model's output for `batch` (with `.loss`); with `num_items`, losses summed and divided by it."""
        ...


@dataclass
class Distributed:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a single process otherwise."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls(device=device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), device)

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on any (so that all stop at the same step)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value > 0)

    def from_main(self, value: int) -> int:
        """Rank 0's `value` on every process (a plan made from one clock, so that all follow the same)."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor(value, device=self.device)
        dist.broadcast(tensor, src=0)
        return int(tensor)

    def mean(self, value: torch.Tensor | float) -> torch.Tensor | float:
        """The mean of `value` over processes."""
        if self.world_size == 1:
            return value
        tensor = torch.as_tensor(value, device=self.device, dtype=torch.float32)
        dist.all_reduce(tensor)
        return tensor / self.world_size


def is_main_process() -> bool:
    """Whether this process writes the run's files: rank 0 under torchrun, or the only process."""
    return not dist.is_initialized() or dist.get_rank() == 0


@dataclass
class StepOutcome:
    """One optimizer step: its summed loss and gradient norm stay on the device (read only when logged)."""

    loss: torch.Tensor
    grad_norm: torch.Tensor
    finite: bool  # the loss and gradient norm are finite
    skipped: bool  # no update for a non-finite step (fp16 overflows, which the scaler absorbs, are not skips)
    tokens: int  # real (non-padding) tokens this process saw


class StepEngine:
    """Takes optimizer steps for `model` as `settings` say, on `world`'s device."""

    def __init__(self, model: torch.nn.Module, settings: TrainSettings, total_steps: int, world: Distributed):
        self.sharded = settings.strategy == "fsdp" and world.world_size > 1
        # FSDP: rank 0's unsharded CPU copy to gather whole weights into for saving, made before the move
        self.twin = plain_twin(model) if self.sharded and world.is_main else None
        self.model, self.world = model.to(world.device), world
        self.max_grad_norm = settings.max_grad_norm
        self.amp_dtype = autocast_dtype(settings.precision, world.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        set_gradient_checkpointing(model, settings.gradient_checkpointing)
        if self.sharded:
            if self.scaler is not None:
                raise UserError("--strategy fsdp trains in fp32 or bf16: fp16 loss scaling is for ddp only")
            shard_model(model, self.amp_dtype if world.device.type == "cuda" else None)
        self.train_model = torch.compile(model) if settings.compile else model
        if world.world_size > 1 and not self.sharded:
            device_ids = [world.device.index] if world.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.train_model, device_ids=device_ids,
                                                       find_unused_parameters=False)
        # Built after sharding: FSDP's optimizer holds the shards.
        self.optimizer = build_optimizer(settings.optimizer, model, lr=settings.learning_rate,
                                         weight_decay=settings.weight_decay, eps=settings.adam_epsilon)
        self.scheduler = build_schedule(self.optimizer, warmup_steps=settings.resolve_warmup(total_steps),
                                        total_steps=total_steps, kind=settings.schedule)

    @property
    def schedule(self) -> WarmupSchedule:
        """The learning-rate plan (shared by every parameter group)."""
        return self.scheduler.lr_lambdas[0]

    @property
    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def step(self, task: StepTask, batches: list[dict[str, torch.Tensor]]) -> StepOutcome:
        """Forward and backward over `batches` (this process's share of the step), then clip and update, unless
        the loss or gradient is not finite: then the update is skipped (fp16: the scaler skips it)."""
        num_items = self._items(task, batches)
        loss, tokens = torch.zeros((), device=self.world.device), 0
        for i, batch in enumerate(batches):
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
            batch = {k: v.to(self.world.device, non_blocking=True) for k, v in batch.items()}
            last = i == len(batches) - 1
            with self._no_sync() if not last else contextlib.nullcontext():
                with autocast(self.world.device, self.amp_dtype):
                    output = task.loss(self.train_model, batch, num_items)
                micro_loss = output.loss if num_items is not None else output.loss / len(batches)
                (self.scaler.scale(micro_loss) if self.scaler is not None else micro_loss).backward()
            loss += micro_loss.detach()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = full_norm(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm))
        finite = bool(torch.isfinite(grad_norm + loss))  # the step's one host sync
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update itself on overflow and lowers the scale
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return StepOutcome(loss, grad_norm, finite, not finite and self.scaler is None, tokens)

    def _items(self, task: StepTask, batches: list[dict[str, torch.Tensor]]) -> torch.Tensor | None:
        """The step's loss items per process, summed over every process's micro-batches; None: mean losses."""
        counts = [task.count_items(b) for b in batches]
        if counts[0] is None:
            return None
        total = torch.tensor(float(sum(counts)), device=self.world.device)
        if self.world.world_size > 1:
            dist.all_reduce(total)
        # DDP averages gradients over processes: scale so the step's loss is the global sum / items.
        return total / self.world.world_size

    @contextlib.contextmanager
    def _no_sync(self) -> Iterator[None]:
        """Gradients of an accumulation micro-batch stay local: DDP all-reduces (FSDP reduce-scatters) on the
        step's last one only."""
        if self.sharded:
            self.model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                self.model.set_requires_gradient_sync(True)
        elif self.world.world_size > 1:
            with self.train_model.no_sync():
                yield
        else:
            yield

    @contextlib.contextmanager
    def whole_model(self) -> Iterator[torch.nn.Module | None]:
        """The model with whole weights on the main process, for saving (None on the others). Under FSDP every
        process must enter it: the weights are gathered from all."""
        if self.sharded:
            yield gather_full_model(self.model, self.twin)
        else:
            yield self.model if self.world.is_main else None

    def save_sharded(self, folder: Path) -> None:
        """FSDP: every process writes its shards of the model and optimizer into `folder`."""
        save_sharded(self.model, self.optimizer, folder)

    def load_sharded(self, folder: Path) -> None:
        """Read a sharded checkpoint's model and optimizer state (collective; works unsharded too)."""
        load_sharded(self.model, self.optimizer, folder)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[torch.nn.Module]:
        """The model in eval mode, without gradients, under the run's autocast; back in train mode after."""
        self.model.eval()
        try:
            with torch.no_grad(), autocast(self.world.device, self.amp_dtype):
                yield self.model
        finally:
            self.model.train()

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule (with its plan) and loss scaler, for a checkpoint (FSDP: the optimizer's shards go
        into the sharded folder instead, see `save_sharded`)."""
        state = {"scheduler": self.scheduler.state_dict()}
        if not self.sharded:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "optimizer" in state:  # a sharded checkpoint's optimizer state is read by `load_sharded`
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
