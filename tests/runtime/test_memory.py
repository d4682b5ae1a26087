"""The allocator setting that keeps freed tensor memory for reuse on Linux."""

import resource
import sys

import pytest
import torch

from albertkit.runtime import memory as cpu_memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_done", False)
    for name in (*cpu_memory.USER_SETTINGS, cpu_memory.OPT_OUT):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_opt_out_variable_leaves_the_allocator_alone(fresh):
    fresh.setenv("ALBERTKIT_KEEP_FREED_MEMORY", "0")
    assert cpu_memory.keep_freed_memory() is False


@pytest.mark.parametrize("name", ["LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"])
def test_user_allocator_settings_win(fresh, name):
    fresh.setenv(name, "/usr/lib/libjemalloc.so.2" if name == "LD_PRELOAD" else "65536")
    assert cpu_memory.keep_freed_memory() is False


@linux_only
def test_freed_activations_are_reused_without_page_faults(fresh):
    assert cpu_memory.keep_freed_memory() is True
    assert cpu_memory.keep_freed_memory() is True  # idempotent
    size = 8 * 2**20 // 4  # 8 MiB activations: 2,048 pages of 4 KiB each

    def step():  # a step's activations: allocated together, freed together
        activations = [torch.ones(size) for _ in range(4)]
        del activations

    for _ in range(3):  # the first steps map their pages once
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # With glibc's defaults the freed 32 MiB goes back to the kernel after every step: about 80,000 faults
    # in 10 steps. Kept, at most one step's pages are mapped again.
    assert faults <= 4 * 2048, faults
