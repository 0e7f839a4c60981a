"""Data helpers of the channel tests (fixed seeds)."""

from __future__ import annotations

import torch


def gaussian_features(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``[n, d]`` i.i.d. standard normal real features from a fixed seed."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def unit_symbols(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """``[n, k]`` complex Gaussian symbols with E|x|^2 = 1."""
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(n, k, generator=g), torch.randn(n, k, generator=g)) * 0.5**0.5
