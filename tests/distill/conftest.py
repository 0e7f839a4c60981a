"""Shared fixtures of the distillation tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for the module: tiny models run several times faster so on a busy machine
    (many small ops; OpenMP threads spin when the cores are taken). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
