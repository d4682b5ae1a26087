"""Shared test fixtures: where the real data sets are, and deterministic CPU settings."""

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _deterministic_cpu():
    torch.set_num_threads(2)
    yield


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repository; tests using them skip when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
