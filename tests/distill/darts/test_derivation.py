"""ragsc.distill.darts.derivation: derive, the skip cap and the complexity budget.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ragsc.distill.darts import (
    PRIMITIVES,
    ArchitectureConfig,
    DerivedNetwork,
    Genotype,
    SearchNetwork,
    SearchSpaceConfig,
    architecture_cost,
    cheapest_architecture,
    check_budget,
    derive,
    lambda_front,
    op_cost,
    search,
)
from ragsc.distill.darts.derivation import Costs
from ragsc.errors import ConfigError

from ._util import ALL_POOL, POOL_SPACE, TINY, n_skips, splits, whole_cost

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_the_skip_cap_holds_when_alpha_favours_skip(cap):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with torch.no_grad():
        net.alpha_normal[:, PRIMITIVES.index("skip_connect")] = 10.0
    assert n_skips(derive(net, max_skip=None).normal) == 4  # uncapped: every chosen edge is a skip
    genotype = derive(net, max_skip=cap)
    assert n_skips(genotype.normal) == cap
    assert len(genotype.normal) == 4 and "none" not in {op for op, _ in genotype.normal}


def test_architecture_cost_counts_the_whole_network():
    cfg = SearchSpaceConfig(**TINY)
    arch = ArchitectureConfig.from_search(cfg, ALL_POOL)
    params, macs = architecture_cost(arch)
    assert params == DerivedNetwork(arch).num_parameters()
    # one op swapped in the normal cell (layers=2, reductions=1: cell 0 is normal, 16x16, C=4): the cost
    # moves by exactly that op's cost
    conv = Genotype(normal=(("conv_3x3", 0),) + ALL_POOL.normal[1:], reduce=ALL_POOL.reduce)
    delta = [a - b for a, b in zip(op_cost("conv_3x3", 4, 1, 16), op_cost("max_pool_3x3", 4, 1, 16))]
    assert [a - b for a, b in zip(architecture_cost(ArchitectureConfig.from_search(cfg, conv)),
                                  (params, macs))] == delta
    # the head counts too: one more output dimension adds its 16 inputs (2 nodes x 8 channels) as MACs
    wider = architecture_cost(dataclasses.replace(arch, out_dim=9))
    assert (wider[0] - params, wider[1] - macs) == (16 + 1, 16)


@pytest.mark.parametrize("complexity", ["params", "macs"])
def test_the_budget_tables_add_up_to_the_whole_network(complexity):
    cfg = SearchSpaceConfig(**{**TINY, "layers": 3})
    costs = Costs(cfg, complexity, max_skip=None)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):  # random architectures: the per-edge tables plus the fixed part are the whole cost
        net = SearchNetwork(cfg)
        with torch.no_grad():
            for alpha in net.arch_parameters():
                alpha.copy_(torch.randn(alpha.shape, generator=g))
        genotype = derive(net, max_skip=None)
        assert costs.total(genotype) == whole_cost(cfg, genotype, complexity)


def test_the_cheapest_architecture_is_the_floor_derive_can_reach():
    cfg = SearchSpaceConfig(**POOL_SPACE)
    arch, floor = cheapest_architecture(cfg, "params")
    assert arch.genotype == ALL_POOL and floor == whole_cost(cfg, ALL_POOL) == check_budget(cfg, floor)
    # MACs: skip (identity) is free in the normal cell, so the cap decides how many it may hold
    skips = SearchSpaceConfig(**{**TINY, "ops": ("none", "skip_connect", "conv_3x3")})
    capped, capped_floor = cheapest_architecture(skips, "macs", max_skip=1)
    free, free_floor = cheapest_architecture(skips, "macs", max_skip=None)
    assert n_skips(capped.genotype.normal) == 1 and n_skips(free.genotype.normal) == 4
    assert free_floor < capped_floor == whole_cost(skips, capped.genotype, "macs")


def test_a_hopeless_budget_fails_before_any_training_and_names_the_cheapest(data, tmp_path):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    floor = whole_cost(cfg, ALL_POOL)
    net = SearchNetwork(cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    message = f"fits a budget of {floor - 1:,} parameters: the cheapest one derive can build has {floor:,}"
    with pytest.raises(ConfigError, match=message):
        search(net, *splits(data), epochs=1, batch_size=16, budget=floor - 1, checkpoint=tmp_path / "ck")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # not one step taken
    assert not (tmp_path / "ck").exists()
    with pytest.raises(ConfigError, match=message):
        derive(net, budget=floor - 1)
    with pytest.raises(ConfigError, match="cheapest one derive can build"):
        lambda_front(*splits(data), [0.0], cfg, epochs=1, budget=floor - 1, checkpoint=tmp_path / "ck")
    assert not (tmp_path / "ck").exists()
    macs_floor = whole_cost(cfg, cheapest_architecture(cfg, "macs")[0].genotype, "macs")
    with pytest.raises(ConfigError, match=f"cheapest one derive can build has {macs_floor:,} MACs"):
        check_budget(cfg, macs_floor - 1, "macs")
    for bad in (0, -5, float("nan"), True, "1e4"):
        with pytest.raises(ConfigError, match="budget must be a positive number"):
            search(net, *splits(data), epochs=1, budget=bad)


@pytest.mark.parametrize("complexity", ["params", "macs"])
def test_derive_picks_within_a_budget_the_plain_derivation_exceeds(complexity):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    net = SearchNetwork(cfg)
    with torch.no_grad():  # the costliest op strongest everywhere, sep_conv next
        for alpha in net.arch_parameters():
            alpha[:, cfg.ops.index("conv_5x5")] = 3.0
            alpha[:, cfg.ops.index("sep_conv_3x3")] = 2.0
    plain = derive(net)
    top, floor = whole_cost(cfg, plain, complexity), whole_cost(cfg, ALL_POOL, complexity)
    assert {op for op, _ in plain.normal + plain.reduce} == {"conv_5x5"}
    assert derive(net, budget=top, complexity=complexity) == plain  # within budget: untouched
    middle = (top + floor) // 2
    picked = derive(net, budget=middle, complexity=complexity)
    assert floor <= whole_cost(cfg, picked, complexity) <= middle and picked != plain
    assert "conv_5x5" in {op for op, _ in picked.normal + picked.reduce}  # keeps what it can afford
    assert whole_cost(cfg, derive(net, budget=floor, complexity=complexity), complexity) == floor


def test_search_with_a_budget_derives_within_it(data):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    plain = search(SearchNetwork(cfg), *splits(data), epochs=1, batch_size=16)
    budget = whole_cost(cfg, plain.genotype) - 1
    if budget < whole_cost(cfg, ALL_POOL):  # the plain search already found the floor: nothing to cut
        pytest.skip("plain derivation at the floor")
    result = search(SearchNetwork(cfg), *splits(data), epochs=1, batch_size=16, budget=budget)
    assert result.history == plain.history  # the budget acts only at derivation
    assert whole_cost(cfg, result.genotype) <= budget
