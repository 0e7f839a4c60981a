"""ragsc.distill.darts.config: the search space's and the genotype's checks, the genotype's JSON.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import pytest

from ragsc.distill.darts import (
    Genotype,
    SearchSpaceConfig,
)
from ragsc.errors import ConfigError

from ._util import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_genotype_json_round_trip():
    genotype = Genotype(
        normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("conv_3x3", 0)],
        reduce=[["max_pool_3x3", 0], ["avg_pool_3x3", 1], ["skip_connect", 2], ["conv_5x5", 1]])
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert genotype.nodes == 2


@pytest.mark.parametrize("change,match", [
    ({"ops": ("none", "conv_7x7")}, "unknown op.*conv_7x7"),
    ({"ops": ("none",)}, "other than 'none'"),
    ({"ops": ("conv_3x3", "conv_3x3")}, "twice"),
    ({"nodes": 0}, "nodes must be an integer >= 1"),
    ({"image_size": 2, "reductions": 2, "layers": 3}, "image_size 2 is too small for 2 reductions"),
    ({"layers": 1, "reductions": 2}, "1 layers cannot hold 2 reduction"),
    ({"channels": 1}, "channels must be an integer >= 2"),
    ({"out_dim": 8.0}, "out_dim must be an integer"),
    ({"nodes": 1000}, "nodes must be at most 16"),
    ({"channels": 100_000}, "channels must be at most 1024"),
    ({"reductions": -1}, "reductions must be an integer >= 0"),
    ({"image_size": 10 ** 6}, "image_size must be at most 1024"),
])
def test_bad_configs_raise_config_error(change, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpaceConfig(**{**TINY, **change})


@pytest.mark.parametrize("normal,match", [
    ((("none", 0), ("conv_3x3", 1)), "op 'none'"),
    ((("conv_9x9", 0), ("conv_3x3", 1)), "op 'conv_9x9'"),
    ((("conv_3x3", 0), ("conv_3x3", 2)), "reads input 2"),
    ((("conv_3x3", 0),), "two \\[op, input\\] pairs per node"),
    ((("conv_3x3", 0), ("conv_3x3", 1)) * 17, "for 1 to 16 nodes, got 34 pairs"),
])
def test_bad_genotypes_raise_config_error(normal, match):
    with pytest.raises(ConfigError, match=match):
        Genotype(normal=normal, reduce=(("conv_3x3", 0), ("conv_3x3", 1)))
