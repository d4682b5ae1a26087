"""`model info --training-memory`: per-process bytes of DDP and FSDP, from parameter counts equal to transformers'."""

from __future__ import annotations

import pytest
import torch

from albertkit.cli import main
from albertkit.modeling.config import AlbertConfig
from albertkit.train.memory_plan import GIB, parameter_counts, training_memory


def test_parameter_count_equals_transformers_for_xxlarge() -> None:
    transformers = pytest.importorskip("transformers")
    config = AlbertConfig.from_preset("xxlarge")
    with torch.device("meta"):
        theirs = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_dict()))
    total, group, root = parameter_counts(config)
    assert total == sum(p.numel() for p in theirs.parameters()) == 223_158_450
    assert group + root == total and group == 201_379_840


def test_ddp_and_fsdp_rows() -> None:
    config = AlbertConfig.from_preset("xxlarge")
    total, group, root = parameter_counts(config)
    ddp, fsdp = training_memory(config, processes=8)
    assert ddp.total == 16 * total  # fp32 weights + gradients + two moments
    assert fsdp.parameters * 8 == ddp.parameters and fsdp.optimizer * 8 == ddp.optimizer
    assert fsdp.gathered == (group + root) * (2 + 4)  # bf16 weights gathered, fp32 gradients before reduction
    assert fsdp.total < ddp.total
    assert training_memory(config, processes=1)[1].gathered == 0


def test_cli_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["model", "info", "--training-memory", "--preset", "xxlarge", "--processes", "8"]) == 0
    out = capsys.readouterr().out
    assert "223,158,450 parameters" in out
    ddp_line = next(line for line in out.splitlines() if line.strip().startswith("ddp"))
    assert ddp_line.split()[-1] == f"{16 * 223_158_450 / GIB:.2f}G"
    assert main(["model", "info", "--training-memory"]) == 2
    assert "needs a model folder or --preset NAME" in capsys.readouterr().err
    assert main(["model", "info"]) == 2
