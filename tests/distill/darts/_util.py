"""Shared sizes and helpers of the KDL-DARTS tests.

Tiny sizes throughout (64 images 1x16x16, out_dim 8, C=4, 2 cells, 2 nodes): each search takes seconds.
The images (the ``data`` fixture in ``conftest.py``) are four noisy stripe patterns and the "teacher" maps
each pattern to its own 8-d prototype, so there is something to learn through a global pool.
"""

from __future__ import annotations

from ragsc.distill.darts import ArchitectureConfig, Genotype, architecture_cost

TINY = dict(in_channels=1, image_size=16, channels=4, layers=2, nodes=2, out_dim=8, reductions=1)
PARAM_FREE = {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}  # skip_connect at stride 1 only
POOL_SPACE = {**TINY, "ops": ("none", "max_pool_3x3", "sep_conv_3x3", "conv_5x5")}
ALL_POOL = Genotype(normal=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2,
                    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2)


def splits(data):
    x, t, _ = data
    return x[:48], t[:48], x[48:], t[48:]


def n_skips(cell) -> int:
    return sum(op == "skip_connect" for op, _ in cell)


def whole_cost(cfg, genotype, complexity="params") -> int:
    """The whole derived network's cost (:func:`architecture_cost`) at the search's sizes."""
    arch = ArchitectureConfig.from_search(cfg, genotype)
    return architecture_cost(arch)[("params", "macs").index(complexity)]
