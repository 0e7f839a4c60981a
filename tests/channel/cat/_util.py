"""Shared data of the CAT tests: a tiny config, a rate table, unit-norm tokens from a fixed seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ragsc.channel import CATCalibration

TINY = dict(token_dim=8, target_dim=8, model_dim=16, layers=1, heads=2, max_symbols=8, levels=(2, 4, 8))
# quality per level (2, 4, 8) at 0 / 10 / 20 dB
TABLE = CATCalibration(snrs_db=(0.0, 10.0, 20.0), n_items=100,
                       quality={"awgn": ((0.5, 0.6, 0.7), (0.7, 0.85, 0.9), (0.9, 0.95, 0.97))})


def tokens(n: int, t: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, 8) if t is None else (n, t, 8)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)
