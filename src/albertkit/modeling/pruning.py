"""Structured pruning of an ALBERT model in place: attention heads and FFN neurons removed from the weights, the
config updated to match (`pruned_heads` as transformers 4 records them, a smaller `intermediate_size`).

A layer of ALBERT's shared group runs at every depth that uses the group, so pruning it prunes all its applications.
"""

from __future__ import annotations

import torch
from torch import nn

from albertkit.errors import UserError
from albertkit.modeling.model import AlbertLayer, AlbertPreTrainedModel


def shared_layers(model: AlbertPreTrainedModel) -> list[AlbertLayer]:
    """The distinct layers of the encoder, in transformers' numbering (group * inner_group_num + inner index)."""
    encoder = model.albert.encoder if hasattr(model, "albert") else model.encoder
    return [layer for group in encoder.albert_layer_groups for layer in group.albert_layers]


def _select(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of `linear` keeping the output rows (dim 0) or input columns (dim 1) at `index`."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias.detach().clone() if dim == 1 else linear.bias.detach().index_select(0, index).clone()
    new = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.device, weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    return new


def prune_heads(model: AlbertPreTrainedModel, heads: dict[int, list[int]]) -> None:
    """Remove attention heads: `heads` maps a layer to the indices (among the heads it has now) to remove."""
    config = model.config
    recorded = {k: list(v) for k, v in (config.pruned_heads or {}).items()}
    for layer_index, remove in heads.items():
        attention = shared_layers(model)[layer_index].attention
        remove = sorted(set(remove))
        if not remove:
            continue
        if len(remove) >= attention.num_heads:
            raise UserError(f"cannot remove all {attention.num_heads} heads of layer {layer_index}")
        kept = [h for h in range(attention.num_heads) if h not in remove]
        size = attention.head_size
        index = torch.tensor([h * size + i for h in kept for i in range(size)], device=attention.query.weight.device)
        for name in ("query", "key", "value"):
            setattr(attention, name, _select(getattr(attention, name), index, 0))
        attention.dense = _select(attention.dense, index, 1)
        # Indices in the config are the original ones, whatever was pruned before.
        original = [h for h in range(config.num_attention_heads) if h not in set(attention.pruned_heads)]
        attention.pruned_heads = sorted(set(attention.pruned_heads) | {original[h] for h in remove})
        attention.num_heads = len(kept)
        recorded[layer_index] = attention.pruned_heads
    config.pruned_heads = recorded or None


def prune_ffn(model: AlbertPreTrainedModel, keep: dict[int, list[int]]) -> None:
    """Keep only the FFN neurons `keep[layer]` of each layer; every layer must keep as many (one intermediate_size)."""
    layers = shared_layers(model)
    sizes = {len(set(keep.get(i, range(layer.ffn.out_features)))) for i, layer in enumerate(layers)}
    if len(sizes) != 1 or 0 in sizes:
        raise UserError(f"every layer must keep the same positive number of FFN neurons, got {sorted(sizes)}")
    for layer_index, neurons in keep.items():
        layer = layers[layer_index]
        index = torch.tensor(sorted(set(neurons)), device=layer.ffn.weight.device)
        layer.ffn = _select(layer.ffn, index, 0)
        layer.ffn_output = _select(layer.ffn_output, index, 1)
    model.config.intermediate_size = sizes.pop()
