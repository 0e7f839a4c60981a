"""The data of the KDL-DARTS tests (see ``_util.py``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def data():
    """``(x [64, 1, 16, 16], t [64, 8], labels [64])``."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 4
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    freqs = ((1, 0), (0, 1), (2, 2), (3, 1))
    patterns = torch.stack([torch.sin(xx * f / 3) * torch.cos(yy * h / 3) for f, h in freqs])
    x = (patterns[labels] + 0.3 * torch.randn(64, 16, 16, generator=g)).unsqueeze(1)
    t = torch.randn(4, 8, generator=g)[labels] + 0.1 * torch.randn(64, 8, generator=g)
    return x, t, labels
