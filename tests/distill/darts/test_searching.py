"""ragsc.distill.darts.searching: it learns, lambda steers the size, the skip guard, labels, bad data.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import pytest
import torch

from ragsc.distill.darts import (
    PRIMITIVES,
    ArchitectureConfig,
    DerivedNetwork,
    Genotype,
    SearchNetwork,
    SearchSpaceConfig,
    SkipGuard,
    kd_score,
    search,
)
from ragsc.errors import ConfigError, InputError

from ._util import PARAM_FREE, TINY, n_skips, splits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_search_lowers_the_kd_loss_on_the_training_data(data):
    x_train, t_train, x_val, t_val = splits(data)
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    before = 1.0 - kd_score(net, x_train, t_train)
    result = search(net, x_train, t_train, x_val, t_val, epochs=4, lam=0.0, batch_size=16, lr_alpha=0.05)
    after = 1.0 - kd_score(net, x_train, t_train)
    assert after < before - 0.2, (before, after)
    assert len(result.history) == 4
    assert result.history[-1].train_kd < result.history[0].train_kd - 0.3


def test_a_huge_lambda_derives_the_cheapest_net_a_zero_lambda_a_bigger_one(data):
    # max_pool is the only parameter-free op besides none (which derive never picks): a complexity penalty
    # that works must put it on every derived edge, the smallest net these sizes allow
    cfg = SearchSpaceConfig(**{**TINY, "ops": ("none", "max_pool_3x3", "sep_conv_3x3", "conv_5x5")})
    params = {}
    for lam in (0.0, 1e3):
        result = search(SearchNetwork(cfg), *splits(data), epochs=3, lam=lam, batch_size=16, lr_alpha=0.05)
        params[lam] = DerivedNetwork(ArchitectureConfig.from_search(cfg, result.genotype)).num_parameters()
        if lam:
            assert {op for op, _ in result.genotype.normal + result.genotype.reduce} == {"max_pool_3x3"}
    floor = Genotype(normal=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2,
                     reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2)
    assert params[1e3] == DerivedNetwork(ArchitectureConfig.from_search(cfg, floor)).num_parameters()
    assert params[1e3] < params[0.0]


def test_a_huge_lambda_lowers_the_expected_complexity_over_all_ops(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    start = net.expected_complexity(normalize=True).item()
    result = search(net, *splits(data), epochs=3, lam=1e3, batch_size=16, lr_alpha=0.05)
    assert result.history[-1].complexity < start - 0.05
    assert all(op in PARAM_FREE for op, _ in result.genotype.normal)


def test_search_applies_the_skip_guards_cap(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with torch.no_grad():
        net.alpha_normal[:, PRIMITIVES.index("skip_connect")] = 10.0
    result = search(net, *splits(data), epochs=1, lam=0.0, batch_size=16, lr_alpha=1e-4,
                    skip_guard=SkipGuard(max_skip=1))
    assert n_skips(result.genotype.normal) == 1
    drops = [m.skip_drop.p for m in net.modules() if hasattr(m, "skip_drop")]
    assert drops and all(p == 0.0 for p in drops)  # the search's skip dropout is switched off after it


def test_search_with_labels_adds_a_task_term(data):
    x, t, labels = data
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    result = search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, batch_size=16, y_train=labels[:48],
                    y_val=labels[48:])
    assert len(result.history) == 1
    with pytest.raises(InputError, match="both splits"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, y_train=labels[:48])


def test_bad_data_raise_input_error(data):
    x, t, _ = data
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with pytest.raises(InputError, match="x_train holds 48 images but t_train 47"):
        search(net, x[:48], t[:47], x[48:], t[48:], epochs=1)
    with pytest.raises(InputError, match="the train split is empty"):
        search(net, x[:0], t[:0], x[48:], t[48:], epochs=1)
    with pytest.raises(InputError, match=r"t_val must be .*\[N, 8\]"):
        search(net, x[:48], t[:48], x[48:], t[48:, :4], epochs=1)
    with pytest.raises(InputError, match=r"\[N, 1, 16, 16\]"):
        net(torch.randn(2, 3, 16, 16))
    with pytest.raises(ConfigError, match="complexity must be one of params, macs"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, complexity="flops")
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=0)
    with pytest.raises(ConfigError, match="max_skip"):
        SkipGuard(max_skip=-1)
