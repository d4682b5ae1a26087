"""Optimizers and learning-rate schedules: vectorized LAMB, ALBERT-style parameter groups, warmup schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from albertkit.errors import UserError

# Names excluded from weight decay and from LAMB's layer adaptation, as in google-research/albert.
NO_DECAY_NAME_PARTS = ("LayerNorm", "layer_norm", "bias")
OPTIMIZER_NAMES = ("lamb", "adamw")
SCHEDULE_KINDS = ("linear", "cosine", "constant")


class Lamb(torch.optim.Optimizer):
    """LAMB as in google-research/albert ``lamb_optimizer.py``, vectorized with ``torch._foreach_*`` ops.

    For each parameter ``w`` with gradient ``g``::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        update = m / (sqrt(v) + eps) + weight_decay * w
        ratio = ||w|| / ||update||  if adapt and both norms > 0, else 1
        w = w - lr * ratio * update

    Like the reference there is NO Adam bias correction (so the state is only ``exp_avg`` and
    ``exp_avg_sq``, no step counter). Exclusions come from param groups, each with its own
    ``weight_decay`` and ``adapt`` (see ``parameter_groups``), not from parameter names.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        adapt: bool = True,
    ):
        if lr < 0.0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps < 0.0 or weight_decay < 0.0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "adapt": adapt}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Apply one LAMB update to every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("Lamb does not support sparse gradients")
            exp_avgs, exp_avg_sqs = self._moments(params)
            # foreach kernels need every list on one device and dtype
            by_device = self._group_tensors_by_device_and_dtype([params, grads, exp_avgs, exp_avg_sqs])
            for (dev_params, dev_grads, dev_exp_avgs, dev_exp_avg_sqs), _ in by_device.values():
                _lamb_update(dev_params, dev_grads, dev_exp_avgs, dev_exp_avg_sqs, group)
        return loss

    def _moments(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The first and second moment buffers of ``params``, created as zeros on first use."""
        for p in params:
            state = self.state[p]
            if not state:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return [self.state[p]["exp_avg"] for p in params], [self.state[p]["exp_avg_sq"] for p in params]


def _lamb_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    group: dict[str, Any],
) -> None:
    """One LAMB step over same-device, same-dtype tensor lists, in place, a handful of foreach kernels."""
    beta1, beta2 = group["betas"]
    # lerp(m, g, 1 - beta1) == beta1 * m + (1 - beta1) * g, in one kernel
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denominators, group["eps"])
    updates = torch._foreach_div(exp_avgs, denominators)
    del denominators
    if group["weight_decay"]:
        torch._foreach_add_(updates, params, alpha=group["weight_decay"])
    if group["adapt"]:
        weight_norms = torch.stack(torch._foreach_norm(params))
        update_norms = torch.stack(torch._foreach_norm(updates))
        trust_ratios = torch.where((weight_norms > 0) & (update_norms > 0), weight_norms / update_norms, 1.0)
        torch._foreach_mul_(updates, list(trust_ratios.unbind()))
    torch._foreach_add_(params, updates, alpha=-group["lr"])


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into ALBERT/BERT's two optimizer groups.

    Parameters whose name contains "LayerNorm", "layer_norm" or "bias" get no weight decay and no
    LAMB layer adaptation (``adapt=False``); everything else (Linear and embedding weights) gets
    ``weight_decay`` and ``adapt=True``. Shared (tied) parameters appear once; frozen ones not at all;
    empty groups are dropped.
    """
    decayed: list[nn.Parameter] = []
    not_decayed: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        excluded = any(part in name for part in NO_DECAY_NAME_PARTS)
        (not_decayed if excluded else decayed).append(param)
    groups = [
        {"params": decayed, "weight_decay": weight_decay, "adapt": True},
        {"params": not_decayed, "weight_decay": 0.0, "adapt": False},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(
    name: str,
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
) -> torch.optim.Optimizer:
    """Build "lamb" (``Lamb``) or "adamw" (``torch.optim.AdamW``) over ``parameter_groups(model)``.

    AdamW is torch's (with bias correction, unlike google's AdamWeightDecayOptimizer); it uses the
    fused kernel when every parameter is on CUDA, the foreach one otherwise.
    """
    groups = parameter_groups(model, weight_decay)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps)
    if name == "adamw":
        on_cuda = all(p.is_cuda for group in groups for p in group["params"])
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=not on_cuda, fused=on_cuda)
    raise UserError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}")


@dataclass
class WarmupSchedule:
    """Learning-rate multiplier: linear warmup from 0 to 1, then linear/cosine decay to 0 or constant.

    The decay runs from the end of warmup to ``total_steps`` (continuous at the end of warmup, like
    transformers' schedules; google's ALBERT jumps from 1 to ``1 - warmup/total`` there instead).
    ``replan`` moves the ends while keeping the multiplier continuous: from the step it is called at, the
    rest of the warmup and of the decay are spread over the steps left. The fields are the plan, which
    LambdaLR saves and restores with the scheduler's state.
    """

    warmup_steps: int
    total_steps: int
    kind: str
    warmup_from: int = 0  # the step the current warmup plan starts from
    warmup_level: float = 0.0  # the multiplier at `warmup_from`
    decay_from: int | None = None  # the step the current decay plan starts from; None: the end of warmup
    progress_from: float = 0.0  # how far the decay had come at `decay_from`, 0 to 1

    def decay_progress(self, step: int) -> float:
        """How far the decay has come at `step`: 0 at its start, 1 at `total_steps`."""
        start = self.warmup_steps if self.decay_from is None else self.decay_from
        done = min(1.0, (step - start) / max(1, self.total_steps - start))
        return self.progress_from + (1.0 - self.progress_from) * done if self.progress_from else done

    def replan(self, step: int, total_steps: int, warmup_steps: int | None = None) -> None:
        """End the decay at `total_steps` instead (and, when given and still warming up at `step`, the warmup
        at `warmup_steps`), continuing from where the multiplier is at `step`."""
        if warmup_steps is not None and step < self.warmup_steps:
            self.warmup_level, self.warmup_from = self(step), step
            self.warmup_steps = min(max(warmup_steps, step + 1), total_steps)
        elif step > self.warmup_steps:
            self.progress_from, self.decay_from = self.decay_progress(step), step
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            done = (step - self.warmup_from) / (self.warmup_steps - self.warmup_from)
            return self.warmup_level + (1.0 - self.warmup_level) * done
        if self.kind == "constant":
            return 1.0
        progress = self.decay_progress(step)
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, kind: str = "linear"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR scaling every group's lr by ``WarmupSchedule(warmup_steps, total_steps, kind)``."""
    if kind not in SCHEDULE_KINDS:
        raise UserError(f"unknown schedule {kind!r}; choose one of: {', '.join(SCHEDULE_KINDS)}")
    if total_steps < 1:
        raise UserError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise UserError(f"warmup_steps must be between 0 and total_steps ({total_steps}), got {warmup_steps}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupSchedule(warmup_steps, total_steps, kind))
