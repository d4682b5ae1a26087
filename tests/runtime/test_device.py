"""resolve_device and autocast_dtype: every --device value, the refusals, and the precision each device gets.

This machine has no GPU: the CUDA answers are checked with torch.cuda's queries replaced (monkeypatch), which
tests our choices, not CUDA itself.
"""

from __future__ import annotations

import pytest
import torch

from albertkit.errors import UserError
from albertkit.runtime.device import autocast_dtype, resolve_device


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_cpu_and_auto_without_gpu(no_gpu: None) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_gpu_is_one_line_error(no_gpu: None, name: str) -> None:
    with pytest.raises(UserError, match=rf"^--device {name}: no CUDA GPU is visible to torch .*use --device cpu or auto$"):
        resolve_device(name)


def test_auto_and_cuda_take_local_rank(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="under torchrun use --device cuda"):
        resolve_device("cuda:0")


def test_bad_names_and_indexes(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\), numbered 0 to 1"):
        resolve_device("cuda:2")
    with pytest.raises(UserError, match=r"unknown device 'cuda:x'"):
        resolve_device("cuda:x")
    with pytest.raises(UserError, match=r"unknown device 'gpu'; choose auto .*cuda:N or mps"):
        resolve_device("gpu")


def test_mps_only_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="no Apple GPU"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_precision_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("auto", cpu, inference=True) is None
    assert autocast_dtype("auto", mps, inference=True) is None
    assert autocast_dtype("bf16", cpu, inference=True) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    assert autocast_dtype("auto", cuda, inference=True) is torch.bfloat16
    assert autocast_dtype("fp32", cuda, inference=True) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4 or V100
    assert autocast_dtype("auto", cuda) is None  # training: fp16 needs loss scaling, asked for by name
    assert autocast_dtype("auto", cuda, inference=True) is torch.float16
    assert autocast_dtype("fp16", cuda) is torch.float16
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu, inference=True)
    with pytest.raises(UserError, match="unknown precision 'int4'"):
        autocast_dtype("int4", cpu)
