"""Gradient checkpointing of the shared layer: the same gradients (dropout included), less peak memory (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForPreTraining, AlbertModel, set_gradient_checkpointing

SMALL = dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
             intermediate_size=64, max_position_embeddings=64)


def gradients(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(123)  # the same dropout masks for both runs
    model(**batch).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_same_loss_and_gradients_with_dropout_and_padding() -> None:
    torch.manual_seed(0)
    config = AlbertConfig(**SMALL, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = AlbertForPreTraining(config).train()
    ids = torch.randint(5, 100, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0  # padding: the unpadded path goes through the checkpoint too
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.where(mask.bool(), ids, -100),
             "sentence_order_label": torch.tensor([0, 1, 0])}
    plain = gradients(model, batch)
    assert set_gradient_checkpointing(model) == 1
    recomputed = gradients(model, batch)
    assert plain.keys() == recomputed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(recomputed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    assert set_gradient_checkpointing(model, False) == 1


def test_evaluation_and_inference_do_not_checkpoint() -> None:
    model = AlbertModel(AlbertConfig(**SMALL))
    set_gradient_checkpointing(model)
    model.eval()
    ids = torch.randint(5, 100, (2, 10))
    with torch.no_grad():
        out = model(ids).last_hidden_state
    assert out.shape == (2, 10, 32)


PEAK_SCRIPT = r"""
import json, re, sys, torch
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertModel, set_gradient_checkpointing
torch.manual_seed(0)
torch.set_num_threads(1)
model = AlbertModel(AlbertConfig(vocab_size=100, embedding_size=32, hidden_size=128, num_hidden_layers=12,
                                 num_attention_heads=2, intermediate_size=512, max_position_embeddings=256)).train()
set_gradient_checkpointing(model, sys.argv[1] == "1")
ids = torch.randint(5, 100, (16, 256))
def high_water_kib():  # this process's own peak RSS (ru_maxrss would include the parent's, kept across exec)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
before = high_water_kib()
model(ids).last_hidden_state.sum().backward()
after = high_water_kib()
print(json.dumps({"peak_growth_kib": after - before}))
"""


def peak_growth(checkpointing: bool) -> int:
    """KiB by which a fresh process's peak RSS grows over one forward and backward pass."""
    # A fixed mmap threshold maps and unmaps every large block, so that peak RSS follows the live tensors
    # (glibc's sliding threshold would keep freed activations resident and blur the difference).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(int(checkpointing))], capture_output=True,
                         text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_kib"]


def test_lower_peak_memory_on_cpu() -> None:
    plain, recomputed = peak_growth(False), peak_growth(True)
    # 12 applications of the layer, 16 x 256 tokens: ~35 MB of activations kept per application without
    # checkpointing, its 2 MB input with it (measured: about 430 MB against 165 MB of peak growth)
    assert plain > 200_000, plain
    assert recomputed < 0.5 * plain, (recomputed, plain)
