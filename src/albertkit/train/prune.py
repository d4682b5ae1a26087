"""`albertkit prune`: remove the least important attention heads and FFN neurons of a fine-tuned model, measured by
gradients on the dev file, then optionally recover with a short fine-tune.

Importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): a gate of 1 multiplies each head's
output and each FFN neuron; the importance of a part is |dLoss/dgate| summed over the dev batches, i.e. the loss's
first-order change if the part were removed. ALBERT applies one shared layer at every depth, so its gate collects
the gradient of all applications and the layer is pruned once for all of them.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.batching import collate, length_bucketed_batches
from albertkit.errors import UserError
from albertkit.inference.predict import load_finetuned
from albertkit.inference.predictor import evaluate_features
from albertkit.io.atomic import atomic_folder
from albertkit.io.tables import reporting_skipped_rows
from albertkit.modeling.folder import ALBERTKIT_INFO, read_model_info, write_model_folder
from albertkit.modeling.pruning import prune_ffn, prune_heads, shared_layers
from albertkit.tasks.spec import featurize, read_examples
from albertkit.train.finetune import FinetuneSettings, train_task_model


@contextlib.contextmanager
def _gates(model: torch.nn.Module) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Per-layer gates (heads, FFN neurons) of 1 spliced into the forward pass; the weights' gradients are off."""
    layers = shared_layers(model)
    head_gates = [torch.ones(layer.attention.num_heads, requires_grad=True) for layer in layers]
    neuron_gates = [torch.ones(layer.ffn.out_features, requires_grad=True) for layer in layers]
    hooks = []
    for layer, heads, neurons in zip(layers, head_gates, neuron_gates, strict=True):
        size = layer.attention.head_size
        hooks.append(layer.attention.dense.register_forward_pre_hook(
            lambda _m, args, g=heads, s=size: (args[0] * g.repeat_interleave(s),)))
        hooks.append(layer.ffn_output.register_forward_pre_hook(lambda _m, args, g=neurons: (args[0] * g,)))
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(False)
    try:
        yield head_gates, neuron_gates
    finally:
        for hook in hooks:
            hook.remove()
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])


def measure_importance(model: torch.nn.Module, features: list[dict[str, Any]], pad_id: int,
                       batch_size: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(head importance per layer, each normalised to unit L2 norm as Michel et al. do; FFN neuron importance per
    layer), from the loss on labelled `features`."""
    model.eval()
    lengths = np.array([len(f["input_ids"]) for f in features])
    with _gates(model) as (head_gates, neuron_gates):
        heads = [torch.zeros_like(g) for g in head_gates]
        neurons = [torch.zeros_like(g) for g in neuron_gates]
        for rows in length_bucketed_batches(lengths, batch_size, shuffle=False):
            loss = model(**collate([features[i] for i in rows], pad_id)).loss
            if loss is None:
                raise UserError("the dev features have no labels to measure importance with")
            grads = torch.autograd.grad(loss, head_gates + neuron_gates)
            for total, grad in zip(heads + neurons, grads, strict=True):
                total += grad.abs()
    return ([(h / h.norm().clamp_min(1e-12)).numpy() for h in heads], [n.numpy() for n in neurons])


def least_important(scores: np.ndarray, fraction: float, keep_at_least: int = 1) -> list[int]:
    """Indices of the `fraction` least important entries (rounded), leaving `keep_at_least`."""
    count = min(round(fraction * len(scores)), len(scores) - keep_at_least)
    return sorted(int(i) for i in np.argsort(scores, kind="stable")[:count])


def check_fraction(name: str, fraction: float) -> None:
    if not 0 <= fraction < 1 or math.isnan(fraction):
        raise UserError(f"--{name} {fraction:g} is the share of {name} to remove: give a fraction in [0, 1) "
                        "(1 would remove them all)")


def prune_by_importance(model: torch.nn.Module, features: list[dict[str, Any]], pad_id: int, heads: float,
                        ffn: float, batch_size: int = 32) -> dict[str, Any]:
    """Prune `heads` and `ffn` (fractions) of every layer's heads and neurons, least important first; returns
    what was removed."""
    check_fraction("heads", heads)
    check_fraction("ffn", ffn)
    head_scores, neuron_scores = measure_importance(model, features, pad_id, batch_size)
    removed_heads = {i: least_important(s, heads) for i, s in enumerate(head_scores)}
    kept_neurons = {i: sorted(set(range(len(s))) - set(least_important(s, ffn))) for i, s in enumerate(neuron_scores)}
    prune_heads(model, removed_heads)
    prune_ffn(model, kept_neurons)
    return {"head_fraction": heads, "ffn_fraction": ffn, "pruned_heads": model.config.pruned_heads or {},
            "intermediate_size": model.config.intermediate_size}


def prune_model_folder(model_dir: str | Path, dev_path: str | Path, out_dir: str | Path, *, heads: float = 0.5,
                       ffn: float = 0.5, recover_train: str | Path | None = None, batch_size: int = 32,
                       **recover_settings: Any) -> dict[str, Any]:
    """`albertkit prune`: the pruned (and, with `recover_train`, briefly fine-tuned: `recover_settings` are
    `FinetuneSettings` fields) model in `out_dir`, with dev metrics before and after in its albertkit.json."""
    check_fraction("heads", heads)
    check_fraction("ffn", ffn)
    model, tokenizer, spec = load_finetuned(model_dir)
    with reporting_skipped_rows():
        dev_examples = read_examples(spec, dev_path, require_labels=True)
        train_examples = read_examples(spec, recover_train, require_labels=True) if recover_train else None
    if not dev_examples:
        raise UserError("no dev examples to measure importance on", dev_path)
    dev_features = featurize(spec, tokenizer, dev_examples)
    pad = tokenizer.pad_token_id
    before = evaluate_features(model, spec, dev_examples, dev_features, batch_size, pad)
    parameters_before = model.num_parameters()
    pruning = prune_by_importance(model, dev_features, pad, heads, ffn, batch_size)
    pruning.update(parameters_before=parameters_before, parameters_after=model.num_parameters(),
                   dev_before=_scalars(before),
                   dev_after_pruning=_scalars(evaluate_features(model, spec, dev_examples, dev_features, batch_size,
                                                                pad)))
    info = {**read_model_info(model_dir), "pruning": pruning}
    with atomic_folder(out_dir, ALBERTKIT_INFO, "albertkit model") as folder:
        if train_examples is not None:
            options = FinetuneSettings(**{"epochs": 1.0, "batch_size": batch_size, **recover_settings,
                                          "task": spec.task})
            result = train_task_model(model, spec, tokenizer, train_examples, dev_examples, folder / "recovery",
                                      options)
            model = type(model).from_pretrained(folder / "recovery" / "best").eval()
            for copy in ("best", "final", "checkpoints"):  # the model goes to OUT itself; the run keeps its logs
                shutil.rmtree(folder / "recovery" / copy, ignore_errors=True)
            pruning.update(recovery_seconds=round(result.seconds, 1), recovery_steps=result.steps,
                           dev_after_recovery=_scalars(evaluate_features(model, spec, dev_examples, dev_features,
                                                                         batch_size, pad)))
        write_model_folder(model, folder, tokenizer, info)
    return pruning


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, float)}
