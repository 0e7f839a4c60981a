"""ragsc.distill.darts.layout: odd image sizes through the skeleton both networks share.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import pytest
import torch

from ragsc.distill.darts import (
    ArchitectureConfig,
    DerivedNetwork,
    SearchNetwork,
    SearchSpaceConfig,
    derive,
)

from ._util import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


@pytest.mark.parametrize("size,reductions", [(15, 2), (28, 2), (7, 1)])
def test_odd_image_sizes_build_and_run(size, reductions):
    cfg = SearchSpaceConfig(**{**TINY, "image_size": size, "reductions": reductions, "layers": 3})
    x = torch.randn(2, 1, size, size)
    assert SearchNetwork(cfg)(x).shape == (2, 8)
    genotype = derive(SearchNetwork(cfg))
    assert DerivedNetwork(ArchitectureConfig.from_search(cfg, genotype))(x).shape == (2, 8)
