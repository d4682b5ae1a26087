"""FSDP2 for `--strategy fsdp`: parameters, gradients and optimizer state sharded over the processes.

`fully_shard` goes first over each shared layer group (its parameters are gathered once per application of the
layer and freed after) and then over the whole model (embeddings, heads). Checkpoints are sharded with
torch.distributed.checkpoint (each process writes its own shard; resuming reads them back on any number of
processes); the HF folders (`best/`, `final/`) are gathered whole on rank 0.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from albertkit.errors import UserError
from albertkit.modeling.model import AlbertTransformer


def shard_model(model: torch.nn.Module, param_dtype: torch.dtype | None) -> None:
    """Apply FSDP2 in place: each shared layer group of every ALBERT encoder, then the whole model.

    param_dtype: the dtype parameters are gathered and computed in (bf16 on CUDA: a MixedPrecisionPolicy with
    float32 gradient reduction); None keeps float32.
    """
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32) if param_dtype else None
    options = {"mp_policy": policy} if policy is not None else {}
    groups = [group for encoder in model.modules() if isinstance(encoder, AlbertTransformer)
              for group in encoder.albert_layer_groups]
    if not groups:
        raise UserError("--strategy fsdp needs an ALBERT encoder in the model")
    for group in groups:
        fully_shard(group, **options)
    fully_shard(model, **options)


def plain_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy of the unsharded model, made before sharding: rank 0 loads gathered weights into it to save."""
    return copy.deepcopy(model).to("cpu")


def gather_full_model(model: torch.nn.Module, twin: torch.nn.Module | None) -> torch.nn.Module | None:
    """The sharded `model`'s weights gathered whole into `twin` on rank 0 (None on the others). Collective:
    every process must call it."""
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if twin is None:
        return None
    twin.load_state_dict(state)
    if hasattr(twin, "tie_weights"):
        twin.tie_weights()
    return twin


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """The gradient norm clip_grad_norm_ returns, as a plain tensor (a DTensor over sharded gradients)."""
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def sharded_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """This process's shards of the model and optimizer state, keyed for torch.distributed.checkpoint."""
    return {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Every process writes its shards into `folder` (shared by all, on a filesystem every process sees)."""
    dcp.save(sharded_state(model, optimizer), checkpoint_id=str(folder))


def load_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Read the shards of `folder` back into the sharded model and optimizer (collective)."""
    if not (folder / ".metadata").is_file():
        raise UserError(f"the checkpoint has no sharded state ({folder.name}/.metadata): it was not written "
                        "with --strategy fsdp; resume it with --strategy ddp", folder.parent)
    state = sharded_state(model, optimizer)
    with warnings.catch_warnings():  # one process without a process group reads all the shards: that is intended
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(folder))
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
