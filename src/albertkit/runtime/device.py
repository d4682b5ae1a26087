"""Where a model runs and in which precision: one answer for every command (training and inference alike).

`resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")` turns a `--device` value into a torch.device, or a
one-line UserError when that device is absent, so that a command refuses before it writes anything.
`autocast_dtype` turns a `--precision` value into the dtype autocast runs in (None: plain fp32).
"""

from __future__ import annotations

import contextlib
import os

import torch

from albertkit.errors import UserError

DEVICE_HELP = "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INFERENCE_PRECISION_HELP = "auto: bf16 autocast on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere"
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Padded tokens per inference batch on a CUDA GPU when no budget is given: 32 texts of 512 tokens, or 512 of 32.
CUDA_MAX_TOKENS = 16_384


def resolve_device(spec: str | torch.device = "auto", cpu_only: bool = False) -> torch.device:
    """The torch.device `spec` names, checked to exist; "cuda" and "auto" take LOCAL_RANK's GPU under torchrun.

    "auto" is a CUDA GPU when torch sees one, else the CPU (never MPS: ask for it by name); with `cpu_only` (work
    that runs only on the CPU, such as int8 dynamic quantization) "auto" is the CPU. A device that is not there
    (cuda without a GPU, cuda:3 on a machine with two, mps off Apple silicon) is a UserError.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = spec.strip().lower()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        use_gpu = torch.cuda.is_available() and not cpu_only
        return torch.device("cuda", local_rank) if use_gpu else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("--device mps: no Apple GPU (MPS) is available to torch; use --device cpu or auto")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        return _cuda_device(name, local_rank)
    raise UserError(f"unknown device {spec!r}; choose {DEVICE_HELP}")


def _cuda_device(name: str, local_rank: int) -> torch.device:
    index_text = name.partition(":")[2]
    if index_text and not index_text.isdigit():
        raise UserError(f"unknown device {name!r}; a CUDA device is cuda or cuda:N (N = 0, 1, ...)")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                        "use --device cpu or auto")
    index = int(index_text) if index_text else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"--device {name}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}")
    if index_text and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"--device {name} names one GPU for every process; under torchrun use --device cuda "
                        "(each process takes the GPU of its LOCAL_RANK)")
    return torch.device("cuda", index)


def autocast_dtype(precision: str, device: torch.device, inference: bool = False) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device`, or None for plain fp32.

    "auto": bf16 on a CUDA GPU that supports it, else fp32 for training (fp16 training needs loss scaling, asked
    for by name) and fp16 for inference; fp32 on the CPU (bf16 matmul is slow on most CPUs) and on MPS.
    fp16 needs a CUDA device.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if inference else None
    if precision not in AUTOCAST_DTYPES:
        raise UserError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UserError("fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    return AUTOCAST_DTYPES[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast on `device` in `dtype`; nothing for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
