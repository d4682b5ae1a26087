"""Describe a model folder: `albertkit model info`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from albertkit.modeling.folder import load_any_model, read_model_info
from albertkit.tokenization.loading import describe_tokenizer


def parameter_breakdown(model: torch.nn.Module) -> dict[str, int]:
    """Distinct parameters by component: embeddings, shared encoder, pooler, heads (tied weights counted once)."""
    counts: dict[str, int] = {"embeddings": 0, "encoder": 0, "pooler": 0, "heads": 0}
    for name, param in model.named_parameters():  # named_parameters yields each shared tensor once
        parts = name.split(".")
        if parts[0] == "albert":
            parts = parts[1:]
        component = parts[0] if parts[0] in ("embeddings", "encoder", "pooler") else "heads"
        counts[component] += param.numel()
    counts["total"] = sum(counts.values())
    return counts


def describe_model_folder(directory: str | Path) -> dict[str, Any]:
    """Config, head, parameter counts by component and albertkit's notes about a model folder."""
    model = load_any_model(directory)
    return {
        "folder": str(directory),
        "architecture": type(model).__name__,
        "config": model.config.to_dict(),
        "parameters": parameter_breakdown(model),
        "tokenizer": describe_tokenizer(directory),
        "albertkit": read_model_info(directory),
    }


def format_model_description(description: dict[str, Any]) -> str:
    config = description["config"]
    shape = ", ".join(
        f"{k}={config[k]}" for k in (
            "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
            "inner_group_num", "num_attention_heads", "intermediate_size", "max_position_embeddings",
        )
    )
    lines = [f"{description['folder']}: {description['architecture']}", f"  {shape}", "  parameters:"]
    lines += [f"    {name:<11}{count:>14,}" for name, count in description["parameters"].items()]
    tokenizer = description["tokenizer"]
    lines.append(
        f"  tokenizer: {tokenizer['kind']} ({tokenizer['file']}), {tokenizer['vocab_size']:,} pieces"
        f"{', lowercased' if tokenizer['do_lower_case'] else ', cased'}" if tokenizer else "  tokenizer: none"
    )
    labels = config.get("id2label")
    if labels:
        lines.append(f"  labels: {', '.join(labels.values())}")
    return "\n".join(lines)

