"""How much memory training needs per process, DDP against FSDP, before anyone rents a machine.

Counts what the strategy decides: fp32 parameters, fp32 gradients and the optimizer's two fp32 moments (AdamW and
LAMB alike), and under FSDP the whole weights and gradients gathered transiently (the root module's, which stay
gathered from forward to backward, plus one shared layer group's at a time). Activations, the CUDA context and
allocator slack come on top and are not included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForPreTraining, AlbertTransformer

GIB = 2**30
FP32 = 4
OPTIMIZER_MOMENTS = 2  # AdamW and LAMB keep exp_avg and exp_avg_sq


@dataclass
class MemoryRow:
    """Bytes per process of one strategy on `processes` processes."""

    strategy: str
    processes: int
    parameters: float
    gradients: float
    optimizer: float
    gathered: float  # FSDP: whole weights and gradients held while a module runs (0 for DDP)

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer + self.gathered


def parameter_counts(config: AlbertConfig) -> tuple[int, int, int]:
    """(all parameters, the largest shared layer group's, the rest outside the groups) of AlbertForPreTraining,
    counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = AlbertForPreTraining(config)
    total = sum(p.numel() for p in model.parameters())
    encoder = next(m for m in model.modules() if isinstance(m, AlbertTransformer))
    groups = [sum(p.numel() for p in group.parameters()) for group in encoder.albert_layer_groups]
    return total, max(groups), total - sum(groups)


def training_memory(config: AlbertConfig, processes: int, gathered_bytes: int = 2) -> list[MemoryRow]:
    """DDP and FSDP rows for `processes` processes. gathered_bytes: bytes per gathered weight under FSDP (2: bf16
    through the mixed-precision policy on CUDA; 4: fp32)."""
    total, group, root = parameter_counts(config)
    ddp = MemoryRow("ddp", processes, total * FP32, total * FP32, total * FP32 * OPTIMIZER_MOMENTS, 0.0)
    gathered = (root + group) * (gathered_bytes + FP32)  # whole weights plus their fp32 gradients before reduction
    fsdp = MemoryRow("fsdp", processes, ddp.parameters / processes, ddp.gradients / processes,
                     ddp.optimizer / processes, gathered if processes > 1 else 0.0)
    return [ddp, fsdp]


def format_training_memory(name: str, config: AlbertConfig, rows: list[MemoryRow]) -> str:
    total, group, root = parameter_counts(config)
    lines = [f"training memory per process for {name}: {total:,} parameters ({group:,} in the shared layer group, "
             f"{root:,} in embeddings and heads)",
             "fp32 weights, fp32 gradients, two fp32 optimizer moments (AdamW/LAMB); FSDP gathers bf16 weights on "
             "CUDA; activations, CUDA context and allocator slack not included",
             f"  {'strategy':<9}{'processes':>10}{'params':>11}{'grads':>11}{'optimizer':>11}{'gathered':>11}"
             f"{'total':>11}"]
    for row in rows:
        cells = (row.parameters, row.gradients, row.optimizer, row.gathered, row.total)
        lines.append(f"  {row.strategy:<9}{row.processes:>10}" + "".join(f"{value / GIB:>10.2f}G" for value in cells))
    return "\n".join(lines)
